"""Reads of gateways: the health list used by the gateways panel and the admin."""

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from gateways.models import Gateway, GatewayHealth, GatewayToken
from runs.models import Run, RunStatus


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
    return [
        GatewayHealthRow(
            gateway=gateway,
            status=gateway.health(now),
            running_count=gateway.running_count,
            queued_count=gateway.queued_count,
            queued_stranded=gateway.queued_count > 0 and gateway.queued_runs_stranded(now),
        )
        for gateway in gateway_queryset_with_counts().order_by("name")
    ]
