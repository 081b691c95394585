"""Every read of runs that is more than a ``.get()``."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from common.ids import is_plausible_public_id
from common.sql import Beside, RawJSON, rows_json, rows_json_supported, select_joined
from gateways.models import Gateway, GatewayHealth, GatewayToken
from runs.models import LogLine, Run, RunNode, RunStatus, TelemetrySample


def run_queryset() -> QuerySet[Run]:
    return Run.objects.select_related("pipeline", "gateway")


def of_pipeline_newest_first(queryset: QuerySet[Run], pipeline_pk: Any) -> QuerySet[Run]:
    """``queryset``'s runs of one pipeline (a pk, or an ``OuterRef``), newest first.

    The pipeline is a one-value range and the order starts with it, so that only an index that
    leads with the pipeline (``run_pipeline_created_idx``, ``run_baseline_idx``) gives the order.
    With ``pipeline_id = X`` PostgreSQL drops the pipeline from the order as a constant and may
    walk ``run_created_idx`` backwards instead, filtering on the pipeline. It did on a table
    loaded in creation order and not yet vacuumed (index-only scans then look dear, the walk in
    heap order cheap), and for a pipeline with no (or only old) matching runs that reads the
    whole history: ~0.4 s a pipeline at 1M runs (bench/RESULTS.md, "Judgement at a million
    runs")."""
    return queryset.filter(pipeline_id__gte=pipeline_pk, pipeline_id__lte=pipeline_pk).order_by(
        "-pipeline_id", "-created_at", "-id"
    )


def run_get(*, public_id: str) -> Run | None:
    """The run with its pipeline and gateway, by public id: plain SQL (``common.sql``), since
    every runner GET starts here and the ORM would spend longer compiling the query than the
    database takes to run it."""
    if not is_plausible_public_id(public_id):
        return None
    return select_joined(Run, ["pipeline", "gateway"], filters={"public_id": public_id})


def run_get_for_gateway(*, gateway: Gateway, public_id: str) -> Run | None:
    """A gateway sees only runs targeted at it; anything else is indistinguishable from absent."""
    if not is_plausible_public_id(public_id):
        return None
    run = select_joined(
        Run, ["pipeline"], filters={"public_id": public_id, "gateway_id": gateway.pk}
    )
    return run_read_beside_token(gateway=gateway, run=run)


def run_beside_token(*, public_id: str) -> Beside[Run] | None:
    """The run ``run_get_for_gateway`` would find, read in the gateway token's own statement
    (``gateways.services.gateway_token_authenticate_beside``): None when the id cannot be one."""
    if not is_plausible_public_id(public_id):
        return None
    return Beside(Run, ("pipeline",), {"public_id": public_id}, on=("gateway_id", "gateway_id"))


def run_read_beside_token(*, gateway: Gateway, run: Run | None) -> Run | None:
    """A run of ``gateway`` read without its gateway: the very row its token was just read
    with is set on it, so it is not joined a second time."""
    if run is not None:
        run.gateway = gateway
    return run


def run_log_lines(*, run: Run) -> QuerySet[LogLine]:
    """The newest ``RUN_LOG_CAP`` lines, oldest first (older rows may await trimming)."""
    return LogLine.objects.filter(run=run, seq__gt=run.log_seq - settings.RUN_LOG_CAP).order_by(
        "seq"
    )


def run_samples(*, run: Run) -> QuerySet[TelemetrySample]:
    return (
        TelemetrySample.objects.filter(run=run, seq__gt=run.sample_seq - settings.RUN_SAMPLE_CAP)
        .defer("json_text")
        .order_by("seq")
    )


def run_log_rows(*, run: Run) -> list[tuple[Any, ...]]:
    """``run_log_lines`` as ``(at, level, message, node_id)`` tuples: the runner's full answer
    turns 500 of them into JSON, and tuples cost a fraction of model instances."""
    return list(run_log_lines(run=run).values_list("at", "level", "message", "node_id"))


def run_sample_rows(*, run: Run) -> list[tuple[Any, ...]]:
    """``run_samples`` as ``(at, values)`` tuples (2000 of them at the cap)."""
    return list(run_samples(run=run).values_list("at", "values"))


def run_log_json(*, run: Run) -> RawJSON | None:
    """``run_log_lines`` as the runner's ``logEntries``, JSON written by PostgreSQL in one
    statement (``common.sql.rows_json``); None where the database cannot (SQLite)."""
    if not rows_json_supported():
        return None
    return rows_json(
        LogLine,
        keys={"at": "at", "level": "level", "message": "message", "nodeId": "node_id"},
        omit_empty=["nodeId"],
        parent="run_id",
        parent_pk=run.pk,
        after_seq=run.log_seq - settings.RUN_LOG_CAP,
    )


def run_samples_json(*, run: Run) -> RawJSON | None:
    """``run_samples`` as the runner's telemetry ``samples`` (``{at, ...values}``): each
    sample's text as PostgreSQL wrote it when storing the row (``TelemetrySample.json_text``),
    joined; None where the database cannot."""
    if not rows_json_supported():
        return None
    # The stored texts were written with these keys by migration 0015's trigger: a change here
    # needs a migration that changes the trigger and writes the stored texts again.
    return rows_json(
        TelemetrySample,
        keys={"at": "at"},
        merge="values",
        written="json_text",
        parent="run_id",
        parent_pk=run.pk,
        after_seq=run.sample_seq - settings.RUN_SAMPLE_CAP,
    )


def run_nodes(*, run: Run) -> QuerySet[RunNode]:
    return RunNode.objects.filter(run=run).order_by("id")


def run_node_ids(*, run: Run, nodes: list[RunNode]) -> list[str]:
    """Every node of the run: its node records (``nodes``, in their order), then the nodes its
    kept log lines name without a record, by name. One query over the run's kept lines."""
    ids = [node.node_id for node in nodes]
    logged = (
        LogLine.objects.filter(run=run)
        .exclude(node_id="")
        .order_by("node_id")
        .values_list("node_id", flat=True)
        .distinct()
    )
    known = set(ids)
    return ids + [node_id for node_id in logged if node_id not in known]


def gateway_actionable_runs(*, gateway: Gateway, limit: int = 100) -> QuerySet[Run]:
    """Queued runs to claim and runs asked to cancel, oldest first."""
    return (
        run_queryset()
        .filter(gateway=gateway, status__in=[RunStatus.QUEUED, RunStatus.CANCEL_REQUESTED])
        .order_by("created_at", "id")[:limit]
    )


# Gateways with their runs: the gateways panel and the gateway admin.


def _run_count(*statuses: str) -> Coalesce:
    """Per-gateway count of runs in ``statuses``; a correlated subquery served by the partial
    active-runs index, so it never touches the millions of finished runs."""
    counts = (
        Run.objects.filter(gateway=OuterRef("pk"), status__in=statuses)
        .order_by()
        .values("gateway")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(counts, output_field=IntegerField()), Value(0))


def gateway_queryset_with_counts() -> QuerySet[Gateway]:
    """Gateways annotated with ``running_count``, ``queued_count`` and ``live_token_count``,
    in one query whatever the number of gateways or runs."""
    now = timezone.now()
    live_tokens = (
        GatewayToken.objects.filter(gateway=OuterRef("pk"), revoked_at__isnull=True)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .order_by()
        .values("gateway")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Gateway.objects.annotate(
        running_count=_run_count(RunStatus.RUNNING, RunStatus.CANCEL_REQUESTED),
        queued_count=_run_count(RunStatus.QUEUED),
        live_token_count=Coalesce(Subquery(live_tokens, output_field=IntegerField()), Value(0)),
    )


@dataclass(frozen=True)
class GatewayHealthRow:
    gateway: Gateway
    status: str
    running_count: int
    queued_count: int
    queued_stranded: bool

    @property
    def status_label(self) -> str:
        return GatewayHealth(self.status).label

    @property
    def name(self) -> str:
        return self.gateway.name

    @property
    def last_seen_at(self) -> datetime | None:
        return self.gateway.last_seen_at


def gateway_health_list(*, now: datetime | None = None) -> list[GatewayHealthRow]:
    """Every gateway with its status (online, offline, never connected), its running and queued
    runs, and whether those queued runs are stranded on a gateway that is away. One query."""
    now = now or timezone.now()
    # Each gateway carries the counts the queryset annotates.
    gateways: list[Any] = list(gateway_queryset_with_counts().order_by("name"))
    return [
        GatewayHealthRow(
            gateway=gateway,
            status=gateway.health(now),
            running_count=gateway.running_count,
            queued_count=gateway.queued_count,
            queued_stranded=gateway.queued_count > 0 and gateway.queued_runs_stranded(now),
        )
        for gateway in gateways
    ]
