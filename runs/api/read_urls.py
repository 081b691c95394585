from django.urls import path
from rest_framework.routers import SimpleRouter

from runs.api.bulk_views import BulkJobView, BulkView, SavedViewDetailView, SavedViewListView
from runs.api.log_search_views import LogSearchView
from runs.api.read_views import RunViewSet

router = SimpleRouter(trailing_slash=False)
router.register("api/runs", RunViewSet, basename="runs")

urlpatterns = [
    path("api/logs", LogSearchView.as_view(), name="logs-search"),
    # Before the router's api/runs/{id}: "bulk" is not a run id.
    path("api/runs/bulk", BulkView.as_view(), name="runs-bulk"),
    path("api/runs/bulk/<str:job_id>", BulkJobView.as_view(), name="runs-bulk-job"),
    path("api/views", SavedViewListView.as_view(), name="views-list"),
    path("api/views/<str:view_id>", SavedViewDetailView.as_view(), name="views-detail"),
    *router.urls,
]
