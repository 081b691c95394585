"""PgBouncer in transaction mode in front of the load test's database, for the ``web`` processes.

The ``worker`` keeps a direct connection: the periodic jobs' advisory locks are session locks,
which transaction pooling does not keep (docs/SCALING.md). PgBouncer refuses to run as root, so
when the load test runs as root it is started as the ``postgres`` user with files it can read.
"""

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from loadtest.stack import free_port

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


def available() -> bool:
    return Path(PGBOUNCER).exists()


@dataclass
class PgBouncer:
    database_url: str
    pool_size: int = 10
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    directory: Path | None = None

    @property
    def url(self) -> str:
        """The database URL through the pooler."""
        parts = urlsplit(self.database_url)
        user = parts.username or "root"
        return urlunsplit(parts._replace(netloc=f"{user}@127.0.0.1:{self.port}"))

    def _config(self, directory: Path) -> str:
        parts = urlsplit(self.database_url)
        user = parts.username or "root"
        return "\n".join(
            [
                "[databases]",
                f"* = host={parts.hostname or '127.0.0.1'} port={parts.port or 5432}",
                "[pgbouncer]",
                "listen_addr = 127.0.0.1",
                f"listen_port = {self.port}",
                f"unix_socket_dir = {directory}",
                "pool_mode = transaction",
                "auth_type = trust",
                f"auth_file = {directory / 'users.txt'}",
                f"admin_users = {user}",
                f"default_pool_size = {self.pool_size}",
                "max_client_conn = 500",
                f"logfile = {directory / 'pgbouncer.log'}",
                f"pidfile = {directory / 'pgbouncer.pid'}",
                "",
            ]
        )

    def start(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
        self.directory.chmod(0o777)
        user = urlsplit(self.database_url).username or "root"
        (self.directory / "users.txt").write_text(f'"{user}" ""\n')
        config = self.directory / "pgbouncer.ini"
        config.write_text(self._config(self.directory))
        command = [PGBOUNCER, "-q", str(config)]
        if os.geteuid() == 0:
            command[1:1] = ["-u", "postgres"]
        self.process = subprocess.Popen(command, start_new_session=True)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 15.0) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise SystemExit(f"pgbouncer exited with {self.process.returncode}")
            try:
                with psycopg.connect(self.url, connect_timeout=2, prepare_threshold=None) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                time.sleep(0.2)
        raise SystemExit(f"pgbouncer did not accept connections within {timeout:.0f}s")

    def transactions(self) -> int:
        """Transactions PgBouncer has passed to the server so far (its ``SHOW STATS``)."""
        user = urlsplit(self.database_url).username or "root"
        command = ["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", user, "-At", "-F", ","]
        result = subprocess.run(
            [*command, "-d", "pgbouncer", "-c", "SHOW STATS"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        name = urlsplit(self.database_url).path.lstrip("/")
        lines = [line.split(",") for line in result.stdout.splitlines()]
        return sum(int(cells[1]) for cells in lines if cells and cells[0] == name)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
