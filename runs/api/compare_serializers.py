"""The shape of ``GET /api/runs/{id}/compare``: rendered by these serializers, so the schema
drf-spectacular derives from them is what clients receive."""

from rest_framework import serializers

from runs.models import RunStatus


class CompareRunSerializer(serializers.Serializer):
    id = serializers.CharField(source="run.public_id")
    pipelineId = serializers.CharField(source="run.pipeline.public_id")
    pipelineName = serializers.CharField(source="run.pipeline.name")
    status = serializers.ChoiceField(source="run.status", choices=RunStatus.choices)
    createdAt = serializers.DateTimeField(source="run.created_at")
    startedAt = serializers.DateTimeField(source="run.started_at", allow_null=True)
    finishedAt = serializers.DateTimeField(source="run.finished_at", allow_null=True)
    durationSeconds = serializers.FloatField(source="duration", allow_null=True)
    rowsLoaded = serializers.IntegerField(source="run.rows_loaded", allow_null=True)
    bytesLoaded = serializers.IntegerField(source="run.bytes_loaded", allow_null=True)
    firstError = serializers.CharField(
        source="first_error",
        allow_null=True,
        help_text="The first error line of the log, else the first line of the error summary.",
    )
    telemetry = serializers.SerializerMethodField(
        help_text="`rowsLoaded` samples as `[secondsSinceStart, value]` pairs."
    )

    def get_telemetry(self, side) -> list[list[float]]:
        return [[round(t, 3), value] for t, value in side.curve]


class NodeSideSerializer(serializers.Serializer):
    status = serializers.CharField()
    durationSeconds = serializers.FloatField(source="duration", allow_null=True)
    rowsLoaded = serializers.FloatField(source="rows", allow_null=True)


class CompareNodeSerializer(serializers.Serializer):
    nodeId = serializers.CharField(source="node_id")
    run = NodeSideSerializer(allow_null=True)
    # ``with`` is a keyword: declared below.
    durationRatio = serializers.FloatField(source="duration_ratio", allow_null=True)
    change = serializers.ChoiceField(
        choices=["new", "missing", "slower", "faster"],
        allow_null=True,
        help_text="`new`: only in the run; `missing`: only in `with`; `slower`/`faster`: at "
        "least twice / at most half the other's duration.",
    )


CompareNodeSerializer._declared_fields["with"] = NodeSideSerializer(source="other", allow_null=True)


class CompareRatiosSerializer(serializers.Serializer):
    durationRatio = serializers.FloatField(source="duration_ratio", allow_null=True)
    rowsRatio = serializers.FloatField(source="rows_ratio", allow_null=True)
    bytesRatio = serializers.FloatField(source="bytes_ratio", allow_null=True)


class CompareSerializer(serializers.Serializer):
    """The run against ``with``; every ratio is the run's figure over ``with``'s."""

    run = CompareRunSerializer()
    basis = serializers.ChoiceField(
        choices=["previous-succeeded", "picked"],
        help_text="`previous-succeeded`: `with` was not given, so the pipeline's newest succeeded "
        "run before this one was used.",
    )
    samePipeline = serializers.BooleanField(source="same_pipeline")
    warning = serializers.SerializerMethodField()
    statusChanged = serializers.BooleanField(source="status_changed")
    ratios = CompareRatiosSerializer(source="*")
    nodes = CompareNodeSerializer(many=True)

    def get_warning(self, comparison) -> str | None:
        if comparison.same_pipeline:
            return None
        return (
            f"The runs belong to different pipelines ({comparison.run.run.pipeline.name} and "
            f"{comparison.other.run.pipeline.name}): figures may not be comparable."
        )


CompareSerializer._declared_fields["with"] = CompareRunSerializer(source="other")
