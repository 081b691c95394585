"""The full runner answer: its log and samples, written by PostgreSQL in one statement each (or
built in Python on SQLite), are exactly what the Python representation of the rows says."""

from datetime import UTC, datetime

import pytest

from runs import selectors
from runs.models import LogLine, TelemetrySample
from runs.representations import log_rows_repr, sample_rows_repr


@pytest.fixture
def filled_run(run):
    whole = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    fraction = datetime(2026, 3, 4, 5, 6, 7, 89, tzinfo=UTC)
    LogLine.objects.bulk_create(
        [
            LogLine(run=run, seq=1, at=whole, level="info", message='quote " é\n\ttab', node_id=""),
            LogLine(run=run, seq=2, at=fraction, level="error", message="boom", node_id="n_1"),
        ]
    )
    TelemetrySample.objects.bulk_create(
        [
            TelemetrySample(run=run, seq=1, at=whole, values={"rowsLoaded": 10, "progress": 1.5}),
            TelemetrySample(run=run, seq=2, at=fraction, values={}),
        ]
    )
    run.log_seq, run.sample_seq = 2, 2
    run.save()
    return run


@pytest.mark.django_db
def test_the_full_answer_is_the_representation_of_the_rows(agent_client, filled_run):
    body = agent_client.get(f"/api/agent/runs/{filled_run.public_id}").json()

    assert body["logEntries"] == log_rows_repr(selectors.run_log_rows(run=filled_run))
    assert body["logEntries"] == [
        {"at": "2026-03-04T05:06:07Z", "level": "info", "message": 'quote " é\n\ttab'},
        {"at": "2026-03-04T05:06:07.000089Z", "level": "error", "message": "boom", "nodeId": "n_1"},
    ]
    assert body["telemetry"]["samples"] == sample_rows_repr(
        selectors.run_sample_rows(run=filled_run)
    )
    assert body["telemetry"]["samples"][0] == {
        "at": "2026-03-04T05:06:07Z",
        "rowsLoaded": 10,
        "progress": 1.5,
    }


@pytest.mark.django_db
def test_an_empty_run_answers_empty_arrays(agent_client, run):
    body = agent_client.get(f"/api/agent/runs/{run.public_id}").json()
    assert body["logEntries"] == []
    assert body["telemetry"]["samples"] == []
