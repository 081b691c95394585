"""Input and output serializers of ``/api/pipelines``."""

from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from common.api.fields import LabelsField, StrictCharField, StrictIntegerField, StrictSerializer
from gateways.api.serializers import GatewayRefSerializer

NAME_MAX = 200
DESCRIPTION_MAX = 10_000
GATEWAY_REF_HELP = "A gateway's id (`gw_...`) or name; null for none."
RETENTION_MAX_DAYS = 36500
LABELS_HELP = (
    "Default labels of the pipeline's runs; a run's own labels override them key by key. "
    "A change replaces the whole object."
)
RUN_RETENTION_HELP = "Keep finished runs this many days; null for the deployment's default."
LOG_RETENTION_HELP = (
    "Keep the log lines and samples of finished runs this many days (the run and its summary "
    "stay); null for the deployment's default."
)


class PipelineSerializer(serializers.Serializer):
    id = serializers.CharField(source="public_id")
    name = serializers.CharField()
    description = serializers.CharField()
    defaultGateway = GatewayRefSerializer(source="default_gateway", allow_null=True)
    labels = LabelsField(help_text=LABELS_HELP)
    runRetentionDays = serializers.IntegerField(
        source="run_retention_days", allow_null=True, help_text=RUN_RETENTION_HELP
    )
    logRetentionDays = serializers.IntegerField(
        source="log_retention_days", allow_null=True, help_text=LOG_RETENTION_HELP
    )
    createdAt = serializers.DateTimeField(source="created_at")
    updatedAt = serializers.DateTimeField(source="updated_at")


class PipelinePageMetaSerializer(serializers.Serializer):
    cursor = serializers.CharField(allow_null=True)


@extend_schema_serializer(many=False)  # a page object, not a list
class PipelinePageSerializer(serializers.Serializer):
    data = PipelineSerializer(many=True)
    meta = PipelinePageMetaSerializer()


class PipelineCreateSerializer(StrictSerializer):
    name = StrictCharField(max_length=NAME_MAX)
    description = StrictCharField(required=False, allow_blank=True, max_length=DESCRIPTION_MAX)
    defaultGateway = StrictCharField(
        required=False, allow_null=True, max_length=100, help_text=GATEWAY_REF_HELP
    )
    labels = LabelsField(required=False, help_text=LABELS_HELP)


class PipelineUpdateSerializer(PipelineCreateSerializer):
    """Every field optional; the ones sent are changed together."""

    name = StrictCharField(required=False, max_length=NAME_MAX)
    runRetentionDays = StrictIntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=RETENTION_MAX_DAYS,
        help_text=RUN_RETENTION_HELP,
    )
    logRetentionDays = StrictIntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=RETENTION_MAX_DAYS,
        help_text=LOG_RETENTION_HELP,
    )


class PipelineLastRunSerializer(serializers.Serializer):
    id = serializers.CharField(source="public_id")
    status = serializers.CharField()
    finishedAt = serializers.DateTimeField(source="finished_at", allow_null=True)


class PipelineStatsSerializer(serializers.Serializer):
    """Figures over the window's runs (by creation time); percentiles and medians are of its
    succeeded runs, interpolated as PostgreSQL's ``percentile_cont``."""

    window = serializers.CharField()
    runs = serializers.IntegerField()
    succeeded = serializers.IntegerField()
    failed = serializers.IntegerField()
    canceled = serializers.IntegerField()
    successRate = serializers.FloatField(
        source="success_rate",
        allow_null=True,
        help_text="Succeeded over succeeded plus failed, 0..1; null when none of either.",
    )
    durationP50Seconds = serializers.FloatField(source="duration_p50", allow_null=True)
    durationP90Seconds = serializers.FloatField(source="duration_p90", allow_null=True)
    rowsLoadedMedian = serializers.FloatField(source="rows_median", allow_null=True)
    bytesLoadedMedian = serializers.FloatField(source="bytes_median", allow_null=True)
    lastRun = PipelineLastRunSerializer(source="last_run", allow_null=True)


class PipelineDetailSerializer(PipelineSerializer):
    stats = PipelineStatsSerializer(source="window_stats")
