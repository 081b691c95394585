from django.urls import path
from django.views.generic import RedirectView

from runs import compare_views, pipeline_views, search_views, set_views, views

app_name = "runs"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="runs:list", query_string=True), name="home"),
    path("runs/", views.run_list, name="list"),
    path("runs/live/", views.run_list_live, name="list-live"),
    path("runs/views/", set_views.view_save, name="view-save"),
    path("runs/views/<str:public_id>/delete/", set_views.view_delete, name="view-delete"),
    path("runs/bulk/preview/", set_views.bulk_preview_page, name="bulk-preview"),
    path("runs/bulk/", set_views.bulk_start_page, name="bulk-start"),
    path("runs/bulk/<str:public_id>/", set_views.bulk_job_page, name="bulk-job"),
    path("runs/<str:public_id>/", views.run_detail, name="detail"),
    path("runs/<str:public_id>/live/", views.run_detail_live, name="detail-live"),
    path("runs/<str:public_id>/log/", views.run_log_tail, name="log-tail"),
    path("runs/<str:public_id>/cancel/", views.run_cancel, name="cancel"),
    path("runs/<str:public_id>/rerun/", views.run_rerun, name="rerun"),
    path("gateways/", views.gateway_list, name="gateways"),
    path("logs/", search_views.log_search_page, name="log-search"),
    path("preferences/", views.preferences, name="preferences"),
    path("runs/<str:public_id>/compare/", compare_views.run_compare, name="compare"),
    path("pipelines/", pipeline_views.pipeline_list, name="pipelines"),
    path("pipelines/<str:public_id>/", pipeline_views.pipeline_detail, name="pipeline-detail"),
    path("pipelines/<str:public_id>/run/", pipeline_views.pipeline_run_now, name="pipeline-run"),
]
