"""The health check of a persistent PostgreSQL connection (``common.db.postgresql``): a request's
first query checks the connection without a round trip, and a connection the server dropped
while it sat idle is replaced before that query runs."""

import time

import psycopg
import pytest
from django.db import connection

from common.db.postgresql import base as postgresql_base

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's connections"),
    pytest.mark.django_db(transaction=True),
]


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def another_connection() -> psycopg.Connection:
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    return psycopg.connect(**params, autocommit=True)


def between_requests() -> None:
    """What Django does when a request ends and the next begins (``close_old_connections``):
    a persistent connection is kept, to be checked before the next request's first query."""
    connection.close_if_unusable_or_obsolete()


def last_statement(pid: int) -> str:
    with another_connection() as other:
        (last,) = other.execute(
            "SELECT query FROM pg_stat_activity WHERE pid = %s", [pid]
        ).fetchone()
    return last


def next_request_checks() -> None:
    """The check the next request makes before its first query."""
    between_requests()
    connection.close_if_health_check_failed()


def test_a_busy_connection_is_kept_and_checked_without_a_query():
    assert connection.settings_dict["CONN_HEALTH_CHECKS"]
    pid = backend_pid()
    next_request_checks()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 42 AS last_statement")

    next_request_checks()  # a moment after the one before

    assert last_statement(pid) == "SELECT 42 AS last_statement"  # no SELECT 1 was sent
    assert backend_pid() == pid  # the same connection serves the next request


def test_a_connection_quiet_for_longer_is_checked_by_a_query(monkeypatch):
    """A peer that vanished without a word leaves nothing to read: a connection not checked for
    ``QUIET_SECONDS`` gets a round trip."""
    pid = backend_pid()
    next_request_checks()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 42 AS last_statement")
    monkeypatch.setattr(postgresql_base, "QUIET_SECONDS", 0.0)

    next_request_checks()

    assert last_statement(pid) == "SELECT 1"
    assert backend_pid() == pid


def test_a_connection_the_server_dropped_is_replaced_before_the_next_query():
    pid = backend_pid()
    between_requests()
    with another_connection() as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])
        deadline = time.monotonic() + 10
        while other.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone():
            assert time.monotonic() < deadline, "the backend was not terminated"
            time.sleep(0.01)

    new_pid = backend_pid()  # would raise OperationalError on the dropped connection

    assert new_pid != pid


def test_a_connection_in_a_transaction_is_checked_by_a_query():
    with connection.cursor() as cursor:
        cursor.execute("BEGIN")
        cursor.execute("SELECT 42")
    pid = backend_pid()
    try:
        assert connection.is_usable()
        assert connection.is_usable()  # however recent the last check
        assert last_statement(pid) == "SELECT 1"
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ROLLBACK")
