"""Every read of runs that is more than a ``.get()``."""

from django.conf import settings
from django.db.models import QuerySet

from gateways.models import Gateway
from runs.ids import is_plausible_public_id
from runs.models import LogLine, Run, RunNode, RunStatus, TelemetrySample


def run_queryset() -> QuerySet[Run]:
    return Run.objects.select_related("pipeline", "gateway")


def run_get(*, public_id: str) -> Run | None:
    if not is_plausible_public_id(public_id):
        return None
    return run_queryset().filter(public_id=public_id).first()


def run_get_for_gateway(*, gateway: Gateway, public_id: str) -> Run | None:
    """A gateway sees only runs targeted at it; anything else is indistinguishable from absent."""
    if not is_plausible_public_id(public_id):
        return None
    return run_queryset().filter(public_id=public_id, gateway=gateway).first()


def run_log_lines(*, run: Run) -> QuerySet[LogLine]:
    """The newest ``RUN_LOG_CAP`` lines, oldest first (older rows may await trimming)."""
    return LogLine.objects.filter(run=run, seq__gt=run.log_seq - settings.RUN_LOG_CAP).order_by(
        "seq"
    )


def run_samples(*, run: Run) -> QuerySet[TelemetrySample]:
    return TelemetrySample.objects.filter(
        run=run, seq__gt=run.sample_seq - settings.RUN_SAMPLE_CAP
    ).order_by("seq")


def run_nodes(*, run: Run) -> QuerySet[RunNode]:
    return RunNode.objects.filter(run=run).order_by("id")


def gateway_actionable_runs(*, gateway: Gateway, limit: int = 100) -> QuerySet[Run]:
    """Queued runs to claim and runs asked to cancel, oldest first."""
    return (
        run_queryset()
        .filter(gateway=gateway, status__in=[RunStatus.QUEUED, RunStatus.CANCEL_REQUESTED])
        .order_by("created_at", "id")[:limit]
    )
