"""The runner PATCH's statements, pinned: its hand-written SQL (``common.sql``) is justified by
what it saves per request (bench/RESULTS.md), so a change that adds a round trip must say so."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from runs.models import LogLine, Run


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
        # its pipeline and gateway.
        assert sql == ["SELECT", "WITH"], sql
        [append] = statements.captured_queries[1:]
        assert "FOR NO KEY UPDATE" in append["sql"]
        assert "unnest(" in append["sql"]
    else:
        # SQLite has no data-modifying CTEs: in one transaction the run found and locked with
        # its pipeline and gateway, the line, the run.
        assert sql == ["SELECT", "BEGIN", "SELECT", "INSERT", "UPDATE", "COMMIT"], sql
    assert LogLine.objects.filter(run=run).count() == 2
    assert response.json()["id"] == run.public_id
    assert response.json()["pipelineName"] == run.pipeline.name


@pytest.mark.django_db(transaction=True)
def test_a_batch_binds_one_array_per_column_on_postgresql(agent_client, run):
    if connection.vendor != "postgresql":
        pytest.skip("unnest arrays are PostgreSQL's; SQLite binds the rows")
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
    # The token, then one statement binding a few parameters (one array per column), not 3000.
    assert [name for name, _ in bound] == ["SELECT", "WITH"]
    assert bound[1][1] < 20
    stored = list(LogLine.objects.filter(run=run).order_by("seq").values_list("seq", "message"))
    assert stored == [(n + 1, f"line {n}") for n in range(500)]
    run.refresh_from_db()
    assert run.log_seq == 500


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
