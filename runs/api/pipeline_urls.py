from rest_framework.routers import SimpleRouter

from runs.api.pipelines import PipelineViewSet

router = SimpleRouter(trailing_slash=False)
router.register("api/pipelines", PipelineViewSet, basename="pipelines")

urlpatterns = router.urls
