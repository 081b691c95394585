from rest_framework.routers import SimpleRouter

from pipelines.api.views import PipelineViewSet

router = SimpleRouter(trailing_slash=False)
router.register("api/pipelines", PipelineViewSet, basename="pipelines")

urlpatterns = router.urls
