"""The web app: the Runs page, its live partials, and run detail with cancel and re-run.

Each view parses the query, calls selectors or one service, and renders either the full page or
one of its ``{% partialdef %}`` fragments when htmx asks (never for boosted or history-restore
requests, which need the whole page).
"""

import hashlib
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from rest_framework.exceptions import ValidationError

from common.actors import actor_from_request, page_requires
from common.api.pagination import Position, decode_cursor, encode_cursor, keyset_page
from common.audit import audit_events_for
from common.errors import Conflict, InvalidInput
from common.preferences import (
    BROWSER_ZONE,
    time_zone_names,
    user_preference_set,
    user_time_zone,
)
from common.roles import Perm
from common.time import parse_aware_instant
from common.web import wants_fragment
from gateways.models import Gateway
from pipelines.models import Pipeline
from runs import dashboard, selectors, services, set_views, stats
from runs.api.exports import TOTAL_CAP, total_meta
from runs.dashboard import HISTOGRAM_STATUSES, MEDIAN_SAMPLE
from runs.filters import (
    DEFAULT_SORT,
    RUN_SORTS,
    WINDOW_LABELS,
    InstantField,
    RunFilter,
    StatusListField,
)
from runs.log_panel import (
    LOG_LEVELS,
    filtered_lines,
    first_error,
    log_links,
    log_view,
    parse_log_filters,
)
from runs.models import Run, RunStatus, TriggerType
from runs.sparklines import DETAIL_POINTS, histogram_svg, sample_series, sparkline_svg
from runs.timeline import timeline_svg

PAGE_SIZE = 50
# An older page counts the runs that arrived since it was shown up to this many ("50+ newer").
NEWER_MAX = 50
FILTER_PARAMS = tuple(RunFilter.base_filters)
# What a date-time input sends: a wall time without a zone.
NAIVE_INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?")
# The filters the page can negate with its "not" toggle, and the parameter of each negation.
NEGATIONS = {
    "status": "excludeStatus",
    "pipelineId": "excludePipelineId",
    "gatewayId": "excludeGatewayId",
    "trigger": "excludeTrigger",
    "label": "excludeLabel",
}
# Column headers that sort the table: column -> (descending sort, ascending sort or None).
SORTABLE_COLUMNS = {
    "created": ("-createdAt", "createdAt"),
    "started": ("-startedAt", None),
    "duration": ("-durationSeconds", "durationSeconds"),
    "rows": ("-rowsLoaded", None),
    "bytes": ("-bytesLoaded", None),
}


def _parse_instant(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return parse_aware_instant(value, from_query_string=True)
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------------
# Runs page


def _run_rows(runs: list[Run]) -> list[dict[str, Any]]:
    series = sample_series(runs, keys=("rowsLoaded",))
    judgements = stats.judge_runs(runs)
    # One reverse() for the page rather than one per row.
    detail_url = reverse("runs:detail", args=["RUN_ID"])
    return [
        {
            "run": run,
            "url": detail_url.replace("RUN_ID", run.public_id),
            "spark": sparkline_svg(
                series.get(run.pk, {}).get("rowsLoaded", []),
                label=f"Rows loaded over time by {run.public_id}",
            ),
            "judgement": judgements.get(run.pk),
        }
        for run in runs
    ]


def _live_digest(runs: list[Run], *, newer: int, running: int) -> str:
    """A short fingerprint of what the table shows: its runs and their versions, the count of
    runs newer than the page (older pages only) and "running now". The live poll compares it
    with the one the page holds, so it answers 204 without rendering when nothing changed."""
    parts = [f"{run.public_id}@{run.updated_at.timestamp()}" for run in runs]
    parts += [f"newer={newer}", f"running={running}"]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:20]


def _newer_count(
    queryset: QuerySet[Run], *, position: Position | None, top: Position | None
) -> int:
    """On an older page, how many matching runs arrived since it was first shown (at most
    ``NEWER_MAX + 1``, a bounded count); the first page shows them instead."""
    if position is None or top is None:
        return 0
    newer = queryset.filter(
        Q(created_at__gt=top.value) | Q(created_at=top.value, pk__gt=top.pk),
        created_at__gte=top.value,
    )
    return newer.order_by().values("pk")[: NEWER_MAX + 1].count()


def _page_params(request: HttpRequest) -> QueryDict:
    """The query as the FilterSet takes it. ``from``/``to`` from the page's own date-time inputs
    arrive without a zone when JavaScript is off; they are read in the viewer's pinned zone (or
    UTC), the zone the inputs were written in. The API stays strict about zones."""
    params = request.GET.copy()
    zone = None
    for key in ("from", "to"):
        value = params.get(key, "")
        if len(value) <= 10 or not NAIVE_INSTANT.fullmatch(value):
            continue
        try:
            naive = datetime.fromisoformat(value)
        except ValueError:
            continue  # not a real date-time: the FilterSet refuses it with a 400
        zone = zone or _viewer_zone(request)
        params[key] = naive.replace(tzinfo=zone).isoformat()
    return params


def _viewer_zone(request: HttpRequest) -> ZoneInfo:
    name = user_time_zone(user=request.user)
    return ZoneInfo(name) if name else ZoneInfo("UTC")


def _filter_query(request: HttpRequest) -> str:
    """The filters of the request, as the URL the table stands for (no cursor, no poll state)."""
    params = [
        (key, value) for key in FILTER_PARAMS for value in request.GET.getlist(key) if value != ""
    ]
    return urlencode(params)


def _form_context(request: HttpRequest) -> dict[str, Any]:
    """What the filter form shows: the URL's values as the FilterSet's form reads them, so every
    filter it can express survives a change of another (``dateRange`` kept, ``from``/``to`` with
    their time of day)."""
    form = RunFilter(request.GET, queryset=Run.objects.none()).form

    def raw(name: str) -> Any:
        return form[name].value()

    def values(name: str) -> list[str]:
        value = raw(name)
        return [item for item in (value if isinstance(value, list) else [value]) if item]

    # Every select option compares against these: a key absent would be a failed template
    # lookup (an exception) per option, hundreds of them with many pipelines.
    selected = {
        name: raw(name) or ""
        for name, field in form.fields.items()
        if not isinstance(field.widget, forms.SelectMultiple | forms.CheckboxSelectMultiple)
    }
    negated = {key: bool(values(negation)) for key, negation in NEGATIONS.items()}
    # Labels may be both required and excluded (label=a&excludeLabel=b): the toggle shows ticked
    # only when every applied label is excluded, and ticking it excludes them all.
    negated["label"] = negated["label"] and not values("label")
    # A select shows one value; the others of a URL that leaves out several (two pipelines,
    # say) ride along as hidden inputs, so that submitting the form keeps them all.
    more_left_out: dict[str, list[str]] = {"pipelineId": [], "gatewayId": [], "trigger": []}
    for key in ("pipelineId", "gatewayId", "trigger"):
        if negated[key] and not selected[key]:
            selected[key], *more_left_out[key] = values(NEGATIONS[key])
    return {
        "more_left_out": more_left_out,
        "statuses": RunStatus.choices,
        "selected_statuses": StatusListField.items(
            raw("excludeStatus" if negated["status"] else "status")
        ),
        "negated": negated,
        "names": {key: NEGATIONS[key] if negated[key] else key for key in NEGATIONS},
        "negations": NEGATIONS,
        "label_filters": [
            {"param": param, "value": value, "negated": param == "excludeLabel"}
            for param in ("label", "excludeLabel")
            for value in values(param)
        ],
        "sort": selected["sort"],
        "triggers": TriggerType.choices,
        "windows": list(WINDOW_LABELS.items()),
        "selected": selected,
        "range_inputs": {key: _input_value(selected[key], key) for key in ("from", "to")},
        "date_range": selected["dateRange"],
    }


def _input_value(raw: str, key: str) -> str:
    """A ``from``/``to`` value as a date-time input shows it (UTC; the page's script rewrites
    it in the viewer's zone). A bare date ``to`` covers its day, so it shows the next midnight."""
    if not raw:
        return ""
    if NAIVE_INSTANT.fullmatch(raw):
        return raw
    try:
        instant = InstantField(end_of_day=key == "to").clean(raw)
    except forms.ValidationError:
        return ""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") if instant else ""


def _table_context(
    request: HttpRequest,
    filterset: RunFilter,
    *,
    position: Position | None,
    top: Position | None,
) -> dict[str, Any]:
    ordering = filterset.ordering
    page = keyset_page(filterset.qs, position=position, limit=PAGE_SIZE, ordering=ordering)
    is_first_page = position is None
    if is_first_page and ordering.name == DEFAULT_SORT:
        top = Position(page.items[0].created_at, page.items[0].pk, "newer") if page.items else None
    elif top is None:
        newest = (
            filterset.qs.select_related(None)
            .order_by("-created_at", "-id")
            .only("id", "created_at")
            .first()
        )
        top = Position(newest.created_at, newest.pk, "newer") if newest else None
    board = _board_context(filterset)
    newer = _newer_count(filterset.qs, position=position, top=top)
    running = board["board"].running_now
    if dashboard.may_be_cached(board["board"]):
        # The strip of a long window may come from the cache; the fingerprint must not.
        running = dashboard.running_now(filterset)
    digest = _live_digest(page.items, newer=newer, running=running)
    return {
        **board,
        "rows": _run_rows(page.items),
        "filter_errors": None,
        "newer_cursor": encode_cursor(page.newer, ordering=ordering) if page.newer else None,
        "older_cursor": encode_cursor(page.older, ordering=ordering) if page.older else None,
        "count": total_meta(filterset.qs, first_page=page if is_first_page else None),
        "total_cap": TOTAL_CAP,
        "sort_headers": _sort_headers(request, ordering.name),
        "export_query": _filter_query(request),
        "is_first_page": is_first_page,
        "newer_count": newer,
        "newer_more": newer > NEWER_MAX,
        "live_url": _live_url(
            request, position=position, top=top, digest=digest, ordering_name=ordering.name
        ),
    }


def _sort_headers(request: HttpRequest, current: str) -> dict[str, dict[str, Any]]:
    """Per sortable column: the link its header points at (descending first, then ascending
    where the column has it, then back) and the order it shows now, if any."""
    headers = {}
    for column, (descending, ascending) in SORTABLE_COLUMNS.items():
        if current == descending:
            target, state = ascending or descending, "descending"
        elif current == ascending:
            target, state = descending, "ascending"
        else:
            target, state = descending, ""
        params = [
            (key, value)
            for key in FILTER_PARAMS
            if key != "sort"
            for value in request.GET.getlist(key)
            if value != ""
        ]
        if target != DEFAULT_SORT:
            params.append(("sort", target))
        headers[column] = {
            "url": "?" + urlencode(params),
            "state": state,
            "aria": {"descending": "descending", "ascending": "ascending"}.get(state, "none"),
        }
    return headers


def _live_url(
    request: HttpRequest,
    *,
    position: Position | None,
    top: Position | None,
    digest: str,
    ordering_name: str = DEFAULT_SORT,
) -> str:
    params = [(key, value) for key in FILTER_PARAMS for value in request.GET.getlist(key) if value]
    # The page's view and columns are not filters, but a refreshed table keeps them.
    params += [(key, request.GET[key]) for key in ("view", "columns") if request.GET.get(key)]
    if position is not None:
        params.append(("cursor", encode_cursor(position, ordering=RUN_SORTS[ordering_name])))
    if top is not None:
        params.append(("top", encode_cursor(top)))
    params.append(("v", digest))
    return f"{reverse('runs:list-live')}?{urlencode(params)}"


def _board_context(filterset: RunFilter) -> dict[str, Any]:
    board = dashboard.runs_board(filterset)
    return {
        "board": board,
        "median_sample": MEDIAN_SAMPLE,
        "histogram": histogram_svg(board.bars, statuses=HISTOGRAM_STATUSES),
    }


def _cursor_position(
    request: HttpRequest, key: str, filterset: RunFilter | None = None
) -> tuple[Position | None, bool]:
    """The position a signed cursor names (under the filters' sort; ``top`` is always by
    creation), and whether one was given but is not valid."""
    if not request.GET.get(key):
        return None, False
    try:
        if filterset is None:
            return decode_cursor(request.GET[key]), False
        return decode_cursor(request.GET[key], ordering=filterset.ordering), False
    except ValidationError:
        return None, True


def _invalid_filters_context(filterset: RunFilter) -> dict[str, Any]:
    return {
        "rows": [],
        "filter_errors": filterset.errors,
        "board": None,
        "newer_cursor": None,
        "older_cursor": None,
        "is_first_page": True,
        "newer_count": 0,
        "live_url": None,
        "count": None,
        "sort_headers": None,
        "export_query": None,
    }


@login_required
@page_requires(Perm.VIEW_RUNS, doing="seeing runs")
@require_GET
@vary_on_headers("HX-Request")
def run_list(request: HttpRequest) -> HttpResponse:
    opening_view = set_views.view_redirect(request)
    if opening_view is not None:
        return opening_view
    filterset = RunFilter(_page_params(request), queryset=selectors.run_queryset())
    context: dict[str, Any] = {
        "has_filters": bool(_filter_query(request)),
        "filter_query": _filter_query(request),
        "page_error": None,
        **set_views.current_view_context(request),
    }
    if not filterset.is_valid():
        context.update(_invalid_filters_context(filterset))
        status = 400
    else:
        status = 200
        position, bad_cursor = _cursor_position(request, "cursor", filterset)
        if bad_cursor:
            context["page_error"] = "That page link is no longer valid; showing the newest runs."
        context.update(_table_context(request, filterset, position=position, top=None))
    if wants_fragment(request):
        return render(request, "runs/run_list.html#run-table", context, status=status)
    context.update(_form_context(request))
    context.update(set_views.view_panel_context(request))
    context["pipelines"] = Pipeline.objects.order_by("name").values_list("public_id", "name")
    context["gateways"] = Gateway.objects.order_by("name").values_list("public_id", "name")
    return render(request, "runs/run_list.html", context, status=status)


@login_required
@page_requires(Perm.VIEW_RUNS, doing="seeing runs")
@require_GET
def run_list_live(request: HttpRequest) -> HttpResponse:
    """The table again if anything it shows changed since the page's fingerprint ``v``; else 204.

    One mechanism for every filter and page: the table's runs (new ones, changed ones, ones
    that stopped or started matching), "N newer runs" on an older page (``top`` marks the
    newest run when the page was first shown) and "running now" make the fingerprint. Nothing
    is rendered unless it differs.
    """
    filterset = RunFilter(_page_params(request), queryset=Run.objects.all())
    if not filterset.is_valid():
        return HttpResponse(status=204)
    position, _ = _cursor_position(request, "cursor", filterset)
    top, _ = _cursor_position(request, "top")
    if _current_digest(filterset, position=position, top=top) == request.GET.get("v"):
        return HttpResponse(status=204)
    full = RunFilter(_page_params(request), queryset=selectors.run_queryset())
    full.is_valid()
    context: dict[str, Any] = {
        "has_filters": bool(_filter_query(request)),
        "filter_query": _filter_query(request),
        "page_error": None,
        **set_views.current_view_context(request),
        **_table_context(request, full, position=position, top=top),
    }
    return render(request, "runs/run_list.html#run-table", context)


def _current_digest(
    filterset: RunFilter, *, position: Position | None, top: Position | None
) -> str:
    """The fingerprint of the table as the database has it now, read without rendering: the
    page's runs (ids and versions only), runs newer than ``top`` and "running now"."""
    running = dashboard.running_now(filterset)
    versions = keyset_page(
        filterset.qs.only(
            "id",
            "public_id",
            "created_at",
            "updated_at",
            "started_at",
            "finished_at",
            "rows_loaded",
            "bytes_loaded",
        ),
        position=position,
        limit=PAGE_SIZE,
        ordering=filterset.ordering,
    ).items
    newer = _newer_count(filterset.qs, position=position, top=top)
    return _live_digest(versions, newer=newer, running=running)


def live_poll_url(query: str = "") -> str:
    """The poll URL the first page of ``query``'s filters holds right now, the same the page
    writes (used by the benchmark to time the poll that finds nothing new)."""
    params = QueryDict(query)
    filterset = RunFilter(params, queryset=Run.objects.all())
    if not filterset.is_valid():
        raise ValueError(filterset.errors)
    newest = filterset.qs.order_by("-created_at", "-id").only("id", "created_at").first()
    top = Position(newest.created_at, newest.pk, "newer") if newest else None
    digest = _current_digest(filterset, position=None, top=top)
    pairs = [(key, value) for key in FILTER_PARAMS for value in params.getlist(key) if value]
    pairs += [("top", encode_cursor(top))] if top else []
    pairs.append(("v", digest))
    return f"{reverse('runs:list-live')}?{urlencode(pairs)}"


# ---------------------------------------------------------------------------------------------
# Run detail


def _get_run(public_id: str) -> Run:
    run = selectors.run_get(public_id=public_id)
    if run is None:
        raise Http404("No such run.")
    return run


def _detail_live_context(run: Run) -> dict[str, Any]:
    series = sample_series(
        [run], points=DETAIL_POINTS, keys=("rowsLoaded", "bytesLoaded", "progress")
    )
    values = series.get(run.pk, {})
    nodes = list(selectors.run_nodes(run=run))
    charts = [
        ("Rows loaded", "rowsLoaded", None),
        ("Bytes loaded", "bytesLoaded", None),
        ("Progress", "progress", 100.0),
    ]
    return {
        "run": run,
        "charts": [
            {
                "title": title,
                "key": key,
                "points": len(values.get(key, [])),
                "last": (values.get(key) or [None])[-1],
                "svg": sparkline_svg(
                    values.get(key, []),
                    width=360,
                    height=72,
                    label=f"{title} over time",
                    css_class="spark spark-lg",
                    max_value=ceiling,
                ),
            }
            for title, key, ceiling in charts
        ],
        "nodes": nodes,
        "timeline": timeline_svg(
            run, nodes, detail_url=reverse("runs:detail", args=[run.public_id])
        ),
        "first_error": first_error(run),
        # Who did what to the run, and how (the audit trail).
        "events": list(audit_events_for(target=run)),
        "judgement": stats.judge_run(run),
        "summary_items": sorted(
            (key, value)
            for key, value in (run.telemetry_summary or {}).items()
            if not isinstance(value, dict | list)
        ),
    }


OPERATOR_ROLE_NEEDED = "needs the operator role"


def _actions(request: HttpRequest, run: Run) -> dict[str, Any]:
    """Which actions the viewer may take on ``run``, and why not when they may not: a disabled
    button with its reason says more than a missing one. (The services check again.)"""
    actor = actor_from_request(request)
    may_cancel = actor.has_perm(Perm.CANCEL_RUNS)
    may_rerun = actor.has_perm(Perm.TRIGGER_RUNS)
    cancel_reason = rerun_reason = ""
    if not may_cancel:
        cancel_reason = f"Canceling {OPERATOR_ROLE_NEEDED}."
    elif run.status == RunStatus.CANCEL_REQUESTED:
        cancel_reason = "Cancel already requested: waiting for the runner."
    if not run.is_final:
        rerun_reason = "Re-run is offered once the run has finished."
    elif not may_rerun:
        rerun_reason = f"Re-running {OPERATOR_ROLE_NEEDED}."
    return {
        "can_cancel": run.can_cancel and may_cancel,
        "can_rerun": may_rerun and run.is_final,
        "actions": {"cancel_reason": cancel_reason, "rerun_reason": rerun_reason},
        "cancel": _cancel_state(run),
    }


def _cancel_state(run: Run) -> dict[str, Any] | None:
    """The cancel lifecycle from the run's own fields: requested when, the runner's next report
    after it (its acknowledgement), and the deadline after which the system cancels it."""
    if run.cancel_requested_at is None:
        return None
    grace = timedelta(seconds=settings.RUN_CANCEL_GRACE_SECONDS)
    deadline = run.cancel_requested_at + grace
    return {
        "acknowledged": bool(run.last_report_at and run.last_report_at > run.cancel_requested_at),
        "deadline": deadline,
        "overdue": timezone.now() >= deadline,
        "grace": grace,
    }


@login_required
@page_requires(Perm.VIEW_RUNS, doing="seeing runs")
@require_GET
@vary_on_headers("HX-Request")
def run_detail(request: HttpRequest, public_id: str) -> HttpResponse:
    run = _get_run(public_id)
    filters = parse_log_filters(request.GET)
    log = log_view(run, filters)
    live = _detail_live_context(run)
    log_nodes = selectors.run_node_ids(run=run, nodes=live["nodes"])
    context = {
        **live,
        **_actions(request, run),
        "log": log,
        "log_links": log_links(request.path, filters, live["first_error"]),
        "log_nodes": log_nodes,
        "log_node_known": filters.node in log_nodes,
        "log_lines": log.lines,
        "log_filters": filters,
        "log_levels": LOG_LEVELS,
        "log_after": run.log_seq,
        "selected_node": filters.node,
    }
    if wants_fragment(request) and request.htmx.target == "log-panel":
        return render(request, "runs/run_detail.html#log-panel", context)
    return render(request, "runs/run_detail.html", context)


@login_required
@page_requires(Perm.VIEW_RUNS, doing="seeing runs")
@require_GET
def run_detail_live(request: HttpRequest, public_id: str) -> HttpResponse:
    """The live part of run detail (status, timing, telemetry, nodes); 204 when unchanged."""
    run = _get_run(public_id)
    since = _parse_instant(request.GET.get("since"))
    if since is not None and run.updated_at <= since:
        return HttpResponse(status=204)
    context = {**_detail_live_context(run), **_actions(request, run)}
    return render(request, "runs/run_detail.html#run-live", context)


@login_required
@page_requires(Perm.VIEW_RUNS, doing="seeing runs")
@require_GET
def run_log_tail(request: HttpRequest, public_id: str) -> HttpResponse:
    """Log lines after ``after`` (a seq), for the live tail; 204 when there are none yet."""
    run = _get_run(public_id)
    try:
        after = max(0, int(request.GET.get("after", "0")))
    except ValueError:
        after = 0
    filters = parse_log_filters(request.GET)
    if run.log_seq <= after:
        # Nothing new: keep polling while the run can still write, else stop the tail.
        if not run.is_final:
            return HttpResponse(status=204)
        lines = []
    else:
        lines = filtered_lines(run, filters, after=after)
    context = {
        "run": run,
        "log_lines": lines,
        "log_filters": filters,
        "log_after": run.log_seq,
    }
    return render(request, "runs/run_detail.html#log-append", context)


@login_required
@page_requires(Perm.CANCEL_RUNS, doing="cancelling a run")
@require_http_methods(["GET", "POST"])
def run_cancel(request: HttpRequest, public_id: str) -> HttpResponse:
    """GET asks for confirmation (the page works without JavaScript); POST cancels."""
    run = _get_run(public_id)
    if request.method == "GET":
        return render(request, "runs/run_cancel_confirm.html", {"run": run})
    try:
        run = services.run_cancel(run=run, actor=actor_from_request(request))
    except Conflict as error:
        messages.error(request, error.message)
    else:
        if run.status == RunStatus.CANCELED:
            messages.success(request, f"Run {run.public_id} was canceled.")
        else:
            messages.success(
                request, f"Cancel requested: the runner will stop {run.public_id} at a safe point."
            )
    return redirect("runs:detail", public_id=run.public_id)


@login_required
@page_requires(Perm.TRIGGER_RUNS, doing="re-running a run")
@require_POST
def run_rerun(request: HttpRequest, public_id: str) -> HttpResponse:
    run = _get_run(public_id)
    try:
        new_run = services.run_rerun(run=run, actor=actor_from_request(request))
    except Conflict as error:
        messages.error(request, error.message)
        return redirect("runs:detail", public_id=run.public_id)
    messages.success(request, f"Queued {new_run.public_id}, a re-run of {run.public_id}.")
    return redirect("runs:detail", public_id=new_run.public_id)


# ---------------------------------------------------------------------------------------------
# Gateways panel (here, not in gateways/, because it shows each gateway's runs)


@login_required
@page_requires(Perm.VIEW_GATEWAYS, doing="seeing gateways")
@require_GET
@vary_on_headers("HX-Request")
def gateway_list(request: HttpRequest) -> HttpResponse:
    """The gateways panel: status, last seen, running and queued runs per gateway."""
    template = "gateways/gateway_list.html"
    if wants_fragment(request):
        template += "#gateway-table"
    return render(request, template, {"rows": selectors.gateway_health_list()})


# ---------------------------------------------------------------------------------------------
# The viewer's preferences (the time zone the pages show times in)


@login_required
@require_http_methods(["GET", "POST"])
def preferences(request: HttpRequest) -> HttpResponse:
    error = None
    status = 200
    if request.method == "POST":
        try:
            user_preference_set(
                actor=actor_from_request(request), time_zone=request.POST.get("timeZone", "")
            )
        except InvalidInput as refused:
            error, status = refused.message, 400
        else:
            messages.success(request, "Saved: times are shown in the zone you chose.")
            return redirect("runs:preferences")
    current = request.POST.get("timeZone", "") if error else user_time_zone(user=request.user)
    context = {
        "zones": time_zone_names(),
        "current": current,
        "browser_zone": BROWSER_ZONE,
        "error": error,
    }
    return render(request, "runs/preferences.html", context, status=status)
