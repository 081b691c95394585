"""Every instant the API and the pages accept: any UTC offset Python can parse (PostgreSQL
refuses offsets beyond +-15:59), years 1-9999, any fraction of a second. Each one is either a
correct answer (normalised to UTC, compared as the same instant) or a 400 naming the parameter,
never a 5xx, on both databases.
"""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.api.pagination import Position, encode_cursor
from common.time import InstantOutOfRange, iso, parse_aware_instant, to_utc
from runs.models import Run
from tests.factories import RunFactory, UserFactory
from tests.runs.conftest import snapshot

pytestmark = pytest.mark.django_db

FUZZ = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
DAY = timedelta(hours=24)

offsets = st.timedeltas(
    min_value=-DAY + timedelta(microseconds=1), max_value=DAY - timedelta(microseconds=1)
).map(timezone)
# Whole minutes near the PostgreSQL limit and beyond it, where the 500 was.
round_offsets = st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
local_times = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59))
instants = st.builds(
    lambda local, tz, digits: _format(local.replace(tzinfo=tz), digits),
    local_times,
    st.one_of(offsets, round_offsets),
    st.sampled_from([0, 1, 3, 6]),
)


def _format(value: datetime, digits: int) -> str:
    """ISO 8601 with 0, 1, 3 or 6 digits of fraction (the offset keeps its own seconds)."""
    text = value.isoformat(timespec="seconds" if digits == 0 else "microseconds")
    if digits in (1, 3):
        head, _, tail = text.partition(".")
        text = f"{head}.{tail[:digits]}{tail[6:]}"
    return text


def _utc_or_none(text: str) -> datetime | None:
    """What the instant means in UTC, computed independently of the code under test."""
    parsed = datetime.fromisoformat(text)
    try:
        return (parsed - parsed.utcoffset()).replace(tzinfo=UTC)
    except OverflowError:
        return None


@pytest.fixture
def edge_runs(pipeline):
    """Runs at both ends of the calendar and in between, to compare bounds against."""
    stamps = [
        datetime(1, 1, 1, 12, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2025, 3, 27, 2, tzinfo=UTC),
        datetime(9999, 12, 31, 11, tzinfo=UTC),
    ]
    return {RunFactory(pipeline=pipeline, created_at=stamp).public_id: stamp for stamp in stamps}


@pytest.fixture
def running_run(run, agent_client):
    response = agent_client.patch(
        f"/api/agent/runs/{run.public_id}", {"status": "running"}, format="json"
    )
    assert response.status_code == 200
    return run


@pytest.fixture
def analyst(db):
    client = Client()
    viewer = UserFactory(username="instants")
    viewer.groups.add(Group.objects.get(name="viewer"))
    client.force_login(viewer)
    return client


def test_normalising_keeps_the_instant_and_drops_the_offset():
    assert parse_aware_instant("0121-10-30T14:42:34.5+20:20") == datetime(
        121, 10, 29, 18, 22, 34, 500000, tzinfo=UTC
    )
    assert parse_aware_instant("2025-01-01T00:00:00+15:59").utcoffset() == timedelta(0)
    with pytest.raises(InstantOutOfRange):
        to_utc(datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))))
    with pytest.raises(InstantOutOfRange):
        parse_aware_instant("9999-12-31T23:00:00-01:00")


def test_the_reported_query_is_answered(key_client, edge_runs):
    response = key_client.get("/api/runs", {"to": "0121-10-30T14:42:34.5+20:20"})

    assert response.status_code == 200, response.content
    assert [item["id"] for item in response.json()["data"]] == [
        run_id for run_id, stamp in edge_runs.items() if stamp.year == 1
    ]


@FUZZ
@given(instant=instants, bound=st.sampled_from(["from", "to"]))
def test_list_filters_answer_correctly_or_refuse(key_client, analyst, edge_runs, instant, bound):
    utc = _utc_or_none(instant)
    api = key_client.get("/api/runs", {bound: instant, "limit": 200})
    page = analyst.get("/runs/", {bound: instant})

    if utc is None:
        assert api.status_code == 400, api.content
        assert bound in api.json()["errors"]
        assert page.status_code == 400
        return
    assert api.status_code == 200, (instant, api.content)
    expected = {
        run_id
        for run_id, stamp in edge_runs.items()
        if (stamp >= utc if bound == "from" else stamp < utc)
    }
    assert {item["id"] for item in api.json()["data"]} == expected
    assert page.status_code == 200
    shown = {run_id for run_id in edge_runs if run_id in page.content.decode()}
    assert shown == expected


@FUZZ
@given(instant=instants)
def test_log_since_answers_correctly_or_refuses(key_client, running_run, agent_client, instant):
    if not running_run.log_lines.exists():
        response = agent_client.patch(
            f"/api/agent/runs/{running_run.public_id}",
            {"appendLog": {"level": "info", "message": "one line"}},
            format="json",
        )
        assert response.status_code == 200
    line_at = running_run.log_lines.get().at
    utc = _utc_or_none(instant)

    response = key_client.get(f"/api/runs/{running_run.public_id}/logs", {"since": instant})

    if utc is None:
        assert response.status_code == 400
        assert "since" in response.json()["errors"]
        return
    assert response.status_code == 200, (instant, response.content)
    assert len(response.json()["lines"]) == (1 if line_at > utc else 0)


@FUZZ
@given(instant=instants)
def test_patch_timestamps_are_stored_in_utc_or_refused(agent_client, running_run, instant):
    utc = _utc_or_none(instant)
    before = snapshot(running_run)

    response = agent_client.patch(
        f"/api/agent/runs/{running_run.public_id}",
        {"startedAt": instant, "finishedAt": instant},
        format="json",
    )

    if utc is None or utc.year < 1970:
        assert response.status_code == 400, (instant, response.content)
        assert {"startedAt", "finishedAt"} == set(response.json()["errors"])
        assert snapshot(running_run) == before
        return
    assert response.status_code == 200, (instant, response.content)
    assert response.json()["startedAt"] == response.json()["finishedAt"] == iso(utc)
    stored = Run.objects.get(pk=running_run.pk)
    assert stored.started_at == stored.finished_at == utc


@FUZZ
@given(local=local_times, tz=st.one_of(offsets, round_offsets))
def test_cursors_at_any_instant_page_or_refuse(key_client, analyst, edge_runs, local, tz):
    """Cursors are signed, so only the server writes them; one minted at an instant with any
    offset (as an older release could have) still pages correctly."""
    stamp = local.replace(tzinfo=tz)
    cursor = encode_cursor(Position(value=stamp, pk=2**31))
    utc = _utc_or_none(stamp.isoformat())

    api = key_client.get("/api/runs", {"cursor": cursor, "limit": 200})
    page = analyst.get("/runs/", {"cursor": cursor})

    assert page.status_code == 200
    if utc is None:
        assert api.status_code == 400
        assert "cursor" in api.json()["errors"]
        return
    assert api.status_code == 200, api.content
    assert {item["id"] for item in api.json()["data"]} == {
        run_id for run_id, created in edge_runs.items() if created <= utc
    }
