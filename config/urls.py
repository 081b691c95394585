from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("runs.api.urls")),
    path("api/", include("webhooks.api.urls")),
    path("", include("gateways.urls")),
    path("", include("runs.urls")),
]
