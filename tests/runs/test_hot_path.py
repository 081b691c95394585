"""The runner PATCH's statements, pinned: its hand-written SQL (``common.sql``) is justified by
what it saves per request (bench/RESULTS.md), so a change that adds a round trip must say so."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from runs.models import LogLine, Run


@pytest.mark.django_db(transaction=True)
def test_a_minimal_append_is_six_statements(agent_client, run):
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
    # The token; then in one transaction the run found and locked with its pipeline and
    # gateway, the line, the run.
    assert sql == ["SELECT", "BEGIN", "SELECT", "INSERT", "UPDATE", "COMMIT"], sql
    if connection.vendor == "postgresql":
        assert "FOR NO KEY UPDATE" in statements.captured_queries[2]["sql"]
    assert LogLine.objects.filter(run=run).count() == 2


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
