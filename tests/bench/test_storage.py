"""Storage settings the runner hot path relies on."""

import pytest
from django.db import connection


@pytest.mark.django_db
def test_run_pages_keep_room_for_hot_updates():
    if connection.vendor != "postgresql":
        pytest.skip("fillfactor is a PostgreSQL storage parameter")
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = 'runs_run'")
        (options,) = cursor.fetchone()
    assert "fillfactor=80" in (options or [])
