from django.contrib import admin

from pipelines.models import Pipeline


@admin.register(Pipeline)
class PipelineAdmin(admin.ModelAdmin):
    list_display = ["name", "public_id", "default_gateway", "created_at", "updated_at"]
    list_filter = ["default_gateway"]
    list_select_related = ["default_gateway"]
    search_fields = ["name", "=public_id"]
    autocomplete_fields = ["default_gateway"]
    readonly_fields = ["public_id", "created_at", "updated_at"]
    fields = [
        "name",
        "public_id",
        "description",
        "default_gateway",
        "run_retention_days",
        "log_retention_days",
        "created_at",
        "updated_at",
    ]
