from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from common.metrics import metrics_view

urlpatterns = [
    path("admin/", admin.site.urls),
    path("metrics", metrics_view, name="metrics"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("runs.api.urls")),
    path("api/", include("webhooks.api.urls")),
    path("", include("runs.api.read_urls")),
    path("", include("runs.api.pipeline_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include("webhooks.urls")),
    path("", include("runs.urls")),
]

if settings.BENCH_ENDPOINTS:
    # The benchmark's reference endpoints (``config.bench_urls``); off unless asked for.
    urlpatterns.insert(0, path("", include("config.bench_urls")))
