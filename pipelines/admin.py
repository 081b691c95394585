from django import forms
from django.contrib import admin

from common.errors import InvalidInput
from common.labels import labels_checked
from pipelines.models import Pipeline


class PipelineAdminForm(forms.ModelForm):
    class Meta:
        model = Pipeline
        fields = [
            "name",
            "description",
            "default_gateway",
            "labels",
            "run_retention_days",
            "log_retention_days",
        ]

    def clean_labels(self):
        try:
            return labels_checked(self.cleaned_data.get("labels") or {})
        except InvalidInput as refused:
            raise forms.ValidationError(refused.errors["labels"]) from None


@admin.register(Pipeline)
class PipelineAdmin(admin.ModelAdmin):
    form = PipelineAdminForm
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
        "labels",
        "run_retention_days",
        "log_retention_days",
        "created_at",
        "updated_at",
    ]
