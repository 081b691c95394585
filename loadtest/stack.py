"""The system under test: a fresh PostgreSQL database, seeded, and the Procfile's processes.

``web`` is the Procfile's web line (gunicorn) bound to 127.0.0.1 on a free port; ``worker`` is
the Procfile's worker line. Both run with the same environment as the driver, so they see the
same database and settings.
"""

import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://root@127.0.0.1:5432/elt_loadtest"


def procfile_command(name: str) -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        key, _, command = line.partition(":")
        if key.strip() == name:
            return command.strip()
    raise SystemExit(f"Procfile has no {name!r} process")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def admin_url(url: str) -> str:
    """The same server, database ``postgres``: where CREATE/DROP DATABASE are issued."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/postgres"))


def recreate_database(url: str) -> None:
    import psycopg

    name = database_name(url)
    if not name.replace("_", "").isalnum():
        raise SystemExit(f"refusing an unusual database name: {name!r}")
    with psycopg.connect(admin_url(url), autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name]
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')


# One key for every process of a run (the app refuses to start without one when DEBUG=false).
SECRET_KEY = os.environ.get("SECRET_KEY") or secrets.token_urlsafe(50)


def process_env(database_url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("SECRET_KEY", SECRET_KEY)
    env.update(
        {
            "DATABASE_URL": database_url,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            # The receiver listens on 127.0.0.1, which the SSRF guard refuses by default.
            "WEBHOOK_ALLOW_PRIVATE_URLS": "true",
            # Runners report from up to several hundred gateways through one address here.
            "THROTTLE_GATEWAY": env.get("THROTTLE_GATEWAY", "100000/min"),
            "THROTTLE_API_KEY": env.get("THROTTLE_API_KEY", "100000/min"),
            "PYTHONUNBUFFERED": "1",
            # Server-side time per request (microseconds) in the access log, beside the
            # client-side latencies the driver measures.
            "GUNICORN_CMD_ARGS": "--access-logformat '%(m)s %(U)s %(s)s %(D)s'",
        }
    )
    env.update(extra or {})
    return env


@dataclass
class Stack:
    database_url: str
    out_dir: Path
    env_extra: dict[str, str] = field(default_factory=dict)
    # For the web processes only (a pooler's address, say): the workers keep ``env_extra``.
    web_env_extra: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    web: subprocess.Popen | None = None
    worker: subprocess.Popen | None = None
    worker_starts: int = 0
    # More than one of each: the other web processes share the port (SO_REUSEPORT, so the
    # kernel spreads connections across them), every worker runs its own clock.
    webs: int = 1
    workers: int = 1
    other_webs: list[subprocess.Popen] = field(default_factory=list)
    other_workers: list[subprocess.Popen] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        return process_env(self.database_url, {"PORT": str(self.port), **self.env_extra})

    def _spawn(self, name: str, command: str) -> subprocess.Popen:
        log = open(self.out_dir / f"{name}.log", "ab")  # noqa: SIM115 - lives with the process
        bin_dir = str(Path(sys.executable).parent)
        env = self.env
        if name.startswith("web"):
            env.update(self.web_env_extra)
        env["PATH"] = f"{bin_dir}:{env.get('PATH', '')}"
        return subprocess.Popen(
            ["/bin/sh", "-c", f"exec {command}" if "&&" not in command else command],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start_web(self) -> None:
        # Loopback only: the Procfile binds 0.0.0.0 for a platform router; here nobody else
        # should reach the server.
        command = procfile_command("web").replace("0.0.0.0:", "127.0.0.1:")
        if self.webs > 1:
            command += " --reuse-port"
        self.web = self._spawn("web", command)
        self.other_webs = [self._spawn(f"web{n}", command) for n in range(2, self.webs + 1)]
        self.wait_ready()

    def start_worker(self) -> None:
        """Start the workers (again, after a kill)."""
        self.worker = self._spawn("worker", procfile_command("worker"))
        self.worker_starts += 1
        if not self.other_workers:
            self.other_workers = [
                self._spawn(f"worker{n}", procfile_command("worker"))
                for n in range(2, self.workers + 1)
            ]

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.web is not None and self.web.poll() is not None:
                raise SystemExit(f"web exited with {self.web.returncode}; see {self.out_dir}")
            try:
                response = httpx.get(f"{self.base_url}/api/agent/runs", timeout=2)
                if response.status_code in (401, 403):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise SystemExit(f"web did not answer within {timeout:.0f}s; see {self.out_dir}")

    def kill_worker(self, sig: int = signal.SIGKILL) -> None:
        """Kill every worker process: whichever of them holds a delivery is cut off mid-send."""
        for process in [self.worker, *self.other_workers]:
            if process is not None and process.poll() is None:
                os.killpg(process.pid, sig)
                process.wait(timeout=10)
        self.other_workers = []

    @staticmethod
    def _stop(process: subprocess.Popen | None, timeout: float = 25.0) -> None:
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def stop(self) -> None:
        for process in [self.worker, *self.other_workers, self.web, *self.other_webs]:
            self._stop(process)

    def all_webs_alive(self) -> bool:
        return all(p is not None and p.poll() is None for p in [self.web, *self.other_webs])


def describe_command(argv: list[str]) -> str:
    return " ".join(shlex.quote(arg) for arg in argv)


def _proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def cpu_usage(stack: "Stack") -> dict[str, float]:
    """CPU seconds used so far by gunicorn (master and workers) and by this database's
    PostgreSQL backends: the cost of the load, whatever else the machine was doing."""
    web = 0.0
    if stack.web is not None:
        # The shell of the Procfile line, gunicorn's master, and its workers.
        pending, seen = [stack.web.pid], set()
        while pending:
            pid = pending.pop()
            if pid in seen:
                continue
            seen.add(pid)
            web += _proc_cpu_seconds(pid)
            pending.extend(_children(pid))
    database = 0.0
    try:
        import psycopg

        with psycopg.connect(admin_url(stack.database_url), autocommit=True) as conn:
            pids = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s",
                [database_name(stack.database_url)],
            ).fetchall()
        database = sum(_proc_cpu_seconds(pid) for (pid,) in pids)
    except Exception:  # noqa: S110 - a figure for the report, never a reason to fail the run
        pass
    return {"web_cpu_seconds": round(web, 2), "database_cpu_seconds": round(database, 2)}
