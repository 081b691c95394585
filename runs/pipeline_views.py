"""Pipeline pages: the list with each pipeline's figures, and one pipeline's charts and runs.

They live in the runs app because every figure comes from runs (imports point one way)."""

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import django_filters
from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from common.actors import actor_from_request, page_requires
from common.labels import label_pair_parsed
from common.roles import Perm
from common.web import wants_fragment
from gateways.models import Gateway
from pipelines import selectors as pipeline_selectors
from pipelines.models import Pipeline
from runs import selectors, services, stats
from runs.filters import InstantField, LabelListFilter
from runs.models import FINAL_STATUSES, Run, RunStatus
from runs.pipeline_charts import (
    ChartPoint,
    daily_success_svg,
    duration_chart_svg,
    volume_chart_svg,
)
from runs.sparklines import sparkline_svg

RECENT_RUNS = 20
CHART_MAX_RUNS = 2000
DETAIL_WINDOWS = {
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
}
DEFAULT_DETAIL_WINDOW = "30d"
SORTS = {
    "name": "Name",
    "last": "Last run",
    "runs7": "Runs, 7 days",
    "rate7": "Success, 7 days",
    "runs30": "Runs, 30 days",
    "rate30": "Success, 30 days",
    "p50": "p50 duration",
    "p90": "p90 duration",
    "rows": "Rows per run",
}


# ---------------------------------------------------------------------------------------------
# /pipelines/


class PipelineFilter(django_filters.FilterSet):
    """The one FilterSet of the pipelines list: default gateway, default labels
    (``label=key:value``, repeatable: all must match), name, sort."""

    gatewayId = django_filters.ModelChoiceFilter(
        field_name="default_gateway", queryset=Gateway.objects.all(), to_field_name="public_id"
    )
    label = LabelListFilter()
    q = django_filters.CharFilter(field_name="name", lookup_expr="icontains", max_length=200)
    sort = django_filters.ChoiceFilter(
        method="filter_sort",
        choices=list(SORTS.items())
        + [(f"-{key}", f"{label}, descending") for key, label in SORTS.items()],
    )

    class Meta:
        model = Pipeline
        fields: list[str] = []

    def filter_sort(self, queryset, name, value):
        return queryset  # sorted on the figures, after they are computed


def _sort_key(key: str):
    def rate(value):
        return -1.0 if value is None else value

    def number(value):
        return -1.0 if value is None else float(value)

    return {
        "name": lambda row: row["pipeline"].name.lower(),
        "last": lambda row: row["last"].created_at.timestamp() if row["last"] else 0.0,
        "runs7": lambda row: row["week"].runs,
        "rate7": lambda row: rate(row["week"].success_rate),
        "runs30": lambda row: row["month"].runs,
        "rate30": lambda row: rate(row["month"].success_rate),
        "p50": lambda row: number(row["month"].duration_p50),
        "p90": lambda row: number(row["month"].duration_p90),
        "rows": lambda row: number(row["month"].rows_median),
    }[key]


def pipeline_rows(pipelines: list[Pipeline], *, sort: str) -> list[dict[str, Any]]:
    """Each pipeline with its figures: seven queries whatever the number of pipelines."""
    pks = [pipeline.pk for pipeline in pipelines]
    week = stats.window_stats(pipeline_pks=pks, window="7d", figures_too=False)
    month = stats.window_stats(pipeline_pks=pks, window="30d")
    last = stats.last_runs(pipeline_pks=pks)
    recent = stats.recent_succeeded(pks)
    detail_url = reverse("runs:pipeline-detail", args=["PL_ID"])
    runs_url = reverse("runs:list")
    rows = []
    for pipeline in pipelines:
        trend = [item.duration for item in reversed(recent.get(pipeline.pk, [])[:20])]
        rows.append(
            {
                "pipeline": pipeline,
                "url": detail_url.replace("PL_ID", pipeline.public_id),
                "runs_url": f"{runs_url}?pipelineId={pipeline.public_id}",
                "week": week[pipeline.pk],
                "month": month[pipeline.pk],
                "last": last.get(pipeline.pk),
                "trend": sparkline_svg(
                    [value for value in trend if value is not None],
                    label=f"Durations of the newest succeeded runs of {pipeline.name}",
                ),
            }
        )
    descending = sort.startswith("-")
    rows.sort(key=_sort_key(sort.lstrip("-")), reverse=descending)
    return rows


def _label_box(values: list[str], refused: list[str] | None) -> dict[str, Any]:
    """The filter form's label box: the pairs it applies, as chips, and a refused one back in
    its text input with the reason beside it (the other fields' errors go above the table)."""
    if not refused:
        return {"label_filters": values, "label_input": "", "label_error": ""}
    first_bad = None
    for index, value in enumerate(values):
        try:
            label_pair_parsed(value)
        except ValueError:
            first_bad = index
            break
    if first_bad is None:  # every pair is well formed, but there are too many of them
        return {"label_filters": values, "label_input": "", "label_error": " ".join(refused)}
    return {
        "label_filters": values[:first_bad] + values[first_bad + 1 :],
        "label_input": values[first_bad],
        "label_error": " ".join(refused),
    }


@login_required
@page_requires(Perm.VIEW_PIPELINES, doing="seeing pipelines")
@require_GET
@vary_on_headers("HX-Request")
def pipeline_list(request: HttpRequest) -> HttpResponse:
    filterset = PipelineFilter(request.GET, queryset=pipeline_selectors.pipeline_queryset())
    status = 200
    if filterset.is_valid():
        sort = filterset.form.cleaned_data.get("sort") or "name"
        rows = pipeline_rows(list(filterset.qs.order_by("name")), sort=sort)
        errors: dict[str, list[str]] = {}
    else:
        sort, rows, errors, status = "name", [], dict(filterset.errors), 400
    fragment = wants_fragment(request)
    context = {
        "rows": rows,
        "sort": sort,
        "sorts": SORTS,
        "invalid": bool(errors),
        "filter_errors": {field: reasons for field, reasons in errors.items() if field != "label"},
        "selected": {key: request.GET.get(key, "") for key in ("gatewayId", "q", "sort")},
        **_label_box(
            [value for value in request.GET.getlist("label") if value], errors.get("label")
        ),
        # A fragment carries the label box's error too, swapped into the form out of band.
        "label_error_oob": fragment,
    }
    if fragment:
        return render(
            request, "pipelines/pipeline_list.html#pipeline-table", context, status=status
        )
    context["gateways"] = Gateway.objects.order_by("name").values_list("public_id", "name")
    return render(request, "pipelines/pipeline_list.html", context, status=status)


# ---------------------------------------------------------------------------------------------
# /pipelines/{id}/


class WindowForm(forms.Form):
    window = forms.ChoiceField(choices=[(key, key) for key in DETAIL_WINDOWS], required=False)
    # A dragged window: ISO timestamps (or dates).
    start = InstantField(required=False)
    end = InstantField(required=False, end_of_day=True)

    def clean(self):
        data = super().clean()
        if data.get("start") and data.get("end") and data["start"] >= data["end"]:
            self.add_error("start", "The window's start is not before its end.")
        return data


def _window(form: WindowForm, now: datetime) -> tuple[datetime, datetime, str]:
    data = form.cleaned_data
    if data.get("start") or data.get("end"):
        end = min(data.get("end") or now, now)
        start = data.get("start") or end - DETAIL_WINDOWS[DEFAULT_DETAIL_WINDOW]
        return start, max(end, start + timedelta(seconds=1)), ""
    window = data.get("window") or DEFAULT_DETAIL_WINDOW
    return now - DETAIL_WINDOWS[window], now, window


def _seconds(run: Run) -> float | None:
    if run.started_at is None or run.finished_at is None:
        return None
    return max(0.0, (run.finished_at - run.started_at).total_seconds())


def _charts(runs: list[Run], *, start: datetime, end: datetime, band: stats.WindowStats):
    detail_url = reverse("runs:detail", args=["RUN_ID"])
    durations, rows, sizes = [], [], []
    per_day: dict[datetime, list[int]] = defaultdict(lambda: [0, 0])
    for run in runs:
        url = detail_url.replace("RUN_ID", run.public_id)
        at = run.started_at or run.created_at
        seconds = _seconds(run)
        when = f"{at:%Y-%m-%d %H:%M} UTC"
        if seconds is not None:
            durations.append(
                ChartPoint(
                    at,
                    seconds,
                    run.status,
                    url,
                    f"{run.public_id} · {run.status} · {seconds:.0f} s · {when}",
                )
            )
        if run.rows_loaded is not None:
            rows.append(
                ChartPoint(
                    at,
                    run.rows_loaded,
                    run.status,
                    url,
                    f"{run.public_id} · {run.rows_loaded:,} rows · {when}",
                )
            )
        if run.bytes_loaded is not None:
            sizes.append(
                ChartPoint(
                    at,
                    run.bytes_loaded,
                    run.status,
                    url,
                    f"{run.public_id} · {run.bytes_loaded:,} bytes · {when}",
                )
            )
        if run.status in (RunStatus.SUCCEEDED, RunStatus.FAILED):
            day = run.created_at.replace(hour=0, minute=0, second=0, microsecond=0)
            per_day[day][1] += 1
            per_day[day][0] += run.status == RunStatus.SUCCEEDED
    days = sorted((day, counts[0], counts[1]) for day, counts in per_day.items())
    day_start = start.replace(hour=0, minute=0, second=0, microsecond=0)
    return {
        "duration": duration_chart_svg(
            durations, start=start, end=end, p50=band.duration_p50, p90=band.duration_p90
        ),
        "rows": volume_chart_svg(
            rows, start=start, end=end, label="Rows loaded by each run", bytes_=False
        ),
        "bytes": volume_chart_svg(
            sizes, start=start, end=end, label="Bytes loaded by each run", bytes_=True
        ),
        "success": daily_success_svg(days, start=day_start, end=end),
        "points": len(durations),
        "days": days,
    }


def _get_pipeline(public_id: str) -> Pipeline:
    pipeline = pipeline_selectors.pipeline_get(public_id=public_id)
    if pipeline is None:
        raise Http404("No such pipeline.")
    return pipeline


def pipeline_window_runs(*, pipeline: Pipeline, start: datetime, end: datetime) -> list[Run]:
    """The window's runs, oldest first (at most ``CHART_MAX_RUNS``, the newest)."""
    in_window = Run.objects.filter(created_at__gte=start, created_at__lte=end)
    newest = selectors.of_pipeline_newest_first(in_window, pipeline.pk).only(
        "public_id",
        "status",
        "created_at",
        "started_at",
        "finished_at",
        "rows_loaded",
        "bytes_loaded",
        "pipeline_id",
    )[:CHART_MAX_RUNS]
    return list(reversed(newest))


def recent_runs(*, pipeline: Pipeline, limit: int) -> list[Run]:
    """The pipeline's newest runs: their ids first (an index-only scan), then the rows."""
    newest = selectors.of_pipeline_newest_first(Run.objects.all(), pipeline.pk)
    pks = list(newest.values_list("pk", flat=True)[:limit])
    return list(selectors.run_queryset().filter(pk__in=pks).order_by("-created_at", "-id"))


@login_required
@page_requires(Perm.VIEW_PIPELINES, doing="seeing pipelines")
@require_GET
def pipeline_detail(request: HttpRequest, public_id: str) -> HttpResponse:
    pipeline = _get_pipeline(public_id)
    now = timezone.now()
    form = WindowForm(request.GET)
    status = 200
    if not form.is_valid():
        status = 400
        form = WindowForm({})
        form.is_valid()
        window_error = "That window is not valid; showing the last 30 days."
    else:
        window_error = None
    start, end, window = _window(form, now)
    window_runs = pipeline_window_runs(pipeline=pipeline, start=start, end=end)
    figures = stats.window_stats(
        pipeline_pks=[pipeline.pk], window=window or "custom", start=start, now=end
    )[pipeline.pk]
    recent = recent_runs(pipeline=pipeline, limit=RECENT_RUNS)
    judgements = stats.judge_runs(recent, now=now)
    baseline = stats.pipeline_baseline(pipeline_pk=pipeline.pk)
    context = {
        "pipeline": pipeline,
        "window": window,
        "windows": list(DETAIL_WINDOWS),
        "start": start,
        "end": end,
        "window_error": window_error,
        "figures": figures,
        "baseline": baseline,
        "charts": _charts(window_runs, start=start, end=end, band=figures),
        "capped": len(window_runs) >= CHART_MAX_RUNS,
        "chart_max": CHART_MAX_RUNS,
        "recent": [
            {
                "run": run,
                "url": reverse("runs:detail", args=[run.public_id]),
                "judgement": judgements.get(run.pk),
            }
            for run in recent
        ],
        "can_trigger": actor_from_request(request).has_perm(Perm.TRIGGER_RUNS),
        "runs_url": f"{reverse('runs:list')}?pipelineId={pipeline.public_id}",
        "final_statuses": FINAL_STATUSES,
        "now": now,
    }
    return render(request, "pipelines/pipeline_detail.html", context, status=status)


@login_required
@page_requires(Perm.TRIGGER_RUNS, doing="triggering a run")
@require_POST
def pipeline_run_now(request: HttpRequest, public_id: str) -> HttpResponse:
    """Queue a run of the pipeline on its default gateway (a manual run: ``run_trigger``, the
    same service as ``POST /api/pipelines/{id}/run``)."""
    pipeline = _get_pipeline(public_id)
    run = services.run_trigger(actor=actor_from_request(request), pipeline=pipeline)
    messages.success(request, f"Queued {run.public_id} of {pipeline.name}.")
    return redirect("runs:detail", public_id=run.public_id)
