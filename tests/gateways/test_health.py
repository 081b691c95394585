from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from runs.models import RunStatus
from runs.selectors import gateway_health_list
from tests.factories import GatewayFactory, PipelineFactory, RunFactory

pytestmark = pytest.mark.django_db


def rows_by_name(now=None):
    return {row.name: row for row in gateway_health_list(now=now)}


@override_settings(GATEWAY_LAST_SEEN_WRITE_INTERVAL_SECONDS=30)
def test_online_offline_and_never_connected():
    now = timezone.now()
    # poll 10 s: offline after 3 polls plus the 30 s write throttle, i.e. 60 s of silence.
    GatewayFactory(name="fresh", poll_interval_seconds=10, last_seen_at=now - timedelta(seconds=59))
    GatewayFactory(name="quiet", poll_interval_seconds=10, last_seen_at=now - timedelta(seconds=61))
    GatewayFactory(
        name="slow-poller", poll_interval_seconds=60, last_seen_at=now - timedelta(minutes=3)
    )
    GatewayFactory(name="new", last_seen_at=None)
    rows = rows_by_name(now)
    assert rows["fresh"].status == "online"
    assert rows["quiet"].status == "offline"
    assert rows["slow-poller"].status == "online"
    assert rows["new"].status == "never"
    assert rows["new"].status_label == "never connected"


def test_counts_running_and_queued_runs_per_gateway():
    now = timezone.now()
    edge = GatewayFactory(name="edge", last_seen_at=now)
    GatewayFactory(name="idle", last_seen_at=now)
    pipeline = PipelineFactory(default_gateway=edge)
    for status in [RunStatus.RUNNING, RunStatus.CANCEL_REQUESTED, RunStatus.QUEUED]:
        RunFactory(pipeline=pipeline, status=status)
    RunFactory(pipeline=pipeline, status=RunStatus.QUEUED)
    RunFactory(pipeline=pipeline, status=RunStatus.SUCCEEDED)
    RunFactory(pipeline=pipeline, gateway=None, status=RunStatus.QUEUED)
    rows = rows_by_name(now)
    assert (rows["edge"].running_count, rows["edge"].queued_count) == (2, 2)
    assert (rows["idle"].running_count, rows["idle"].queued_count) == (0, 0)
    assert not rows["edge"].queued_stranded


@override_settings(GATEWAY_OFFLINE_QUEUED_WARNING_SECONDS=600)
def test_queued_runs_on_a_gateway_away_too_long_are_flagged_stranded():
    now = timezone.now()
    away = GatewayFactory(name="away", poll_interval_seconds=10)
    briefly = GatewayFactory(name="briefly", poll_interval_seconds=10)
    never = GatewayFactory(name="never")
    for gateway in [away, briefly, never]:
        RunFactory(pipeline=PipelineFactory(default_gateway=gateway), status=RunStatus.QUEUED)
    away.last_seen_at = now - timedelta(minutes=30)
    away.save()
    briefly.last_seen_at = now - timedelta(minutes=5)
    briefly.save()
    rows = rows_by_name(now)
    assert rows["away"].queued_stranded
    assert rows["briefly"].status == "offline" and not rows["briefly"].queued_stranded
    assert rows["never"].queued_stranded


def test_health_list_is_one_query_whatever_the_number_of_gateways(
    django_assert_num_queries,
):
    for index in range(3):
        gateway = GatewayFactory(name=f"gw-{index}")
        RunFactory(pipeline=PipelineFactory(default_gateway=gateway), status=RunStatus.QUEUED)
    with django_assert_num_queries(1):
        small = gateway_health_list()
    for index in range(3, 12):
        GatewayFactory(name=f"gw-{index}")
    with django_assert_num_queries(1):
        large = gateway_health_list()
    assert len(small) == 3 and len(large) == 12
