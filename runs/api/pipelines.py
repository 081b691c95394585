"""``/api/pipelines``: list, create, read and change pipelines (triggering a run of one,
``POST /api/pipelines/{id}/run``, is a runs route: ``runs.api.views``)."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response

from common.actors import actor_from_request
from common.api.pagination import decode_cursor, encode_cursor
from common.api.params import (
    CURSOR_PARAMETER,
    LIMIT_PARAMETER,
    HasActionPermission,
    parse_limit,
)
from common.api.schema import error_responses
from common.api.views import ApiGenericViewSet
from common.roles import Perm
from gateways.authentication import ApiKeyAuthentication, IsPerson
from gateways.selectors import gateway_from_reference
from pipelines import selectors, services
from pipelines.models import Pipeline
from runs import stats
from runs.api.pipeline_serializers import (
    PipelineCreateSerializer,
    PipelineDetailSerializer,
    PipelinePageSerializer,
    PipelineSerializer,
    PipelineUpdateSerializer,
)

PIPELINE_ID_PARAMETER = OpenApiParameter(
    "pipeline_id", str, OpenApiParameter.PATH, description="Pipeline id (`pl_...`)."
)
STATS_WINDOW_PARAMETER = OpenApiParameter(
    "window",
    str,
    enum=list(stats.STATS_WINDOWS),
    default=stats.DEFAULT_STATS_WINDOW,
    description="The window of `stats`: runs created in the last 7 or 30 days.",
)


def json_object(request) -> dict:
    if not isinstance(request.data, dict):
        raise ValidationError({"body": ["Must be a JSON object."]})
    return request.data


@extend_schema(tags=["pipelines"], parameters=[PIPELINE_ID_PARAMETER])
class PipelineViewSet(ApiGenericViewSet):
    authentication_classes = [ApiKeyAuthentication, SessionAuthentication]
    permission_classes = [IsPerson, HasActionPermission]
    # Reads need a viewer; create and change are checked (and recorded) by their services.
    action_permissions = {"list": Perm.VIEW_PIPELINES, "retrieve": Perm.VIEW_PIPELINES}
    lookup_url_kwarg = "pipeline_id"
    lookup_value_regex = "[^/]+"
    serializer_class = PipelineSerializer

    def get_pipeline(self) -> Pipeline:
        pipeline = selectors.pipeline_get(public_id=self.kwargs["pipeline_id"])
        if pipeline is None:
            raise NotFound("No pipeline with this id.")
        return pipeline

    @extend_schema(
        operation_id="pipelines_list",
        parameters=[LIMIT_PARAMETER, CURSOR_PARAMETER],
        responses={200: PipelinePageSerializer, **error_responses(400, 401)},
        summary="List pipelines by name",
    )
    def list(self, request):
        params = request.query_params
        errors: dict[str, list[str]] = {}
        limit = parse_limit(params, errors)
        position = None
        if params.get("cursor"):
            try:
                position = decode_cursor(params["cursor"], ordering=selectors.PIPELINES_BY_NAME)
            except ValidationError as exc:
                errors.update(exc.detail)
        if errors:
            raise ValidationError(errors)
        page = selectors.pipeline_page(position=position, limit=limit)
        items = page.items
        cursor = (
            encode_cursor(page.older, ordering=selectors.PIPELINES_BY_NAME) if page.older else None
        )
        return Response(
            {"data": PipelineSerializer(items, many=True).data, "meta": {"cursor": cursor}}
        )

    @extend_schema(
        operation_id="pipelines_create",
        request=PipelineCreateSerializer,
        responses={201: PipelineSerializer, **error_responses(400, 401, 403, 413, 415)},
        summary="Create a pipeline",
    )
    def create(self, request):
        serializer = PipelineCreateSerializer(data=json_object(request))
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        pipeline = services.pipeline_create(
            actor=actor_from_request(request),
            name=data["name"],
            description=data.get("description", ""),
            default_gateway=gateway_from_reference(
                data.get("defaultGateway"), field="defaultGateway"
            ),
            labels=data.get("labels"),
        )
        return Response(PipelineSerializer(pipeline).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="pipelines_retrieve",
        parameters=[STATS_WINDOW_PARAMETER],
        responses={200: PipelineDetailSerializer, **error_responses(400, 401, 404)},
        summary="A pipeline, with its figures over a window",
    )
    def retrieve(self, request, pipeline_id: str):
        params = request.query_params
        window = params.get("window", stats.DEFAULT_STATS_WINDOW)
        if window not in stats.STATS_WINDOWS:
            raise ValidationError(
                {"window": [f"Use one of {', '.join(stats.STATS_WINDOWS)}; got {window!r}."]}
            )
        pipeline = self.get_pipeline()
        pipeline.window_stats = stats.pipeline_stats(pipeline=pipeline, window=window)
        return Response(PipelineDetailSerializer(pipeline).data)

    @extend_schema(
        operation_id="pipelines_partial_update",
        request=PipelineUpdateSerializer,
        responses={
            200: PipelineSerializer,
            **error_responses(400, 401, 403, 404, 413, 415),
        },
        summary="Change a pipeline's name, description or default gateway",
    )
    def partial_update(self, request, pipeline_id: str):
        pipeline = self.get_pipeline()
        serializer = PipelineUpdateSerializer(data=json_object(request))
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        changes = {key: data[key] for key in ("name", "description", "labels") if key in data}
        if "runRetentionDays" in data:
            changes["run_retention_days"] = data["runRetentionDays"]
        if "logRetentionDays" in data:
            changes["log_retention_days"] = data["logRetentionDays"]
        if "defaultGateway" in data:
            changes["default_gateway"] = gateway_from_reference(
                data["defaultGateway"], field="defaultGateway"
            )
        pipeline = services.pipeline_update(
            actor=actor_from_request(request), pipeline=pipeline, changes=changes
        )
        return Response(PipelineSerializer(pipeline).data)
