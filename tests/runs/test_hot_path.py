"""The runner PATCH's statements, pinned: its hand-written SQL (``common.sql``) is justified by
what it saves per request (bench/RESULTS.md), so a change that adds a round trip must say so."""

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from common.actors import Actor
from gateways.models import GatewayToken
from gateways.services import credential_revoke
from runs import selectors
from runs.models import LogLine, Run, TelemetrySample
from tests.factories import GatewayFactory, RunFactory


@pytest.mark.django_db(transaction=True)
def test_a_minimal_append_is_two_statements_on_postgresql(agent_client, run):
    url = f"/api/agent/runs/{run.public_id}"
    body = {"appendLog": {"level": "info", "message": "warm-up"}}
    assert agent_client.patch(url, body, format="json").status_code == 200  # notes last use

    with CaptureQueriesContext(connection) as statements:
        response = agent_client.patch(
            url,
            {"appendLog": {"level": "info", "message": "Loaded 500 rows"}},
            format="json",
            HTTP_PREFER="return=minimal",
        )

    assert response.status_code == 200
    sql = [query["sql"].split()[0].upper() for query in statements.captured_queries]
    if connection.vendor == "postgresql":
        # The token; then ONE statement, its own transaction: the run locked, the line stored
        # after its last one, the oldest trimmed when due, the run written back and read with
        # its pipeline (its gateway is the token's, read with it).
        assert sql == ["SELECT", "WITH"], sql
        [append] = statements.captured_queries[1:]
        assert "FOR NO KEY UPDATE" in append["sql"]
        assert "json_to_recordset(" in append["sql"]
    else:
        # SQLite has no data-modifying CTEs: in one transaction the run found and locked with
        # its pipeline and gateway, the line, the run.
        assert sql == ["SELECT", "BEGIN", "SELECT", "INSERT", "UPDATE", "COMMIT"], sql
    assert LogLine.objects.filter(run=run).count() == 2
    assert response.json()["id"] == run.public_id
    assert response.json()["pipelineName"] == run.pipeline.name
    assert response.json()["gateway"] == {"id": run.gateway.public_id, "name": run.gateway.name}


@pytest.mark.django_db(transaction=True)
def test_a_batch_binds_its_rows_as_one_json_array_on_postgresql(agent_client, run):
    if connection.vendor != "postgresql":
        pytest.skip("json_to_recordset is PostgreSQL's; SQLite binds the rows")
    lines = [{"level": "info", "message": f"line {n}"} for n in range(500)]
    assert agent_client.get(f"/api/agent/runs/{run.public_id}").status_code == 200  # last use
    bound: list[tuple[str, int]] = []

    def record(execute, sql, params, many, context):
        bound.append((sql.split()[0], len(params or ())))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        response = agent_client.patch(
            f"/api/agent/runs/{run.public_id}",
            {"appendLogs": lines},
            format="json",
            HTTP_PREFER="return=minimal",
        )
    assert response.status_code == 200
    # The token, then one statement binding a few parameters (the rows as one JSON array), not
    # 3000.
    assert [name for name, _ in bound] == ["SELECT", "WITH"]
    assert bound[1][1] < 20
    stored = list(LogLine.objects.filter(run=run).order_by("seq").values_list("seq", "message"))
    assert stored == [(n + 1, f"line {n}") for n in range(500)]
    run.refresh_from_db()
    assert run.log_seq == 500


@pytest.mark.django_db
def test_a_batch_stores_what_was_sent_through_its_json_parameter(agent_client, run):
    """The one-statement append reads its rows from one JSON parameter: text JSON must escape,
    every kind of character, the longest node id, and a line without one arrive as sent, in
    order, stamped with the request's instant."""
    lines = [
        {"level": "warn", "message": 'say "hi" \\ / é ✓ 😀 </script> \t\x01'},
        {"level": "error", "message": "new\nline", "nodeId": "n" * 200},
        {"level": "info", "message": "", "nodeId": 'ñ"x\\'},
        {"level": "info", "message": "last"},
    ]
    with CaptureQueriesContext(connection) as statements:
        response = agent_client.patch(
            f"/api/agent/runs/{run.public_id}",
            {"appendLogs": lines},
            format="json",
            HTTP_PREFER="return=minimal",
        )
    assert response.status_code == 200, response.content
    if connection.vendor == "postgresql":
        [append] = [q["sql"] for q in statements.captured_queries if q["sql"].startswith("WITH")]
        assert "json_to_recordset(" in append
    stored = list(
        LogLine.objects.filter(run=run)
        .order_by("seq")
        .values_list("seq", "at", "level", "message", "node_id")
    )
    assert [row[:1] + row[2:] for row in stored] == [
        (seq, line["level"], line["message"], line.get("nodeId", ""))
        for seq, line in enumerate(lines, start=1)
    ]
    assert len({row[1] for row in stored}) == 1
    assert abs(stored[0][1] - timezone.now()).total_seconds() < 60


@pytest.mark.django_db(transaction=True)
def test_a_run_closed_by_the_system_still_refuses_a_late_append(agent_client, run):
    Run.objects.filter(pk=run.pk).update(
        status="failed", finished_by_system=True, error_summary="runner lost"
    )
    response = agent_client.patch(
        f"/api/agent/runs/{run.public_id}",
        {"appendLog": {"level": "info", "message": "late"}},
        format="json",
    )
    assert response.status_code == 409
    assert not LogLine.objects.filter(run=run).exists()


@pytest.mark.django_db(transaction=True)
def test_the_write_back_stores_every_column_but_the_immutable_ones(agent_client, run):
    with CaptureQueriesContext(connection) as statements:
        agent_client.patch(f"/api/agent/runs/{run.public_id}", {"status": "running"}, format="json")
    table = connection.ops.quote_name(Run._meta.db_table)
    [update] = [
        query["sql"]
        for query in statements.captured_queries
        if query["sql"].startswith(f"UPDATE {table} ")
    ]
    assignments = update.partition(" SET ")[2].rpartition(" WHERE ")[0]
    written = {
        field.name
        for field in Run._meta.concrete_fields
        if connection.ops.quote_name(field.column) + " = " in assignments
    }
    assert written == {field.name for field in Run._meta.concrete_fields} - Run.IMMUTABLE_FIELDS


@pytest.mark.django_db
def test_the_arrays_postgresql_writes_are_the_ones_python_builds(run):
    """The full answer's log and samples, written as text by PostgreSQL (``common.sql.rows_json``),
    hold exactly what the Python path builds from the same rows, for awkward text and instants."""
    import json

    from runs.representations import log_rows_repr, sample_rows_repr

    if connection.vendor != "postgresql":
        pytest.skip("SQLite builds the arrays in Python")
    instants = [
        datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC),  # a whole second: no microseconds
        datetime(2026, 3, 1, 12, 0, 0, 120000, tzinfo=UTC),  # trailing zeros kept
        datetime(1, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ]
    messages = ['say "hi"\\ 100% done', "tab\there\nnew line \x01 \x1f", "é ✓ 😀 </script>", ""]
    LogLine.objects.bulk_create(
        LogLine(run=run, seq=seq, at=at, level=level, message=message, node_id=node)
        for seq, (at, level, message, node) in enumerate(
            zip(
                instants,
                ["info", "warn", "error", "debug"],
                messages,
                ["", "n_1", "", 'ñ"x'],
                strict=True,
            ),
            start=1,
        )
    )
    TelemetrySample.objects.bulk_create(
        TelemetrySample(run=run, seq=seq, at=at, values=values)
        for seq, (at, values) in enumerate(
            zip(
                instants, [{}, {"rows": 1}, {"ratio": 0.5, "big": 2**70}, {"neg": -3}], strict=True
            ),
            start=1,
        )
    )
    Run.objects.filter(pk=run.pk).update(log_seq=4, sample_seq=4)
    run.refresh_from_db()

    logs = json.loads(selectors.run_log_json(run=run).text)
    samples = json.loads(selectors.run_samples_json(run=run).text)

    assert logs == log_rows_repr(selectors.run_log_rows(run=run))
    assert samples == sample_rows_repr(selectors.run_sample_rows(run=run))
    assert [entry["at"] for entry in logs] == [
        "2026-03-01T12:00:00Z",
        "2026-03-01T12:00:00.120000Z",
        "0001-01-01T00:00:00.000001Z",
        "9999-12-31T23:59:59.999999Z",
    ]
    assert [sorted(entry) for entry in logs] == [
        ["at", "level", "message"],
        ["at", "level", "message", "nodeId"],
        ["at", "level", "message"],
        ["at", "level", "message", "nodeId"],
    ]
    assert samples[0] == {"at": "2026-03-01T12:00:00Z"}


def _samples_text(run) -> str:
    return selectors.run_samples_json(run=run).text


@pytest.mark.django_db
def test_a_sample_keeps_its_answer_text_from_when_it_was_stored(agent_client, run):
    """PostgreSQL writes each sample's JSON text as it stores the row (migration 0015's
    trigger), whoever stores it; the full answer joins those texts, and a row without one (stored
    before the column) is written at read time, byte for byte the same."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite builds the arrays in Python")
    response = agent_client.patch(
        f"/api/agent/runs/{run.public_id}",
        {
            "appendTelemetrySamples": [
                {"at": "2026-03-01T12:00:00Z"},
                {"at": "2026-03-01T12:00:00.12Z", "rowsLoaded": 1, "ratio": 0.5},
                {"at": "2026-03-01T12:00:01.999999Z", "lag": -3},
            ]
        },
        format="json",
        HTTP_PREFER="return=minimal",
    )
    assert response.status_code == 200
    # Through the ORM, not the runner PATCH, and values the API would refuse.
    TelemetrySample.objects.create(
        run=run,
        seq=4,
        at=datetime(2026, 3, 1, 12, 0, 2, tzinfo=UTC),
        values={"big": 2**70, "note": 'a "quoted" é ✓', "nested": {"a": [1, 2.5, None]}},
    )
    Run.objects.filter(pk=run.pk).update(sample_seq=4)
    run.refresh_from_db()
    stored = list(
        TelemetrySample.objects.filter(run=run).order_by("seq").values_list("json_text", flat=True)
    )
    assert stored == [
        '{"at":"2026-03-01T12:00:00Z"}',
        '{"at":"2026-03-01T12:00:00.120000Z","ratio": 0.5, "rowsLoaded": 1}',
        '{"at":"2026-03-01T12:00:01.999999Z","lag": -3}',
        '{"at":"2026-03-01T12:00:02Z","big": 1180591620717411303424, "note": '
        '"a \\"quoted\\" é ✓", "nested": {"a": [1, 2.5, null]}}',
    ]
    joined = _samples_text(run)
    assert joined == "[" + ",".join(stored) + "]"

    # Rows stored before the column: the same text, written by the read.
    TelemetrySample.objects.filter(run=run).update(json_text=None)
    assert _samples_text(run) == joined
    # A change to a sample's values writes its text again.
    TelemetrySample.objects.filter(run=run, seq=1).update(values={"rows": 7})
    assert TelemetrySample.objects.get(run=run, seq=1).json_text == (
        '{"at":"2026-03-01T12:00:00Z","rows": 7}'
    )
    # What the answer joins is the stored text, not a text written anew.
    TelemetrySample.objects.filter(run=run, seq=1).update(json_text='{"at":"stored"}')
    assert _samples_text(run).startswith('[{"at":"stored"},')


@pytest.mark.django_db(transaction=True)
def test_a_runner_read_is_one_statement_with_its_token(agent_client, run):
    url = f"/api/agent/runs/{run.public_id}"
    assert agent_client.get(url).status_code == 200  # notes last use

    with CaptureQueriesContext(connection) as statements:
        response = agent_client.get(url, HTTP_PREFER="return=minimal")

    assert response.status_code == 200, response.content
    [read] = statements.captured_queries
    assert read["sql"].upper().startswith("SELECT"), read["sql"]
    answer = response.json()
    assert answer["id"] == run.public_id
    assert answer["pipelineName"] == run.pipeline.name
    assert answer["gateway"] == {"id": run.gateway.public_id, "name": run.gateway.name}


@pytest.mark.django_db
def test_a_runner_read_beside_its_token_sees_only_its_gateways_runs(agent_client, run):
    elsewhere = RunFactory(pipeline=run.pipeline, gateway=GatewayFactory())
    assert agent_client.get(f"/api/agent/runs/{elsewhere.public_id}").status_code == 404
    assert agent_client.get("/api/agent/runs/run_0000000000000000000000").status_code == 404
    assert agent_client.get("/api/agent/runs/not-an-id").status_code == 404
    assert agent_client.get(f"/api/agent/runs/{run.public_id}").status_code == 200

    credential_revoke(actor=Actor.system(), credential=GatewayToken.objects.get())
    refused = agent_client.get(f"/api/agent/runs/{run.public_id}")
    assert refused.status_code == 401
    assert run.public_id not in refused.content.decode()


def prepared_statements() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [statement for (statement,) in cursor.fetchall()]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("prepare", [True, False])
def test_the_runner_statements_are_prepared_unless_turned_off(agent_client, run, settings, prepare):
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's")
    settings.PREPARE_HOT_STATEMENTS = prepare
    connection.close()  # a session of its own: nothing prepared yet
    url = f"/api/agent/runs/{run.public_id}"
    line = {"appendLog": {"level": "info", "message": "Loaded 500 rows"}}
    for _ in range(3):
        assert agent_client.patch(url, line, format="json").status_code == 200
        assert agent_client.get(url, HTTP_PREFER="return=minimal").status_code == 200

    prepared = prepared_statements()
    if not prepare:
        # Behind a pooler in transaction mode: nothing may outlive the transaction.
        assert prepared == []
        return
    # Each statement once, however many requests ran it: the token's, the append's, the read's
    # (the token beside its run) and the full answer's log and samples.
    assert len(prepared) == len(set(prepared))
    assert any(sql.startswith("WITH locked AS") and "json_to_recordset(" in sql for sql in prepared)
    assert any(sql.startswith("SELECT '[' || coalesce(string_agg(") for sql in prepared)
    assert any(
        'FROM "gateways_gatewaytoken" t' in sql and "LEFT OUTER JOIN (" in sql for sql in prepared
    )
    assert LogLine.objects.filter(run=run).count() == 3
    run.refresh_from_db()
    assert run.log_seq == 3


@pytest.mark.django_db
def test_a_prepared_statement_shows_its_parameters_in_the_query_log(agent_client, run):
    url = f"/api/agent/runs/{run.public_id}"
    with CaptureQueriesContext(connection) as statements:
        response = agent_client.get(url, HTTP_PREFER="return=minimal")
    assert response.status_code == 200
    # As Django's own cursor logs a statement: its text with the values in it.
    assert all("%s" not in query["sql"] for query in statements.captured_queries)
    assert any(run.public_id in query["sql"] for query in statements.captured_queries)
