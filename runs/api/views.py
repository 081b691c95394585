"""The runner API: ``/api/elt/runs`` (session or API key) and ``/api/agent/runs`` (gateway token).

Both PATCH routes validate with the same serializer and call the same ``run_update``; they
differ only in authentication and in which runs the caller can see.
"""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from gateways.authentication import (
    ApiKeyAuthentication,
    GatewayTokenAuthentication,
    IsGateway,
    IsPerson,
)
from gateways.models import Gateway
from pipelines.models import Pipeline
from runs import selectors, services
from runs.api.schema import error_responses
from runs.api.serializers import (
    AgentRunListDocSerializer,
    RunCreateSerializer,
    RunnerRunDocSerializer,
    RunPatchSerializer,
    runner_run_repr,
)
from runs.models import Run


def runner_response(run: Run, *, status_code: int = status.HTTP_200_OK) -> Response:
    body = runner_run_repr(
        run,
        logs=selectors.run_log_lines(run=run),
        samples=selectors.run_samples(run=run),
        nodes=selectors.run_nodes(run=run),
    )
    return Response(body, status=status_code)


def apply_patch(request, run: Run) -> Response:
    if not isinstance(request.data, dict):
        raise ValidationError({"body": ["Must be a JSON object."]})
    serializer = RunPatchSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    run = services.run_update(run=run, changes=serializer.to_changes(), actor=request.user)
    return runner_response(run)


class EltRunCreateView(APIView):
    authentication_classes = [ApiKeyAuthentication, SessionAuthentication]
    permission_classes = [IsPerson]

    @extend_schema(
        operation_id="elt_runs_create",
        request=RunCreateSerializer,
        responses={
            201: OpenApiResponse(RunnerRunDocSerializer, description="The new queued run."),
            **error_responses(400, 401, 403, 413, 415, 429),
        },
        tags=["runner"],
    )
    def post(self, request):
        if not isinstance(request.data, dict):
            raise ValidationError({"body": ["Must be a JSON object."]})
        serializer = RunCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        pipeline = Pipeline.objects.filter(public_id=data["pipelineId"]).first()
        if pipeline is None:
            raise ValidationError({"pipelineId": ["No pipeline with this id."]})
        gateway = None
        if data.get("gateway"):
            ref = data["gateway"]
            gateway = (
                Gateway.objects.filter(public_id=ref).first()
                or Gateway.objects.filter(name=ref).first()
            )
            if gateway is None:
                raise ValidationError({"gateway": ["No gateway with this name or id."]})
        trigger = data.get("trigger") or {"type": "api", "details": {}}
        run = services.run_create(
            pipeline=pipeline,
            gateway=gateway,
            trigger_type=trigger["type"],
            trigger=trigger["details"],
            created_by=request.user,
        )
        return runner_response(run, status_code=status.HTTP_201_CREATED)


class EltRunDetailView(APIView):
    authentication_classes = [ApiKeyAuthentication, SessionAuthentication]
    permission_classes = [IsPerson]

    def get_run(self, run_id: str) -> Run:
        run = selectors.run_get(public_id=run_id)
        if run is None:
            raise NotFound("No run with this id.")
        return run

    @extend_schema(
        operation_id="elt_runs_retrieve",
        responses={200: RunnerRunDocSerializer, **error_responses(401, 404, 429)},
        tags=["runner"],
    )
    def get(self, request, run_id: str):
        return runner_response(self.get_run(run_id))

    @extend_schema(
        operation_id="elt_runs_partial_update",
        request=RunPatchSerializer,
        responses={
            200: RunnerRunDocSerializer,
            **error_responses(400, 401, 403, 404, 409, 413, 415, 429),
        },
        tags=["runner"],
    )
    def patch(self, request, run_id: str):
        return apply_patch(request, self.get_run(run_id))


class AgentRunListView(APIView):
    authentication_classes = [GatewayTokenAuthentication]
    permission_classes = [IsGateway]

    @extend_schema(
        operation_id="agent_runs_list",
        responses={200: AgentRunListDocSerializer, **error_responses(401, 429)},
        tags=["runner"],
    )
    def get(self, request):
        runs = selectors.gateway_actionable_runs(gateway=request.user.gateway)
        data = [runner_run_repr(run) for run in runs]
        return Response({"data": data})


class AgentRunDetailView(APIView):
    authentication_classes = [GatewayTokenAuthentication]
    permission_classes = [IsGateway]

    def get_run(self, request, run_id: str) -> Run:
        run = selectors.run_get_for_gateway(gateway=request.user.gateway, public_id=run_id)
        if run is None:
            raise NotFound("No run with this id.")
        return run

    @extend_schema(
        operation_id="agent_runs_retrieve",
        responses={200: RunnerRunDocSerializer, **error_responses(401, 404, 429)},
        tags=["runner"],
    )
    def get(self, request, run_id: str):
        return runner_response(self.get_run(request, run_id))

    @extend_schema(
        operation_id="agent_runs_partial_update",
        request=RunPatchSerializer,
        responses={
            200: RunnerRunDocSerializer,
            **error_responses(400, 401, 404, 409, 413, 415, 429),
        },
        tags=["runner"],
    )
    def patch(self, request, run_id: str):
        return apply_patch(request, self.get_run(request, run_id))
