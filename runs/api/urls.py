from django.urls import path

from runs.api import views

urlpatterns = [
    path("api/elt/runs", views.EltRunCreateView.as_view(), name="elt-run-create"),
    path("api/elt/runs/<str:run_id>", views.EltRunDetailView.as_view(), name="elt-run-detail"),
    path(
        "api/pipelines/<str:pipeline_id>/run", views.PipelineRunView.as_view(), name="pipeline-run"
    ),
    path("api/agent/runs", views.AgentRunListView.as_view(), name="agent-run-list"),
    path(
        "api/agent/runs/<str:run_id>", views.AgentRunDetailView.as_view(), name="agent-run-detail"
    ),
]
