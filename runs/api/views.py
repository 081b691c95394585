"""The runner API: ``/api/elt/runs`` (session or API key) and ``/api/agent/runs`` (gateway token).

Both PATCH routes validate with the same serializer and call the same
``run_update_by_public_id``; they differ only in authentication and in which runs the caller can
see.
"""

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import NotFound, ParseError, ValidationError
from rest_framework.response import Response

from common.actors import actor_from_request
from common.api.schema import error_responses
from common.api.views import ApiView, BearerOnlyApiView
from common.roles import Perm
from common.sql import Beside
from gateways.authentication import (
    NOT_READ,
    ApiKeyAuthentication,
    GatewayTokenAuthentication,
    IsGateway,
    IsPerson,
    row_read_beside,
)
from gateways.selectors import gateway_from_reference
from pipelines.selectors import pipeline_get
from runs import selectors, services
from runs.api.read_serializers import RunDetailSerializer, run_detail_body
from runs.api.schema import component_ref
from runs.api.serializers import PipelineRunSerializer, RunCreateSerializer, RunPatchSerializer
from runs.models import Run
from runs.representations import (
    AgentRunList,
    RunnerRun,
    agent_run_list_repr,
    runner_run_repr,
)

IDEMPOTENCY_KEY_MAX = 200
PREFER_HEADER = OpenApiParameter(
    "Prefer",
    str,
    OpenApiParameter.HEADER,
    description="`return=minimal` leaves the log, samples and nodes out of the answer.",
)
PATCH_HEADERS = [
    PREFER_HEADER,
    OpenApiParameter(
        "Idempotency-Key",
        str,
        OpenApiParameter.HEADER,
        description="A PATCH repeated with the same key is applied once.",
    ),
]


def wants_minimal(request) -> bool:
    """``Prefer: return=minimal`` (RFC 7240) leaves out the log, the samples and the nodes."""
    prefer = request.headers.get("Prefer", "")
    return any(part.strip() == "return=minimal" for part in prefer.split(","))


def runner_response(run: Run, request=None, *, status_code: int = status.HTTP_200_OK) -> Response:
    if request is not None and wants_minimal(request):
        response = Response(runner_run_repr(run), status=status_code)
        response["Preference-Applied"] = "return=minimal"
        return response
    body = runner_run_repr(
        run,
        logs=selectors.run_log_json(run=run) or selectors.run_log_rows(run=run),
        samples=selectors.run_samples_json(run=run) or selectors.run_sample_rows(run=run),
        nodes=selectors.run_nodes(run=run),
    )
    return Response(body, status=status_code)


def idempotency_key(request) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > IDEMPOTENCY_KEY_MAX or not key.isprintable():
        raise ValidationError(
            {"Idempotency-Key": [f"Must be 1 to {IDEMPOTENCY_KEY_MAX} printable characters."]}
        )
    return key


def json_object_body(request, *, allow_empty: bool = False) -> dict:
    """The parsed body, which must be a JSON object (DRF leaves an empty body unparsed); with
    ``allow_empty``, no body at all stands for ``{}``."""
    data = request.data
    if not data and request.META.get("CONTENT_LENGTH") in (None, "", "0"):
        if allow_empty:
            return {}
        raise ParseError("Request body is empty; send a JSON object.")
    if not isinstance(data, dict):
        raise ValidationError({"body": ["Must be a JSON object."]})
    return data


def apply_patch(request, run_id: str) -> Response:
    """Both PATCH routes: a gateway (its own runs only) or a person with the runner role. A
    person without it is refused before the body is read: every field of the body is a runner's
    report."""
    actor = actor_from_request(request)
    services.run_report_authorize(actor=actor)
    data = json_object_body(request)
    serializer = RunPatchSerializer(data=data)
    serializer.is_valid(raise_exception=True)
    run = services.run_update_by_public_id(
        public_id=run_id,
        changes=serializer.to_changes(),
        actor=actor,
        idempotency_key=idempotency_key(request),
    )
    if run is None:
        raise NotFound("No run with this id.")
    return runner_response(run, request)


class EltRunCreateView(ApiView):
    authentication_classes = [ApiKeyAuthentication, SessionAuthentication]
    permission_classes = [IsPerson]

    @extend_schema(
        operation_id="elt_runs_create",
        parameters=[PREFER_HEADER],
        request=RunCreateSerializer,
        responses={
            201: OpenApiResponse(component_ref(RunnerRun), description="The new queued run."),
            **error_responses(400, 401, 403, 413, 415),
        },
        tags=["runner"],
    )
    def post(self, request):
        actor = actor_from_request(request)
        services.run_trigger_authorize(actor=actor)
        serializer = RunCreateSerializer(data=json_object_body(request))
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        pipeline = pipeline_get(public_id=data["pipelineId"])
        if pipeline is None:
            raise ValidationError({"pipelineId": ["No pipeline with this id."]})
        trigger = data.get("trigger") or {}
        run = services.run_trigger(
            actor=actor,
            pipeline=pipeline,
            gateway=gateway_from_reference(data.get("gateway"), field="gateway"),
            trigger_type=trigger.get("type"),
            trigger=trigger.get("details"),
            labels=data.get("labels"),
        )
        return runner_response(run, request, status_code=status.HTTP_201_CREATED)


class EltRunDetailView(ApiView):
    authentication_classes = [ApiKeyAuthentication, SessionAuthentication]
    permission_classes = [IsPerson]

    def get_run(self, run_id: str) -> Run:
        actor = actor_from_request(self.request)
        if not actor.has_perm(Perm.VIEW_RUNS):
            services.run_report_authorize(actor=actor)
        run = selectors.run_get(public_id=run_id)
        if run is None:
            raise NotFound("No run with this id.")
        return run

    @extend_schema(
        operation_id="elt_runs_retrieve",
        parameters=[PREFER_HEADER],
        responses={200: component_ref(RunnerRun), **error_responses(401, 404)},
        tags=["runner"],
    )
    def get(self, request, run_id: str):
        return runner_response(self.get_run(run_id), request)

    @extend_schema(
        operation_id="elt_runs_partial_update",
        parameters=PATCH_HEADERS,
        request=RunPatchSerializer,
        responses={
            200: component_ref(RunnerRun),
            **error_responses(400, 401, 403, 404, 409, 413, 415),
        },
        tags=["runner"],
    )
    def patch(self, request, run_id: str):
        return apply_patch(request, run_id)


class AgentRunListView(BearerOnlyApiView):
    authentication_classes = [GatewayTokenAuthentication]
    permission_classes = [IsGateway]

    @extend_schema(
        operation_id="agent_runs_list",
        responses={200: component_ref(AgentRunList), **error_responses(401)},
        tags=["runner"],
    )
    def get(self, request):
        gateway = request.user.gateway
        runs = selectors.gateway_actionable_runs(gateway=gateway)
        return Response(agent_run_list_repr(gateway=gateway, runs=runs))


class AgentRunDetailView(BearerOnlyApiView):
    authentication_classes = [GatewayTokenAuthentication]
    permission_classes = [IsGateway]

    def credential_beside(self, request) -> Beside | None:
        """A read finds its run in the token's statement: one round trip, not two."""
        if request.method not in ("GET", "HEAD"):
            return None
        return selectors.run_beside_token(public_id=self.kwargs.get("run_id", ""))

    def get_run(self, request, run_id: str) -> Run:
        gateway = request.user.gateway
        run = row_read_beside(request)
        if run is NOT_READ:
            run = selectors.run_get_for_gateway(gateway=gateway, public_id=run_id)
        else:
            run = selectors.run_read_beside_token(gateway=gateway, run=run)
        if run is None:
            raise NotFound("No run with this id.")
        return run

    @extend_schema(
        operation_id="agent_runs_retrieve",
        parameters=[PREFER_HEADER],
        responses={200: component_ref(RunnerRun), **error_responses(401, 404)},
        tags=["runner"],
    )
    def get(self, request, run_id: str):
        return runner_response(self.get_run(request, run_id), request)

    @extend_schema(
        operation_id="agent_runs_partial_update",
        parameters=PATCH_HEADERS,
        request=RunPatchSerializer,
        responses={
            200: component_ref(RunnerRun),
            **error_responses(400, 401, 404, 409, 413, 415),
        },
        tags=["runner"],
    )
    def patch(self, request, run_id: str):
        return apply_patch(request, run_id)


class PipelineRunView(ApiView):
    """``POST /api/pipelines/{id}/run``: a route of the pipelines API, served here because it
    makes a run."""

    authentication_classes = [ApiKeyAuthentication, SessionAuthentication]
    permission_classes = [IsPerson]

    @extend_schema(
        operation_id="pipelines_run",
        request=PipelineRunSerializer,
        responses={
            201: RunDetailSerializer,
            **error_responses(400, 401, 403, 404, 413, 415),
        },
        summary="Trigger a run of a pipeline",
        description="Creates a queued run, targeted at the pipeline's default gateway unless "
        "the body names another. The body may be empty.",
        tags=["pipelines"],
    )
    def post(self, request, pipeline_id: str):
        actor = actor_from_request(request)
        services.run_trigger_authorize(actor=actor)
        pipeline = pipeline_get(public_id=pipeline_id)
        if pipeline is None:
            raise NotFound("No pipeline with this id.")
        serializer = PipelineRunSerializer(data=json_object_body(request, allow_empty=True))
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        trigger = data.get("trigger") or {}
        run = services.run_trigger(
            actor=actor,
            pipeline=pipeline,
            gateway=gateway_from_reference(data.get("gateway"), field="gateway"),
            trigger_type=trigger.get("type"),
            trigger=trigger.get("details"),
            labels=data.get("labels"),
        )
        return Response(run_detail_body(run, actor=actor), status=status.HTTP_201_CREATED)
