"""``GET /api/logs``: search every kept log line, across runs, by text and run list filters."""

from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.response import Response

from common.api.params import HasActionPermission
from common.api.schema import error_responses
from common.api.views import ApiView
from common.roles import Perm
from gateways.authentication import ApiKeyAuthentication, IsPerson
from runs.api.read_serializers import PageMetaSerializer
from runs.api.read_views import LIST_PARAMETERS
from runs.filters import WINDOWS
from runs.log_search import (
    MAX_TEXT_CHARS,
    MIN_TEXT_CHARS,
    encode_log_cursor,
    log_search,
    parse_log_search,
)
from runs.models import LogLevel, RunStatus


class LogHitSerializer(serializers.Serializer):
    runId = serializers.CharField(source="run.public_id")
    seq = serializers.IntegerField(help_text="The line's number in its run's log (`#L<seq>`).")
    ts = serializers.DateTimeField(source="at")
    level = serializers.ChoiceField(choices=LogLevel.choices)
    nodeId = serializers.SerializerMethodField()
    message = serializers.CharField()
    runStatus = serializers.ChoiceField(source="run.status", choices=RunStatus.choices)
    runCreatedAt = serializers.DateTimeField(source="run.created_at")
    pipelineId = serializers.CharField(source="run.pipeline.public_id")
    pipelineName = serializers.CharField(source="run.pipeline.name")
    gatewayId = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField(help_text="Run detail at this line.")

    def get_nodeId(self, line) -> str | None:
        return line.node_id or None

    def get_gatewayId(self, line) -> str | None:
        return line.run.gateway.public_id if line.run.gateway_id else None

    def get_url(self, line) -> str:
        detail = self.context["detail_url"].replace("RUN_ID", line.run.public_id)
        return f"{detail}#L{line.seq}"


@extend_schema_serializer(many=False)
class LogHitPageSerializer(serializers.Serializer):
    data = LogHitSerializer(many=True)
    meta = PageMetaSerializer()


SEARCH_PARAMETERS = [
    OpenApiParameter(
        "q",
        {"type": "string", "minLength": MIN_TEXT_CHARS, "maxLength": MAX_TEXT_CHARS},
        required=True,
        description=f"Text to find in log messages, case-insensitive, with at least "
        f"{MIN_TEXT_CHARS} letters or digits in a row (shorter text cannot use the trigram "
        "index and is refused with 400).",
    ),
    OpenApiParameter("window", str, enum=list(WINDOWS), description="Runs created in the last..."),
    *LIST_PARAMETERS,
]


class LogSearchView(ApiView):
    authentication_classes = [ApiKeyAuthentication, SessionAuthentication]
    permission_classes = [IsPerson, HasActionPermission]
    action_permissions = {"get": Perm.VIEW_RUNS}

    @extend_schema(
        operation_id="logs_search",
        tags=["runs"],
        parameters=SEARCH_PARAMETERS,
        responses={200: LogHitPageSerializer, **error_responses(400, 401, 403)},
        summary="Search log lines across runs",
        description="The kept log lines (the newest 500 of each run) whose message contains "
        "`q`, in the runs the run list filters select: newest run first and, within a run, "
        "newest line first. Keyset-paged: pass `meta.cursor` as `cursor` for older hits.",
    )
    def get(self, request):
        page = log_search(query=parse_log_search(request.query_params))
        context = {"detail_url": reverse("runs:detail", args=["RUN_ID"])}
        return Response(
            {
                "data": LogHitSerializer(page.hits, many=True, context=context).data,
                "meta": {"cursor": encode_log_cursor(page.older) if page.older else None},
            }
        )
