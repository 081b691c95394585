"""The web app: the Runs page, its live partials, and run detail with cancel and re-run.

Each view parses the query, calls selectors or one service, and renders either the full page or
one of its ``{% partialdef %}`` fragments when htmx asks (never for boosted or history-restore
requests, which need the whole page).
"""

import hashlib
from datetime import datetime, timedelta
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from rest_framework.exceptions import ValidationError

from common.api.pagination import Position, decode_cursor, encode_cursor, keyset_page
from common.audit import AuditAction, audit_request
from common.errors import DomainError
from common.time import parse_aware_instant
from gateways.models import Gateway
from pipelines.models import Pipeline
from runs import selectors, services
from runs.dashboard import (
    DEFAULT_WINDOW,
    HISTOGRAM_STATUSES,
    MEDIAN_SAMPLE,
    Dashboard,
    dashboard_summary,
)
from runs.filters import WINDOW_LABELS, WINDOWS, RunFilter
from runs.models import FINAL_STATUSES, LogLevel, Run, RunStatus, TriggerType
from runs.sparklines import DETAIL_POINTS, histogram_svg, sample_series, sparkline_svg

PAGE_SIZE = 50
DASHBOARD_LIVE_SPAN = timedelta(days=8)
DASHBOARD_CACHE_SECONDS = 20
LIVE_MAX_IDS = 100
TIME_PARAMS = ("window", "dateRange", "from", "to")
SELECT_PARAMS = ("pipelineId", "gatewayId", "trigger", "window", "from", "to", "q")
LOG_LEVELS = [level for level, _ in LogLevel.choices]


def _wants_fragment(request: HttpRequest) -> bool:
    htmx = request.htmx
    return bool(htmx) and not htmx.boosted and not htmx.history_restore_request


def _parse_instant(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return parse_aware_instant(value, from_query_string=True)
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------------
# Runs page


def _selected_statuses(request: HttpRequest) -> list[str]:
    return [
        item.strip()
        for chunk in request.GET.getlist("status")
        for item in chunk.split(",")
        if item.strip()
    ]


def _time_bounds(cleaned: dict[str, Any], now: datetime) -> tuple[datetime | None, datetime]:
    """The window the filters chose: the latest lower bound and the earliest upper bound."""
    lowers: list[datetime] = []
    uppers: list[datetime] = [now]
    if cleaned.get("window"):
        lowers.append(now - WINDOWS[cleaned["window"]])
    if cleaned.get("dateRange"):
        lower, upper = cleaned["dateRange"]
        lowers += [lower] if lower else []
        uppers += [upper] if upper else []
    if cleaned.get("from"):
        lowers.append(cleaned["from"])
    if cleaned.get("to"):
        uppers.append(cleaned["to"])
    return (max(lowers) if lowers else None), min(uppers)


def _window_label(cleaned: dict[str, Any], start: datetime, end: datetime) -> str:
    if cleaned.get("window") and not any(cleaned.get(key) for key in ("dateRange", "from", "to")):
        return WINDOW_LABELS[cleaned["window"]]
    end_text = "now" if (timezone.now() - end) < timedelta(minutes=1) else f"{end:%b %-d}"
    return f"{start:%b %-d, %H:%M} \u2013 {end_text}"


def _without_time(filterset: RunFilter, queryset: QuerySet[Run]) -> QuerySet[Run]:
    """The same filters as ``filterset`` minus the time bounds, reusing its cleaned values."""
    for name, value in filterset.form.cleaned_data.items():
        if name not in TIME_PARAMS and value not in (None, "", []):
            queryset = filterset.filters[name].filter(queryset, value)
    return queryset


def _dashboard(request: HttpRequest, **kwargs: Any) -> Dashboard:
    """The strip; over windows longer than a week (tens of thousands of runs on a busy install)
    it is kept for a few seconds per filter set, so paging and live refreshes do not recount."""
    if kwargs["end"] - kwargs["start"] <= DASHBOARD_LIVE_SPAN:
        return dashboard_summary(**kwargs)
    params = sorted((key, request.GET.getlist(key)) for key in request.GET if key != "cursor")
    key = "runs:dashboard:" + hashlib.sha256(repr(params).encode()).hexdigest()
    board = cache.get(key)
    if board is None:
        board = dashboard_summary(**kwargs)
        cache.set(key, board, DASHBOARD_CACHE_SECONDS)
    return board


def _run_rows(runs: list[Run]) -> list[dict[str, Any]]:
    series = sample_series(runs, keys=("rowsLoaded",))
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
        }
        for run in runs
    ]


def _live_state(runs: list[Run], *, top: Run | None = None) -> dict[str, Any]:
    """What the live poller needs: the page's unfinished runs, the newest version seen of them,
    and on the first page a cursor at its newest run (to find runs created since)."""
    active = [run for run in runs if run.status not in FINAL_STATUSES]
    return {
        "live_ids": ",".join(run.public_id for run in active),
        "live_since": max((run.updated_at for run in active), default=None),
        "live_top": encode_cursor(Position(top.created_at, top.pk, "newer")) if top else None,
    }


def _board_context(request: HttpRequest, filterset: RunFilter) -> dict[str, Any]:
    now = timezone.now()
    cleaned = filterset.form.cleaned_data
    start, end = _time_bounds(cleaned, now)
    is_default_window = start is None
    if start is None:
        start = now - DEFAULT_WINDOW
    board = _dashboard(
        request,
        windowed=filterset.qs.filter(created_at__gte=start, created_at__lt=end),
        unwindowed=_without_time(filterset, selectors.run_queryset()),
        start=start,
        end=end,
        label="Last 24 hours" if is_default_window else _window_label(cleaned, start, end),
        is_default_window=is_default_window,
    )
    return {
        "board": board,
        "median_sample": MEDIAN_SAMPLE,
        "histogram": histogram_svg(board.bars, statuses=HISTOGRAM_STATUSES),
    }


@login_required
@require_GET
@vary_on_headers("HX-Request")
def run_list(request: HttpRequest) -> HttpResponse:
    filterset = RunFilter(request.GET, queryset=selectors.run_queryset())
    context: dict[str, Any] = {
        "statuses": RunStatus.choices,
        "selected_statuses": _selected_statuses(request),
        "triggers": TriggerType.choices,
        "windows": list(WINDOW_LABELS.items()),
        "has_filters": any(request.GET.get(key) for key in request.GET if key not in ("cursor",)),
        # Every select option compares against these: a key absent from request.GET would be a
        # failed template lookup (an exception) per option, hundreds of them with many pipelines.
        "selected": {key: request.GET.get(key, "") for key in SELECT_PARAMS},
        "oob": False,
        "page_error": None,
    }
    if not filterset.is_valid():
        context.update(
            rows=[],
            filter_errors=filterset.errors,
            board=None,
            newer_cursor=None,
            older_cursor=None,
            live_ids="",
            live_since=None,
        )
        status = 400
    else:
        status = 200
        position = None
        if request.GET.get("cursor"):
            try:
                position = decode_cursor(request.GET["cursor"])
            except ValidationError:
                context["page_error"] = (
                    "That page link is no longer valid; showing the newest runs."
                )
        page = keyset_page(filterset.qs, position=position, limit=PAGE_SIZE)
        is_first_page = position is None
        context.update(
            _board_context(request, filterset),
            rows=_run_rows(page.items),
            filter_errors=None,
            newer_cursor=encode_cursor(page.newer) if page.newer else None,
            older_cursor=encode_cursor(page.older) if page.older else None,
            is_first_page=is_first_page,
            **_live_state(page.items, top=page.items[0] if is_first_page and page.items else None),
        )
    if _wants_fragment(request):
        return render(request, "runs/run_list.html#run-table", context, status=status)
    context["pipelines"] = Pipeline.objects.order_by("name").values_list("public_id", "name")
    context["gateways"] = Gateway.objects.order_by("name").values_list("public_id", "name")
    return render(request, "runs/run_list.html", context, status=status)


@login_required
@require_GET
def run_list_live(request: HttpRequest) -> HttpResponse:
    """What changed on the page since the last poll; 204 when nothing did.

    ``ids`` are the page's unfinished runs and ``since`` the newest version seen of them; on the
    first page ``top`` (a cursor at its newest run) and the page's filters also bring runs
    created since, which are prepended, and a fresh dashboard strip. Everything is swapped out
    of band, and the poller replaces itself; once nothing on the page is unfinished it is gone.
    """
    ids = [item for item in request.GET.get("ids", "").split(",") if item][:LIVE_MAX_IDS]
    since = _parse_instant(request.GET.get("since"))
    if not ids:
        return HttpResponse(status=204)
    filterset = RunFilter(request.GET, queryset=selectors.run_queryset())
    top = None
    if request.GET.get("top") and filterset.is_valid():
        try:
            top = decode_cursor(request.GET["top"])
        except ValidationError:
            top = None
    runs = list(selectors.run_queryset().filter(public_id__in=ids).order_by("-created_at", "-id"))
    changed = [run for run in runs if since is None or run.updated_at > since]
    new_runs = keyset_page(filterset.qs, position=top, limit=PAGE_SIZE).items if top else []
    if not changed and not new_runs:
        return HttpResponse(status=204)
    rows = _run_rows(changed + new_runs)
    context: dict[str, Any] = {
        "rows": rows[: len(changed)],
        "new_rows": rows[len(changed) :],
        **_live_state(new_runs + runs, top=new_runs[0] if new_runs else None),
    }
    if top is not None:
        context.update(_board_context(request, filterset))
        if not new_runs:
            context["live_top"] = request.GET["top"]
    return render(request, "runs/run_list.html#live-rows", context)


# ---------------------------------------------------------------------------------------------
# Run detail


def _get_run(public_id: str) -> Run:
    run = selectors.run_get(public_id=public_id)
    if run is None:
        raise Http404("No such run.")
    return run


def _log_filters(request: HttpRequest) -> dict[str, Any]:
    levels = [level for level in request.GET.getlist("level") if level in LOG_LEVELS]
    return {"levels": levels, "text": request.GET.get("logq", "").strip()[:200]}


def _log_lines(run: Run, filters: dict[str, Any], *, after: int | None = None) -> list:
    lines = selectors.run_log_lines(run=run)
    if after is not None:
        lines = lines.filter(seq__gt=after)
    if filters["levels"]:
        lines = lines.filter(level__in=filters["levels"])
    if filters["text"]:
        lines = lines.filter(message__icontains=filters["text"])
    return list(lines)


def _detail_live_context(run: Run) -> dict[str, Any]:
    series = sample_series(
        [run], points=DETAIL_POINTS, keys=("rowsLoaded", "bytesLoaded", "progress")
    )
    values = series.get(run.pk, {})
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
        "nodes": list(selectors.run_nodes(run=run)),
        "summary_items": sorted(
            (key, value)
            for key, value in (run.telemetry_summary or {}).items()
            if not isinstance(value, dict | list)
        ),
    }


def _actions(request: HttpRequest, run: Run) -> dict[str, bool]:
    return {
        "can_cancel": run.can_cancel and request.user.has_perm("runs.cancel_run"),
        "can_rerun": request.user.has_perm("runs.trigger_run"),
    }


@login_required
@require_GET
@vary_on_headers("HX-Request")
def run_detail(request: HttpRequest, public_id: str) -> HttpResponse:
    run = _get_run(public_id)
    filters = _log_filters(request)
    lines = _log_lines(run, filters)
    context = {
        **_detail_live_context(run),
        **_actions(request, run),
        "log_lines": lines,
        "log_filters": filters,
        "log_levels": LOG_LEVELS,
        "log_after": run.log_seq,
    }
    if _wants_fragment(request) and request.htmx.target == "log-panel":
        return render(request, "runs/run_detail.html#log-panel", context)
    return render(request, "runs/run_detail.html", context)


@login_required
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
@require_GET
def run_log_tail(request: HttpRequest, public_id: str) -> HttpResponse:
    """Log lines after ``after`` (a seq), for the live tail; 204 when there are none yet."""
    run = _get_run(public_id)
    try:
        after = max(0, int(request.GET.get("after", "0")))
    except ValueError:
        after = 0
    filters = _log_filters(request)
    if run.log_seq <= after:
        # Nothing new: keep polling while the run can still write, else stop the tail.
        if not run.is_final:
            return HttpResponse(status=204)
        lines = []
    else:
        lines = _log_lines(run, filters, after=after)
    context = {
        "run": run,
        "log_lines": lines,
        "log_filters": filters,
        "log_after": run.log_seq,
    }
    return render(request, "runs/run_detail.html#log-append", context)


@login_required
@require_http_methods(["GET", "POST"])
def run_cancel(request: HttpRequest, public_id: str) -> HttpResponse:
    """GET asks for confirmation (the page works without JavaScript); POST cancels."""
    if not request.user.has_perm("runs.cancel_run"):
        raise PermissionDenied("You may not cancel runs.")
    run = _get_run(public_id)
    if request.method == "GET":
        return render(request, "runs/run_cancel_confirm.html", {"run": run})
    try:
        with transaction.atomic():
            run = services.run_cancel(run=run, actor=request.user)
            audit_request(
                request, action=AuditAction.RUN_CANCELED, target=run, details={"status": run.status}
            )
    except DomainError as error:
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
@require_POST
def run_rerun(request: HttpRequest, public_id: str) -> HttpResponse:
    if not request.user.has_perm("runs.trigger_run"):
        raise PermissionDenied("You may not trigger runs.")
    run = _get_run(public_id)
    with transaction.atomic():
        new_run = services.run_rerun(run=run, created_by=request.user)
        audit_request(
            request,
            action=AuditAction.RUN_RERUN,
            target=run,
            details={"newRunId": new_run.public_id},
        )
    messages.success(request, f"Queued {new_run.public_id}, a re-run of {run.public_id}.")
    return redirect("runs:detail", public_id=new_run.public_id)


# ---------------------------------------------------------------------------------------------
# Gateways panel (here, not in gateways/, because it shows each gateway's runs)


@login_required
@require_GET
@vary_on_headers("HX-Request")
def gateway_list(request: HttpRequest) -> HttpResponse:
    """The gateways panel: status, last seen, running and queued runs per gateway."""
    template = "gateways/gateway_list.html"
    if _wants_fragment(request):
        template += "#gateway-table"
    return render(request, template, {"rows": selectors.gateway_health_list()})
