"""Batch appends on the runner PATCH: ``appendLogs`` and ``appendTelemetrySamples``."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from hypothesis import given, settings
from hypothesis import strategies as st
from rest_framework import serializers

from runs.api.serializers import AppendLogSerializer, RunPatchSerializer
from runs.models import LogLine, TelemetrySample
from tests.runs.conftest import snapshot

pytestmark = pytest.mark.django_db

SECRET_URI = "postgres://loader:hunter2-very-secret@db.internal:5432/warehouse"


def agent_url(run) -> str:
    return f"/api/agent/runs/{run.public_id}"


def elt_url(run) -> str:
    return f"/api/elt/runs/{run.public_id}"


def lines(count: int, *, start: int = 0, level: str = "info") -> list[dict]:
    return [{"level": level, "message": f"line {i}"} for i in range(start, start + count)]


def stored_messages(run) -> list[str]:
    return list(LogLine.objects.filter(run=run).order_by("seq").values_list("message", flat=True))


class TestAppendLogs:
    @pytest.mark.parametrize("route", ["agent", "elt"])
    def test_both_routes_append_a_batch_in_order_stamped_with_the_request_time(
        self, agent_client, key_client, run, route
    ):
        client, url = (agent_client, agent_url) if route == "agent" else (key_client, elt_url)
        batch = [
            {"level": "info", "message": "extract started", "nodeId": "n_source"},
            {"level": "warn", "message": "slow page", "at": "2020-01-01T00:00:00Z"},
            {"level": "error", "message": "retrying"},
        ]
        before = datetime.now(UTC)
        response = client.patch(url(run), {"appendLogs": batch}, format="json")
        after = datetime.now(UTC)
        assert response.status_code == 200, response.content
        entries = response.json()["logEntries"]
        assert [(e["level"], e["message"]) for e in entries] == [
            ("info", "extract started"),
            ("warn", "slow page"),
            ("error", "retrying"),
        ]
        assert entries[0]["nodeId"] == "n_source"
        stamps = {entry["at"] for entry in entries}
        assert len(stamps) == 1, "one request, one time"
        at = datetime.fromisoformat(stamps.pop())
        assert before - timedelta(seconds=1) <= at <= after + timedelta(seconds=1)
        assert list(LogLine.objects.filter(run=run).values_list("seq", flat=True)) == [1, 2, 3]

    def test_batches_follow_earlier_lines_and_a_single_append_in_the_same_body(
        self, agent_client, run
    ):
        agent_client.patch(agent_url(run), {"appendLogs": lines(3)}, format="json")
        response = agent_client.patch(
            agent_url(run),
            {"appendLog": {"level": "info", "message": "single"}, "appendLogs": lines(2, start=3)},
            format="json",
        )
        assert response.status_code == 200
        assert stored_messages(run) == ["line 0", "line 1", "line 2", "single", "line 3", "line 4"]

    def test_a_full_batch_of_500_is_accepted(self, agent_client, run):
        response = agent_client.patch(
            agent_url(run), {"appendLogs": lines(500)}, format="json", HTTP_PREFER="return=minimal"
        )
        assert response.status_code == 200
        assert stored_messages(run) == [f"line {i}" for i in range(500)]

    def test_a_batch_larger_than_what_remains_keeps_the_newest_500(self, agent_client, run):
        agent_client.patch(agent_url(run), {"appendLogs": lines(400)}, format="json")
        response = agent_client.patch(
            agent_url(run), {"appendLogs": lines(300, start=400)}, format="json"
        )
        messages = [entry["message"] for entry in response.json()["logEntries"]]
        assert messages == [f"line {i}" for i in range(200, 700)]
        # A batch trims at once: no rows beyond the cap are left behind.
        assert stored_messages(run) == messages

    def test_lines_are_scrubbed_and_truncated_like_append_log(self, agent_client, run, settings):
        settings.RUN_LOG_MESSAGE_MAX_CHARS = 100
        batch = [
            {"level": "error", "message": f"cannot connect to {SECRET_URI}"},
            {"level": "info", "message": "x" * 500},
            {"level": "info", "message": "Authorization: Bearer abc.def.ghi-secret-token"},
        ]
        response = agent_client.patch(agent_url(run), {"appendLogs": batch}, format="json")
        assert response.status_code == 200
        stored = stored_messages(run)
        assert "hunter2" not in stored[0] and "[REDACTED]" in stored[0]
        assert "db.internal:5432/warehouse" in stored[0]
        assert len(stored[1]) == 100 and stored[1].endswith("… [truncated]")
        assert "abc.def.ghi-secret-token" not in stored[2]
        assert "hunter2" not in response.content.decode()

    def test_a_retry_with_the_same_idempotency_key_is_applied_once(self, agent_client, run):
        body = {"appendLogs": lines(5), "appendTelemetrySamples": [{"rowsLoaded": 1}]}
        for _ in range(3):
            response = agent_client.patch(
                agent_url(run), body, format="json", HTTP_IDEMPOTENCY_KEY="batch-1"
            )
            assert response.status_code == 200
        assert stored_messages(run) == [f"line {i}" for i in range(5)]
        assert TelemetrySample.objects.filter(run=run).count() == 1
        agent_client.patch(
            agent_url(run),
            {"appendLogs": lines(1, start=5)},
            format="json",
            HTTP_IDEMPOTENCY_KEY="batch-2",
        )
        assert len(stored_messages(run)) == 6


class TestAppendTelemetrySamples:
    @pytest.mark.parametrize("route", ["agent", "elt"])
    def test_both_routes_append_points_in_order(self, agent_client, key_client, run, route):
        client, url = (agent_client, agent_url) if route == "agent" else (key_client, elt_url)
        points = [
            {"at": "2025-03-27T02:00:00Z", "rowsLoaded": 10, "lagSeconds": 1.5},
            {"rowsLoaded": 20, "bytesLoaded": 4096, "progress": 50},
        ]
        before = datetime.now(UTC)
        response = client.patch(url(run), {"appendTelemetrySamples": points}, format="json")
        assert response.status_code == 200, response.content
        samples = response.json()["telemetry"]["samples"]
        assert samples[0] == {"at": "2025-03-27T02:00:00Z", "rowsLoaded": 10, "lagSeconds": 1.5}
        assert {k: v for k, v in samples[1].items() if k != "at"} == {
            "rowsLoaded": 20,
            "bytesLoaded": 4096,
            "progress": 50,
        }
        assert datetime.fromisoformat(samples[1]["at"]) >= before - timedelta(seconds=1)

    def test_a_batch_larger_than_what_remains_keeps_the_newest_2000(self, agent_client, run):
        first = [{"rowsLoaded": i} for i in range(1500)]
        second = [{"rowsLoaded": i} for i in range(1500, 2600)]
        agent_client.patch(agent_url(run), {"appendTelemetrySamples": first}, format="json")
        response = agent_client.patch(
            agent_url(run), {"appendTelemetrySamples": second}, format="json"
        )
        values = [sample["rowsLoaded"] for sample in response.json()["telemetry"]["samples"]]
        assert values == list(range(600, 2600))
        assert TelemetrySample.objects.filter(run=run).count() == 2000


BAD_BATCHES = [
    ({"appendLogs": []}, "appendLogs"),
    ({"appendLogs": lines(501)}, "appendLogs"),
    ({"appendLogs": {"level": "info", "message": "not a list"}}, "appendLogs"),
    ({"appendLogs": [*lines(3), {"level": "loud", "message": "x"}]}, "appendLogs[3].level"),
    ({"appendLogs": [*lines(1), {"level": "info"}]}, "appendLogs[1].message"),
    ({"appendLogs": [*lines(2), "just text"]}, "appendLogs[2]"),
    ({"appendLogs": [{"level": "info", "message": "x", "colour": 1}]}, "appendLogs[0].colour"),
    ({"appendLogs": [{"level": "info", "message": 12}]}, "appendLogs[0].message"),
    ({"appendLogs": [*lines(1), {"level": "info", "message": "a\x00b"}]}, "appendLogs[1].message"),
    (
        {"appendLogs": [{"level": "info", "message": "x", "nodeId": "n" * 201}]},
        "appendLogs[0].nodeId",
    ),
    ({"appendLogs": [{"level": "info", "message": "x", "nodeId": 7}]}, "appendLogs[0].nodeId"),
    ({"appendLogs": [{"level": "INFO", "message": "x"}]}, "appendLogs[0].level"),
    ({"appendTelemetrySamples": []}, "appendTelemetrySamples"),
    ({"appendTelemetrySamples": [{"rowsLoaded": 1}] * 2001}, "appendTelemetrySamples"),
    (
        {"appendTelemetrySamples": [{"rowsLoaded": 1}, {"rowsLoaded": "12"}]},
        "appendTelemetrySamples[1].rowsLoaded",
    ),
    (
        {"appendTelemetrySamples": [{"progress": 101}]},
        "appendTelemetrySamples[0].progress",
    ),
    (
        {"appendTelemetrySamples": [{"at": "yesterday", "rowsLoaded": 1}]},
        "appendTelemetrySamples[0].at",
    ),
    (
        {"appendLogs": lines(2), "appendTelemetrySamples": [{"rowsLoaded": -1}]},
        "appendTelemetrySamples[0].rowsLoaded",
    ),
]


class TestBadBatches:
    @pytest.mark.parametrize(("body", "field"), BAD_BATCHES)
    @pytest.mark.parametrize("route", ["agent", "elt"])
    def test_a_bad_entry_refuses_the_whole_body_and_changes_nothing(
        self, agent_client, key_client, running_run, body, field, route
    ):
        client, url = (agent_client, agent_url) if route == "agent" else (key_client, elt_url)
        client.patch(url(running_run), {"appendLogs": lines(2)}, format="json")
        before = snapshot(running_run)
        response = client.patch(
            url(running_run),
            {**body, "telemetrySummary": {"rowsLoaded": 99}},
            format="json",
            HTTP_IDEMPOTENCY_KEY="bad-1",
        )
        assert response.status_code == 400, response.content
        error = response.json()
        assert field in error["errors"], error
        assert error["code"] == "invalid"
        assert snapshot(running_run) == before
        # Nothing was remembered either: a good body with the same key is applied.
        retry = client.patch(
            url(running_run),
            {"appendLogs": lines(1, start=2)},
            format="json",
            HTTP_IDEMPOTENCY_KEY="bad-1",
        )
        assert retry.status_code == 200
        assert stored_messages(running_run)[-1] == "line 2"


class TestCost:
    def batch_queries(self, client, run, *, count: int, start: int) -> list[str]:
        body = {
            "appendLogs": lines(count, start=start),
            "appendTelemetrySamples": [{"rowsLoaded": i} for i in range(count)],
        }
        with CaptureQueriesContext(connection) as captured:
            response = client.patch(
                agent_url(run), body, format="json", HTTP_PREFER="return=minimal"
            )
        assert response.status_code == 200
        return [query["sql"] for query in captured.captured_queries]

    def test_sql_statements_per_batch_do_not_grow_with_its_size(self, agent_client, run):
        self.batch_queries(agent_client, run, count=1, start=0)  # the first report of a token
        small = self.batch_queries(agent_client, run, count=2, start=1)
        large = self.batch_queries(agent_client, run, count=500, start=3)
        assert len(large) == len(small), (small, large)
        inserts = [sql for sql in large if sql.lstrip().upper().startswith("INSERT")]
        log_table, sample_table = LogLine._meta.db_table, TelemetrySample._meta.db_table
        assert len([sql for sql in inserts if log_table in sql.split("(")[0]]) == 1
        assert len([sql for sql in inserts if sample_table in sql.split("(")[0]]) == 1
        assert len(stored_messages(run)) == 500


ENTRIES = [
    {"level": "info", "message": "plain"},
    {"level": "warn", "message": "", "nodeId": "n_source"},
    {"level": "error", "message": "  spaced  \t", "nodeId": None},
    {"level": "info", "message": "blank node", "nodeId": ""},
    {"level": "info", "message": "padded node", "nodeId": " n_load "},
    {"level": "info", "message": "with at", "at": "2025-03-27T02:00:00Z"},
    {"level": "error", "message": "é ✓ 🚀", "nodeId": "n_ü"},
]


class FieldByField(AppendLogSerializer):
    """The line serializer without its one-pass check of plain lines: every field built and
    run, the reference both one-pass checks must agree with."""

    def run_validation(self, data=serializers.empty):
        return serializers.Serializer.run_validation(self, data)


@pytest.mark.parametrize("entries", [ENTRIES[:4] + ENTRIES[6:], ENTRIES, ENTRIES[4:5]])
def test_a_batch_validates_to_what_each_entry_would(entries):
    """The one-pass check of plain batches gives exactly what the per-entry serializer gives."""
    serializer = RunPatchSerializer(data={"appendLogs": entries})
    assert serializer.is_valid(), serializer.errors
    one_by_one = []
    for entry in entries:
        single = FieldByField(data=entry)
        assert single.is_valid(), single.errors
        one_by_one.append(dict(single.validated_data))
    assert [dict(entry) for entry in serializer.to_changes()["append_logs"]] == one_by_one


def test_a_lone_surrogate_in_a_batch_is_refused_by_name():
    bad = [{"level": "info", "message": "ok"}, {"level": "info", "message": "a\ud800b"}]
    serializer = RunPatchSerializer(data={"appendLogs": bad})
    assert not serializer.is_valid()
    assert "message" in serializer.errors["appendLogs"][1]


text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=()), max_size=30
) | st.sampled_from(["", " x ", "a\x00b", "\ud800", "é ✓"])
entry_strategy = st.dictionaries(
    st.sampled_from(["level", "message", "nodeId", "at", "colour"]),
    st.sampled_from(["info", "warn", "error", "INFO", None, 3]) | text,
    max_size=4,
) | st.fixed_dictionaries(
    {"level": st.sampled_from(["info", "warn", "error"]), "message": text},
    optional={"nodeId": st.none() | text},
)


@settings(max_examples=300, deadline=None)
@given(st.lists(entry_strategy, min_size=1, max_size=6))
def test_the_one_pass_check_agrees_with_the_per_entry_serializer(entries):
    batch = RunPatchSerializer(data={"appendLogs": entries})
    singles = [FieldByField(data=entry) for entry in entries]
    valid = [single.is_valid() for single in singles]
    for entry, single, ok in zip(entries, singles, valid, strict=True):
        # ``appendLog``: one line, checked in one pass when plain, field by field otherwise.
        alone = RunPatchSerializer(data={"appendLog": entry})
        assert alone.is_valid() == ok, (entry, alone.errors, single.errors)
        if ok:
            assert dict(alone.to_changes()["append_log"]) == dict(single.validated_data)
        else:
            assert alone.errors["appendLog"] == single.errors
    assert batch.is_valid() == all(valid), (batch.errors, [s.errors for s in singles])
    if all(valid):
        assert [dict(entry) for entry in batch.to_changes()["append_logs"]] == [
            dict(single.validated_data) for single in singles
        ]
    else:
        first_bad = valid.index(False)
        assert batch.errors["appendLogs"][first_bad]
