from django.urls import path
from rest_framework.routers import SimpleRouter

from runs.api.log_search_views import LogSearchView
from runs.api.read_views import RunViewSet

router = SimpleRouter(trailing_slash=False)
router.register("api/runs", RunViewSet, basename="runs")

urlpatterns = [
    path("api/logs", LogSearchView.as_view(), name="logs-search"),
    *router.urls,
]
