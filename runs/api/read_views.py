"""The read API: list, read, cancel runs; their nodes and logs (``/api/runs``).

Callers are people: an API key (``Authorization: Bearer``) or a signed-in session. A gateway token
is not an API key, so it is refused with 401 like any unknown bearer secret.
"""

import functools
from datetime import datetime
from typing import Any, cast

from django import forms
from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.authentication import SessionAuthentication
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response

from common.actors import actor_from_request
from common.api.pagination import (
    BoundedCount,
    FirstPage,
    InvalidCursor,
    Ordering,
    Page,
    decode_cursor,
    encode_cursor,
    keyset_page,
    read_cursor,
    sign_cursor,
)
from common.api.params import (
    CURSOR_PARAMETER,
    LIMIT_PARAMETER,
    FormatIsAParameter,
    HasActionPermission,
    parse_limit,
)
from common.api.schema import error_responses
from common.api.views import ApiGenericViewSet
from common.labels import KEY_PATTERN, MAX_VALUE_CHARS
from common.roles import Perm
from gateways.authentication import ApiKeyAuthentication, IsPerson
from runs import compare, selectors, services, stats
from runs.api import exports  # TOTAL_CAP read per request (a test may lower it)
from runs.api.compare_serializers import CompareSerializer
from runs.api.exports import (
    EXPORT_FORMATS,
    EXPORT_VALUES,
    LOG_DOWNLOAD_FORMATS,
    export_response,
    export_row,
    log_download_response,
    total_meta,
)
from runs.api.read_serializers import (
    LogLineOutSerializer,
    RunCancelSerializer,
    RunDetailSerializer,
    RunLogsSerializer,
    RunNodeOutSerializer,
    RunNodesSerializer,
    run_detail_body,
)
from runs.api.schema import page_ref
from runs.filters import RUN_SORTS, InstantField, RunFilter, run_filter_checked
from runs.models import STATUS_ALIASES, Run, RunStatus, TriggerType
from runs.representations import RunListItem, RunPage, eta_repr

LOG_CURSOR_PREFIX = "crs_"
LOG_CURSOR_SALT = "runs.log-cursor"


def run_list_queryset() -> QuerySet[Run]:
    return Run.objects.all()


# A list item's columns, read as ``.values()`` rows (several times cheaper than model instances
# with their pipeline and gateway), plus what a running run's ETA is computed from.
LIST_VALUES = (*EXPORT_VALUES, "pipeline_id", "progress")


def run_list_items(rows: list[dict[str, Any]]) -> list[RunListItem]:
    """A page of ``LIST_VALUES`` rows as list items: the export's fields, and the ETA of the
    running ones (``runs.stats.running_etas``: one query, whatever the page holds)."""
    now = timezone.now()
    etas = stats.running_etas(
        [
            stats.Running(row["id"], row["pipeline_id"], row["started_at"], row["progress"])
            for row in rows
            if row["status"] == RunStatus.RUNNING
        ],
        now=now,
    )
    items: list[RunListItem] = []
    for row in rows:
        item = cast(RunListItem, export_row(row, now=now))
        item["eta"] = eta_repr(etas.get(row["id"]))
        items.append(item)
    return items


@functools.cache
def unfiltered_list(limit: int, cap: int) -> tuple[FirstPage, BoundedCount] | None:
    """The statements of the list's first page with no filter (``GET /api/runs``, at most a
    ``limit``) and of its bounded total, built by the filterset and the paginator as for any
    request, and compiled once per process: they bind nothing, so every such request runs the
    same two statements, and building and compiling them cost more than PostgreSQL took to run
    them. None if either binds a value (it would then be planned per request)."""
    filterset = RunFilter(data={}, queryset=run_list_queryset())
    first_page = FirstPage.of(
        filterset.qs.values(*LIST_VALUES), limit=limit, ordering=filterset.ordering
    )
    counted = BoundedCount.of(filterset.qs, cap=cap)
    if first_page is None or first_page.statement.params or counted.params:
        return None
    return first_page, counted


def log_cursor(run: Run, seq: int) -> str:
    """The position after line ``seq`` of this run's log, in the one cursor scheme; the prefix
    tells it from a timestamp in ``since``."""
    return LOG_CURSOR_PREFIX + sign_cursor([run.public_id, seq], salt=LOG_CURSOR_SALT)


def log_cursor_seq(run: Run, cursor: str) -> int:
    """The position a cursor of this run stands for; anything forged or foreign is a 400."""
    try:
        public_id, seq = read_cursor(
            cursor.removeprefix(LOG_CURSOR_PREFIX), salt=LOG_CURSOR_SALT, length=2
        )
    except InvalidCursor:
        public_id, seq = None, None
    if public_id == run.public_id and type(seq) is int and seq >= 0:
        return seq
    raise ValidationError({"since": ["Invalid or tampered log cursor."]})


def parse_since_timestamp(raw: str) -> datetime:
    try:
        since = InstantField().clean(raw)
    except forms.ValidationError as exc:
        raise ValidationError({"since": exc.messages}) from None
    return since


_STATUS = "(" + "|".join([*RunStatus.values, *STATUS_ALIASES]) + ")"
_DATE = r"\d{4}-\d{2}-\d{2}"
# A label filter's ``key:value``, from the rules of ``common.labels``.
LABEL_PAIR_SCHEMA = {
    "type": "string",
    "pattern": f"^{KEY_PATTERN.pattern}:.{{0,{MAX_VALUE_CHARS}}}$",
}
INSTANT_SCHEMA = {
    "type": "string",
    "anyOf": [{"format": "date"}, {"format": "date-time"}],
}
LIST_PARAMETERS = [
    OpenApiParameter("pipelineId", str, description="Only runs of this pipeline (`pl_...`)."),
    OpenApiParameter(
        "status",
        {"type": "string", "pattern": f"^{_STATUS}( *, *{_STATUS})*$"},
        description="One status or a comma list: " + ", ".join(RunStatus.values) + ".",
    ),
    OpenApiParameter("gatewayId", str, description="Only runs targeted at this gateway."),
    OpenApiParameter("trigger", str, enum=list(TriggerType.values)),
    OpenApiParameter(
        "dateRange",
        {"type": "string", "pattern": f"^({_DATE}\\.\\.({_DATE})?|\\.\\.{_DATE})$"},
        description="`YYYY-MM-DD..YYYY-MM-DD`, both days included (UTC); either end may be open.",
    ),
    OpenApiParameter(
        "from",
        INSTANT_SCHEMA,
        description="Created at or after: a date (UTC) or an ISO 8601 timestamp with a timezone.",
    ),
    OpenApiParameter(
        "to",
        INSTANT_SCHEMA,
        description="Created before: an ISO 8601 timestamp, or a date (its whole day included).",
    ),
    OpenApiParameter(
        "baseline",
        str,
        enum=["out"],
        description="`out`: only runs out of their pipeline's baseline (those with badges).",
    ),
    OpenApiParameter(
        "label",
        LABEL_PAIR_SCHEMA,
        many=True,
        explode=True,
        description="`key:value`; repeat for more: every pair must match.",
    ),
    OpenApiParameter(
        "excludeStatus",
        {"type": "string", "pattern": f"^{_STATUS}( *, *{_STATUS})*$"},
        description="Leave out runs in these statuses (one or a comma list).",
    ),
    OpenApiParameter(
        "excludePipelineId",
        str,
        many=True,
        explode=True,
        description="Leave out these pipelines' runs.",
    ),
    OpenApiParameter(
        "excludeGatewayId",
        str,
        many=True,
        explode=True,
        description="Leave out runs on these gateways.",
    ),
    OpenApiParameter(
        "excludeTrigger",
        {"type": "string", "enum": list(TriggerType.values)},
        many=True,
        explode=True,
        description="Leave out runs of these trigger types.",
    ),
    OpenApiParameter(
        "excludeLabel",
        LABEL_PAIR_SCHEMA,
        many=True,
        explode=True,
        description="`key:value`; leave out runs holding any of these pairs.",
    ),
    OpenApiParameter(
        "sort",
        str,
        enum=list(RUN_SORTS),
        default="-createdAt",
        description="The order (ties by id; runs without the value, e.g. not started, last). "
        "A cursor pages only the sort it was made under.",
    ),
    LIMIT_PARAMETER,
    CURSOR_PARAMETER,
]
PAGING = {"limit", "cursor"}
RUN_ID_PARAMETER = OpenApiParameter("run_id", str, OpenApiParameter.PATH, description="Run id.")


@extend_schema(tags=["runs"], parameters=[RUN_ID_PARAMETER])
class RunViewSet(ApiGenericViewSet):
    authentication_classes = [ApiKeyAuthentication, SessionAuthentication]
    permission_classes = [IsPerson, HasActionPermission]
    # ``format`` names the file format of the downloads (export, logs), not a renderer.
    content_negotiation_class = FormatIsAParameter
    # Reads need a viewer; cancel and re-run are checked (and recorded) by their services.
    action_permissions = {
        "list": Perm.VIEW_RUNS,
        "retrieve": Perm.VIEW_RUNS,
        "nodes": Perm.VIEW_RUNS,
        "logs": Perm.VIEW_RUNS,
        "export": Perm.VIEW_RUNS,
        "compare": Perm.VIEW_RUNS,
    }
    lookup_url_kwarg = "run_id"
    lookup_value_regex = "[^/]+"
    serializer_class = RunDetailSerializer

    def get_run(self) -> Run:
        run = selectors.run_get(public_id=self.kwargs["run_id"])
        if run is None:
            raise NotFound("No run with this id.")
        return run

    @extend_schema(
        operation_id="runs_list",
        parameters=LIST_PARAMETERS,
        responses={200: page_ref(RunPage), **error_responses(400, 401)},
        summary="List runs (newest first unless `sort` says otherwise)",
    )
    def list(self, request):
        params = request.query_params
        errors: dict[str, list[str]] = {}
        limit = parse_limit(params, errors)
        # No filter and no cursor: the statements this process compiled for the first such
        # request (``unfiltered_list``).
        unfiltered = None
        if not errors and params.keys() <= {"limit"}:
            unfiltered = unfiltered_list(limit, exports.TOTAL_CAP)
        if unfiltered is not None:
            first_page, counted = unfiltered
            page = first_page.read()
            total = total_meta(counted, first_page=page)
            return self._list_response(page, first_page.ordering, total)
        filterset = run_filter_checked(params, queryset=run_list_queryset(), errors=errors)
        ordering = filterset.ordering
        position = None
        if params.get("cursor") and "sort" not in errors:
            try:
                position = decode_cursor(params["cursor"], ordering=ordering)
            except ValidationError as exc:
                errors.update(exc.detail)
            else:
                if position.direction != "older":
                    errors["cursor"] = ["Invalid or tampered cursor."]
        if errors:
            raise ValidationError(errors)
        rows = filterset.qs.values(*LIST_VALUES)
        page = keyset_page(rows, position=position, limit=limit, ordering=ordering)
        total = total_meta(filterset.qs, first_page=page if position is None else None)
        return self._list_response(page, ordering, total)

    def _list_response(self, page: Page, ordering: Ordering, total: dict[str, int]) -> Response:
        meta: dict[str, Any] = {
            "cursor": encode_cursor(page.older, ordering=ordering) if page.older else None,
            "sort": ordering.name,
            **total,
        }
        return Response({"data": run_list_items(page.items), "meta": meta})

    @extend_schema(
        operation_id="runs_export",
        parameters=[
            OpenApiParameter(
                "format",
                str,
                enum=[*EXPORT_FORMATS],
                default="csv",
                description="`csv` (a header row, then one row per run) or `ndjson` (one JSON "
                "object per line, the list item's shape).",
            ),
            *[parameter for parameter in LIST_PARAMETERS if parameter.name not in PAGING],
        ],
        responses={
            (200, "text/csv"): OpenApiTypes.STR,
            (200, "application/x-ndjson"): OpenApiTypes.STR,
            **error_responses(400, 401, 403),
        },
        summary="Download every run matching the filters",
        description="Streams the whole matching set (not one page) in the order `sort` picks, "
        "read in keyset chunks so that memory stays flat at millions of runs.",
    )
    @action(detail=False, methods=["get"], url_path="export")
    def export(self, request):
        params = request.query_params
        errors: dict[str, list[str]] = {}
        export_format = params.get("format", "csv")
        if export_format not in EXPORT_FORMATS:
            errors["format"] = [f"Use one of {', '.join(EXPORT_FORMATS)}; got {export_format!r}."]
        filterset = run_filter_checked(params, queryset=run_list_queryset(), errors=errors)
        if errors:
            raise ValidationError(errors)
        return export_response(filterset.qs, ordering=filterset.ordering, fmt=export_format)

    @extend_schema(
        operation_id="runs_retrieve",
        responses={200: RunDetailSerializer, **error_responses(401, 404)},
        summary="A run's full record",
    )
    def retrieve(self, request, run_id: str):
        return Response(run_detail_body(self.get_run(), actor=actor_from_request(request)))

    @extend_schema(
        operation_id="runs_cancel",
        responses={200: RunCancelSerializer, **error_responses(401, 403, 404, 409)},
        summary="Cancel a run",
        description="A queued run is canceled at once; a running one moves to "
        "`cancel_requested` and its runner stops at its next safe point. A final run: 409.",
    )
    def destroy(self, request, run_id: str):
        run = services.run_cancel(run=self.get_run(), actor=actor_from_request(request))
        if run.status == RunStatus.CANCELED:
            message = "Run canceled before it started."
        else:
            message = "Cancellation accepted; the runner will stop at its next safe point."
        return Response({"id": run.public_id, "status": run.status, "message": message})

    @extend_schema(
        operation_id="runs_rerun",
        request=None,
        responses={201: RunDetailSerializer, **error_responses(401, 403, 404, 409)},
        summary="Re-run a finished run",
        description="Queues a new run of the same pipeline on the same gateway (trigger "
        "`rerun`, `rerunOf` the original). A run that has not finished: 409.",
    )
    @action(detail=True, methods=["post"])
    def rerun(self, request, run_id: str):
        actor = actor_from_request(request)
        new_run = services.run_rerun(run=self.get_run(), actor=actor)
        return Response(run_detail_body(new_run, actor=actor), status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="runs_compare",
        parameters=[
            OpenApiParameter(
                "with",
                str,
                description="The run to compare with (any pipeline's; another pipeline's is "
                "flagged). Default: this pipeline's newest succeeded run before this one.",
            )
        ],
        responses={200: CompareSerializer, **error_responses(400, 401, 404)},
        summary="Compare a run with another, side by side and node by node",
    )
    @action(detail=True, methods=["get"])
    def compare(self, request, run_id: str):
        params = request.query_params
        run = self.get_run()
        other_id = params.get("with", "").strip()
        if other_id:
            other = selectors.run_get(public_id=other_id)
            if other is None:
                raise NotFound("No run with the id given in `with`.")
            basis = "picked"
        else:
            other = compare.previous_succeeded(run=run)
            if other is None:
                raise NotFound(
                    "This pipeline has no succeeded run before this one; pass `with` to pick one."
                )
            basis = "previous-succeeded"
        comparison = compare.run_compare(run=run, other=other, basis=basis)
        return Response(CompareSerializer(comparison).data)

    @extend_schema(
        operation_id="runs_nodes",
        responses={200: RunNodesSerializer, **error_responses(401, 404)},
        summary="Per-node execution records of a run",
    )
    @action(detail=True, methods=["get"])
    def nodes(self, request, run_id: str):
        run = self.get_run()
        nodes = selectors.run_nodes(run=run)
        return Response(
            {"runId": run.public_id, "nodes": RunNodeOutSerializer(nodes, many=True).data}
        )

    @extend_schema(
        operation_id="runs_logs",
        parameters=[
            OpenApiParameter("nodeId", str, description="Only this node's lines."),
            OpenApiParameter(
                "since",
                OpenApiTypes.STR,
                description="A `nextCursor` from an earlier answer (only newer lines), "
                "or an ISO 8601 timestamp (lines logged after it).",
            ),
            OpenApiParameter(
                "format",
                str,
                enum=[*LOG_DOWNLOAD_FORMATS],
                description="Download the whole kept log as a file instead: `text` (one line "
                "per entry) or `ndjson` (one JSON object per line).",
            ),
        ],
        responses={
            200: RunLogsSerializer,
            (200, "text/plain"): OpenApiTypes.STR,
            (200, "application/x-ndjson"): OpenApiTypes.STR,
            **error_responses(400, 401, 404),
        },
        summary="A run's log lines, oldest first",
    )
    @action(detail=True, methods=["get"])
    def logs(self, request, run_id: str):
        params = request.query_params
        if "format" in params:
            log_format = params["format"]
            if log_format not in LOG_DOWNLOAD_FORMATS:
                raise ValidationError(
                    {
                        "format": [
                            f"Use one of {', '.join(LOG_DOWNLOAD_FORMATS)}; got {log_format!r}."
                        ]
                    }
                )
            return log_download_response(self.get_run(), fmt=log_format)
        run = self.get_run()
        lines = selectors.run_log_lines(run=run)
        node_id = params.get("nodeId")
        if node_id:
            lines = lines.filter(node_id=node_id)
        since, since_seq = params.get("since"), 0
        if since and since.startswith(LOG_CURSOR_PREFIX):
            since_seq = log_cursor_seq(run, since)
            lines = lines.filter(seq__gt=since_seq)
        elif since:
            lines = lines.filter(at__gt=parse_since_timestamp(since))
        lines = list(lines)
        # Lines are numbered in commit order under the run's row lock, so every line up to the
        # run's log_seq as read above is committed and was either returned or filtered out:
        # the next fetch can start after it without skipping any.
        position = max(since_seq, run.log_seq, lines[-1].seq if lines else 0)
        return Response(
            {
                "runId": run.public_id,
                "lines": LogLineOutSerializer(lines, many=True).data,
                "nextCursor": log_cursor(run, position),
                "logRemovedAfterDays": run.log_pruned_after_days,
            }
        )
