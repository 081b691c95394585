from rest_framework.routers import SimpleRouter

from runs.api.read_views import RunViewSet

router = SimpleRouter(trailing_slash=False)
router.register("api/runs", RunViewSet, basename="runs")

urlpatterns = router.urls
