import pytest
from django.db import connection


@pytest.fixture
def scratch_database_url(request) -> str:
    """A PostgreSQL database beside the test database, for a live gunicorn to use.

    Named after the test database, so parallel checkouts never share one; dropped afterwards.
    """
    if connection.vendor != "postgresql":
        pytest.skip("runs gunicorn against PostgreSQL; the SQLite pass leaves it out")
    from loadtest.stack import recreate_database

    params = connection.settings_dict
    name = f"{connection.settings_dict['NAME']}_{request.node.name[:20]}".lower()
    name = "".join(ch if ch.isalnum() else "_" for ch in name)
    auth = params["USER"] + (f":{params['PASSWORD']}" if params.get("PASSWORD") else "")
    url = f"postgres://{auth}@{params['HOST'] or '127.0.0.1'}:{params['PORT'] or 5432}/{name}"
    recreate_database(url)
    yield url
    import psycopg

    from loadtest.stack import admin_url

    with psycopg.connect(admin_url(url), autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name]
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
