"""Run metrics read at scrape time (``settings.METRICS_COLLECTORS``), each bounded by an index:
unfinished runs through ``run_active_idx``, the last hour's finished runs through
``run_log_kept_idx``."""

from collections.abc import Iterable
from datetime import timedelta

from django.db.models import Count
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from runs.models import Run, RunStatus

UNFINISHED = [RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.CANCEL_REQUESTED]


def collect() -> Iterable[GaugeMetricFamily]:
    active = GaugeMetricFamily(
        "elt_runs_active", "Unfinished runs, by status and gateway.", labels=["status", "gateway"]
    )
    rows = (
        Run.objects.filter(status__in=UNFINISHED)
        .values_list("status", "gateway__name")
        .annotate(n=Count("id"))
        .order_by()
    )
    for status, gateway, n in rows:
        active.add_metric([status, gateway or ""], n)
    yield active
    finished = GaugeMetricFamily(
        "elt_runs_finished_last_hour",
        "Runs that finished in the last hour, by status and gateway.",
        labels=["status", "gateway"],
    )
    rows = (
        Run.objects.filter(
            finished_at__gte=timezone.now() - timedelta(hours=1),
            finished_at__isnull=False,
            log_pruned_after_days__isnull=True,
        )
        .values_list("status", "gateway__name")
        .annotate(n=Count("id"))
        .order_by()
    )
    for status, gateway, n in rows:
        finished.add_metric([status, gateway or ""], n)
    yield finished
