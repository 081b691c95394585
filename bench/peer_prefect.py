"""This project beside Prefect 3.9.1's server on one PostgreSQL: ``python -m bench.peer_prefect``.

Never part of CI. Prefect lives in its own virtual environment (``--prefect-venv``, default
``bench/out/prefect-venv``; ``--install`` makes it with the machine's Python 3.13 and ``pip install
prefect==3.9.1 asyncpg``); without it the command says how to install it and exits 0, skipped.

It starts ``prefect server start`` (UI and analytics off, its default single worker and its
background services, as deployed) on a free loopback port with its database on the same
PostgreSQL (``prefect_bench``), creates a flow and 20,000 flow runs through its API (it has no
batch create, so 8 at a time), plus one running flow run that receives the logs. Then it seeds
this project's database with 20,000 runs (``seed_demo``, as ``python -m bench`` does), prepares a
gateway token, runs and a viewer's API key per connection (``bench.helper cost_prepare``, as
``bench.cost`` does) and starts the Procfile's ``web`` line (4 workers).

Cases, for both servers, 8 connections, 10 s each, 4 rounds alternating which server goes first,
``VACUUM`` of both databases between rounds (autovacuum may be off on the machine):

- ``append one line``: ``PATCH /api/agent/runs/{id}`` with ``appendLog`` and ``Prefer:
  return=minimal`` (the runner's route, a gateway token) / ``POST /api/logs/`` with one log;
- ``append 100 lines``: ``appendLogs`` of 100 lines / ``POST /api/logs/`` with 100 logs;
- ``list 50``: ``GET /api/runs?limit=50`` with a viewer's API key / ``POST /api/flow_runs/filter``
  with ``{"limit": 50}``;
- ``read one run``: ``GET /api/agent/runs/{id}`` (minimal) / ``GET /api/flow_runs/{id}``. Prefect's
  server has no authentication by default, so its reads and writes skip a step ours pay for.

The load comes from this process (httpx, asyncio, 8 connections), or from ``wrk`` when it is on
the PATH (``--generator``): the same generator drives both servers in a run. Each figure is the
median over the rounds, with the range of the rate; the ratios are medians of the ratios within
one round, which a machine shared with other work distorts less than absolute rates. CPU per
request is the server's processes (its process group) plus its PostgreSQL backends. It prints a
Markdown table, the targets of issue 18 met or not, the load average, and writes
``bench/out/peer_prefect.json``.
"""

import argparse
import asyncio
import glob
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench import cost
from bench.load import Request
from bench.run import (
    OUT,
    Server,
    admin_sql,
    database_exists,
    ensure_postgres,
    ensure_seeded,
    free_port,
    helper,
    log,
    pg_url,
)

PREFECT_VERSION = "3.9.1"
PREFECT_PACKAGES = (f"prefect=={PREFECT_VERSION}", "asyncpg")
DEFAULT_VENV = OUT / "prefect-venv"
PREFECT_START_SECONDS = 240
HISTORY_TAG = "bench-history"
LINES_PER_BATCH = 100
OURS, PREFECT = "ours", "prefect"
SIDES = (OURS, PREFECT)
# Issue 18's targets against Prefect: case -> (minimum ratio of rates, minimum ratio of p99s).
TARGETS: dict[str, tuple[float, float | None]] = {
    "append one line": (5.0, 10.0),
    "append 100 lines": (10.0, None),
    "list 50": (8.0, None),
}


# ---------------------------------------------------------------------------------------------
# Prefect's environment and server


def python313() -> str | None:
    found = sorted(glob.glob("/root/.pyenv/versions/3.13*/bin/python"))
    return found[-1] if found else shutil.which("python3.13")


def install_prefect(venv: Path) -> None:
    python = python313()
    if python is None:
        raise SystemExit("no Python 3.13 found (/root/.pyenv/versions/3.13*, python3.13)")
    log(f"creating {venv} with {python} and installing prefect=={PREFECT_VERSION} asyncpg")
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *PREFECT_PACKAGES],
        check=True,
    )


def installed_prefect(venv: Path) -> str | None:
    """The version of Prefect in ``venv``, or None when there is none."""
    if not (venv / "bin" / "prefect").exists():
        return None
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import prefect; print(prefect.__version__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() if done.returncode == 0 else None


def skip_message(venv: Path) -> str:
    return (
        f"Prefect is not installed in {venv}: skipped.\n"
        "To measure against it, let the benchmark make its own environment (Python 3.13, "
        f"pip install prefect=={PREFECT_VERSION} asyncpg; PyPI must be reachable):\n"
        "    python -m bench.peer_prefect --install\n"
        "or point it at one you made: python -m bench.peer_prefect --prefect-venv PATH"
    )


def asyncpg_url(base: str, name: str) -> str:
    return "postgresql+asyncpg://" + base.split("://", 1)[1].rstrip("/") + f"/{name}"


class PrefectServer:
    """``prefect server start`` in a session of its own, so that its processes are one group."""

    def __init__(self, venv: Path, database_url: str, port: int, workers: int, log_path: Path):
        self.port = port
        home = OUT / "prefect-home"
        home.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
            "PREFECT_HOME": str(home),
            "PREFECT_API_DATABASE_CONNECTION_URL": database_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_UI_ENABLED": "false",
        }
        command = [str(venv / "bin" / "prefect"), "server", "start", "--host", "127.0.0.1"]
        command += ["--port", str(port), "--workers", str(workers), "--no-ui", "--analytics-off"]
        self.log_file = log_path.open("w")
        self.process = subprocess.Popen(
            command,
            env=env,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self) -> None:
        """Until ``/api/health`` answers: the first start also builds Prefect's schema."""
        deadline = time.monotonic() + PREFECT_START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"prefect server exited; see {self.log_file.name}")
            try:
                response = httpx.get(f"http://127.0.0.1:{self.port}/api/health", timeout=2)
                if response.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise SystemExit(f"prefect server did not answer in time; see {self.log_file.name}")

    def stop(self) -> None:
        stop_group(self.process)
        self.log_file.close()


def stop_group(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            pids.append(int(entry.name))
    return pids


async def seed_prefect(port: int, runs: int, connections: int) -> dict[str, Any]:
    """A flow holding ``runs`` tagged flow runs (topped up, never deleted), and a running flow
    run for the logs, made anew each time."""
    history = {"flow_runs": {"tags": {"all_": [HISTORY_TAG]}}}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}/api", timeout=60) as client:
        flow = (await client.post("/flows/", json={"name": "bench-peer"})).raise_for_status()
        flow_id = flow.json()["id"]
        existing = (await client.post("/flow_runs/count", json=history)).raise_for_status().json()
        missing = max(0, runs - existing)
        if missing:
            log(
                f"prefect: creating {missing} flow runs ({existing} there), {connections} at a time"
            )
        began = time.monotonic()
        numbers = iter(range(existing, existing + missing))

        async def create() -> None:
            for number in numbers:
                state = "FAILED" if number % 10 == 0 else "COMPLETED"
                body = {
                    "flow_id": flow_id,
                    "name": f"bench-{number}",
                    "tags": [HISTORY_TAG],
                    "state": {"type": state, "name": state.title()},
                }
                (await client.post("/flow_runs/", json=body)).raise_for_status()

        await asyncio.gather(*(create() for _ in range(connections)))
        if missing:
            log(f"prefect: created in {time.monotonic() - began:.0f} s")
        log_run = await client.post(
            "/flow_runs/",
            json={"flow_id": flow_id, "name": "bench-logs", "state": {"type": "RUNNING"}},
        )
        reads = await client.post("/flow_runs/filter", json={**history, "limit": connections})
        total = (await client.post("/flow_runs/count", json={})).raise_for_status().json()
    return {
        "flow_id": flow_id,
        "history": existing + missing,
        "flow_runs": total,
        "created": missing,
        "created_per_s": round(missing / (time.monotonic() - began), 1) if missing else None,
        "log_run": log_run.raise_for_status().json()["id"],
        "read_runs": [row["id"] for row in reads.raise_for_status().json()],
    }


def vacuum_prefect(base: str, name: str) -> None:
    import psycopg

    with psycopg.connect(pg_url(base, name), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


# ---------------------------------------------------------------------------------------------
# Cases


def _line(n: int) -> dict[str, str]:
    return {"level": "info", "message": f"Loaded batch {n} of 50000 rows into analytics.accounts"}


def _prefect_log(n: int, flow_run: str, at: str) -> dict[str, Any]:
    return {
        "name": "bench",
        "level": 20,
        "message": f"Loaded batch {n} of 50000 rows into analytics.accounts",
        "timestamp": at,
        "flow_run_id": flow_run,
    }


def cases(prep: dict[str, Any], prefect: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per case and side: the expected status, lines a request, and one request per connection
    (each of ours on its own gateway, so no connection shares a rate-limit bucket)."""
    json_type = {"Content-Type": "application/json"}
    minimal = {"Prefer": "return=minimal"}
    clients = prep["clients"]

    def token(client: dict[str, Any]) -> dict[str, str]:
        return {"Authorization": f"Bearer {client['token']}"}

    def ours_patch(run: str, body: dict[str, Any]) -> list[Request]:
        payload = json.dumps(body).encode()
        return [
            Request(
                "PATCH", f"/api/agent/runs/{c[run]}", {**token(c), **json_type, **minimal}, payload
            )
            for c in clients
        ]

    def prefect_logs(count: int) -> list[Request]:
        at = datetime.now(UTC).isoformat()
        logs = [_prefect_log(n, prefect["log_run"], at) for n in range(count)]
        return [Request("POST", "/api/logs/", json_type, json.dumps(logs).encode())]

    return {
        "append one line": {
            OURS: {
                "status": 200,
                "lines": 1,
                "requests": ours_patch("append", {"appendLog": _line(1)}),
            },
            PREFECT: {"status": 201, "lines": 1, "requests": prefect_logs(1)},
        },
        "append 100 lines": {
            OURS: {
                "status": 200,
                "lines": LINES_PER_BATCH,
                "requests": ours_patch(
                    "batch", {"appendLogs": [_line(n) for n in range(LINES_PER_BATCH)]}
                ),
            },
            PREFECT: {
                "status": 201,
                "lines": LINES_PER_BATCH,
                "requests": prefect_logs(LINES_PER_BATCH),
            },
        },
        "list 50": {
            OURS: {
                "status": 200,
                "lines": 0,
                "requests": [
                    Request(
                        "GET", "/api/runs?limit=50", {"Authorization": f"Bearer {c['api_key']}"}
                    )
                    for c in clients
                ],
            },
            PREFECT: {
                "status": 200,
                "lines": 0,
                "requests": [Request("POST", "/api/flow_runs/filter", json_type, b'{"limit": 50}')],
            },
        },
        "read one run": {
            OURS: {
                "status": 200,
                "lines": 0,
                "requests": [
                    Request("GET", f"/api/agent/runs/{c['small']}", {**token(c), **minimal})
                    for c in clients
                ],
            },
            PREFECT: {
                "status": 200,
                "lines": 0,
                "requests": [
                    Request("GET", f"/api/flow_runs/{run}") for run in prefect["read_runs"]
                ],
            },
        },
    }


# ---------------------------------------------------------------------------------------------
# Load


async def drive(port: int, requests: list[Request], *, seconds: int, connections: int) -> dict:
    """``connections`` loops, each sending its own request of ``requests`` back to back until
    the time is up; latency of every answer, and its status."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors = 0
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=10
    ) as client:
        began = time.perf_counter()
        deadline = began + seconds

        async def loop(index: int) -> None:
            nonlocal errors
            request = requests[index % len(requests)]
            while time.perf_counter() < deadline:
                sent = time.perf_counter()
                try:
                    response = await client.request(
                        request.method, request.path, headers=request.headers, content=request.body
                    )
                except httpx.HTTPError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - sent)
                statuses[response.status_code] += 1

        await asyncio.gather(*(loop(index) for index in range(connections)))
        elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "statuses": dict(statuses),
        "socket_errors": errors,
        "p50_ms": latencies[len(latencies) // 2] * 1000 if latencies else None,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000 if latencies else None,
    }


def drive_wrk(port: int, script: Path, *, seconds: int, connections: int) -> dict:
    result = cost.run_wrk(port, script, seconds=seconds, connections=connections)
    return {
        "requests": result["requests"],
        "seconds": result["duration_us"] / 1e6,
        "statuses": {"non_2xx": result["non_2xx"]},
        "socket_errors": result["socket_errors"],
        "p50_ms": result["p50_us"] / 1000,
        "p99_ms": result["p99_us"] / 1000,
    }


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    return {pid: cost._cpu_seconds(pid) for pid in pids}


def measure(args, ports: dict[str, int], groups: dict[str, int], databases: dict[str, str], specs):
    """Every case on both servers, round after round, the first server alternating."""
    scripts = OUT / "wrk"
    for name, sides in specs.items():
        for side, spec in sides.items():
            cost.check(ports[side], f"{name} ({side})", spec)
            if args.generator == "wrk":
                scripts.mkdir(parents=True, exist_ok=True)
                slug = re.sub(r"[^a-z0-9]+", "_", f"peer {side} {name}")
                spec["script"] = scripts / f"{slug}.lua"
                spec["script"].write_text(cost.wrk_script(spec["requests"]))
    rounds: list[dict[str, dict[str, dict[str, Any]]]] = []
    for number in range(1, args.rounds + 1):
        order = SIDES if number % 2 else SIDES[::-1]
        log(f"round {number} of {args.rounds} ({' first, then '.join(order)})")
        figures: dict[str, dict[str, dict[str, Any]]] = {}
        for name, sides in specs.items():
            figures[name] = {}
            for side in order:
                spec = sides[side]
                pids = group_pids(groups[side]) + cost._backends(databases[side])
                load_before = cost.load_average()
                before = cpu_seconds(pids)
                if args.generator == "wrk":
                    result = drive_wrk(
                        ports[side],
                        spec["script"],
                        seconds=args.seconds,
                        connections=args.connections,
                    )
                    unexpected = result["statuses"]["non_2xx"]
                else:
                    result = asyncio.run(
                        drive(
                            ports[side],
                            spec["requests"],
                            seconds=args.seconds,
                            connections=args.connections,
                        )
                    )
                    unexpected = sum(
                        count
                        for status, count in result["statuses"].items()
                        if status != spec["status"]
                    )
                after = cpu_seconds(pids)
                cpu = sum(after[pid] - before[pid] for pid in pids)
                requests = result["requests"]
                rate = requests / result["seconds"]
                figures[name][side] = {
                    "rate": round(rate, 1),
                    "lines_per_s": round(rate * spec["lines"], 1),
                    "p50_ms": round(result["p50_ms"], 2) if requests else None,
                    "p99_ms": round(result["p99_ms"], 2) if requests else None,
                    "cpu_ms": round(cpu * 1000 / requests, 2) if requests else None,
                    "unexpected_status": unexpected,
                    "socket_errors": result["socket_errors"],
                    "load": load_before,
                }
                row = figures[name][side]
                log(
                    f"  {name} ({side}): {rate:.0f} req/s, p99 {row['p99_ms']} ms, "
                    f"CPU {row['cpu_ms']} ms/req, load {load_before:.2f}"
                    + (f", {unexpected} unexpected statuses" if unexpected else "")
                    + (f", {result['socket_errors']} errors" if result["socket_errors"] else "")
                )
        rounds.append(figures)
        helper(pg_url(args.pg, databases[OURS]), "vacuum")
        vacuum_prefect(args.pg, databases[PREFECT])
    return rounds


# ---------------------------------------------------------------------------------------------
# Report


def summarize(rounds: list[dict[str, dict[str, dict[str, Any]]]]) -> dict[str, Any]:
    """Per case and side, the median of each figure with the range of the rate; per case, the
    medians of the ratios within a round (ours over Prefect's rate; Prefect's p99 and CPU per
    request over ours: every ratio reads "higher is better for this project")."""
    summary: dict[str, Any] = {}
    for name in rounds[0]:
        entry: dict[str, Any] = {}
        for side in SIDES:
            rows = [figures[name][side] for figures in rounds]
            side_entry: dict[str, Any] = {}
            for key in rows[0]:
                values = [row[key] for row in rows if row[key] is not None]
                side_entry[key] = round(statistics.median(values), 3) if values else None
            side_entry["rate_range"] = [
                min(row["rate"] for row in rows),
                max(r["rate"] for r in rows),
            ]
            side_entry["loads"] = [row["load"] for row in rows]
            entry[side] = side_entry
        for key, label in (("rate", "rate"), ("p99_ms", "p99"), ("cpu_ms", "cpu")):
            values = []
            for figures in rounds:
                ours, theirs = figures[name][OURS][key], figures[name][PREFECT][key]
                if ours and theirs:
                    values.append(ours / theirs if key == "rate" else theirs / ours)
            entry[f"x_{label}"] = round(statistics.median(values), 2) if values else None
        summary[name] = entry
    return summary


def _cell(side: dict[str, Any], lines: bool) -> str:
    low, high = side["rate_range"]
    text = f"{side['rate']:,.0f} ({low:,.0f}-{high:,.0f})"
    if lines:
        text += f", {side['lines_per_s']:,.0f} lines/s"
    return text


def _number(value: float | None, digits: int) -> str:
    return f"{value:,.{digits}f}" if value is not None else "-"


def _ratio(value: float | None) -> str:
    return f"{value:.1f}x" if value is not None else "-"


def report(summary: dict[str, Any], loads: dict[str, list[float]]) -> str:
    lines = [
        "| case | this project req/s (range) | p99 ms | CPU ms/req "
        "| Prefect req/s (range) | p99 ms | CPU ms/req "
        "| rate ours/Prefect | p99 Prefect/ours | CPU Prefect/ours |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, entry in summary.items():
        ours, theirs = entry[OURS], entry[PREFECT]
        batch = theirs["rate"] > 0 and theirs["lines_per_s"] / theirs["rate"] > 1.5
        lines.append(
            f"| {name} | {_cell(ours, batch)} | {_number(ours['p99_ms'], 0)} "
            f"| {_number(ours['cpu_ms'], 1)} "
            f"| {_cell(theirs, batch)} | {_number(theirs['p99_ms'], 0)} "
            f"| {_number(theirs['cpu_ms'], 1)} "
            f"| {_ratio(entry['x_rate'])} | {_ratio(entry['x_p99'])} | {_ratio(entry['x_cpu'])} |"
        )
    lines.append("")
    lines.append("Targets of issue 18 (medians over the rounds of the ratio within each round):")
    for name, (minimum, p99_minimum) in TARGETS.items():
        entry = summary.get(name)
        if entry is None or entry["x_rate"] is None:
            continue
        unit = "lines/s" if name == "append 100 lines" else "req/s"
        verdict = "met" if entry["x_rate"] >= minimum else "NOT met"
        lines.append(
            f"- {name}: {unit} {entry['x_rate']:.1f}x Prefect's (>= {minimum:g}x): {verdict}"
        )
        if p99_minimum is not None and entry["x_p99"] is not None:
            verdict = "met" if entry["x_p99"] >= p99_minimum else "NOT met"
            lines.append(
                f"- {name}: Prefect's p99 over ours {entry['x_p99']:.1f}x "
                f"(>= {p99_minimum:g}x): {verdict}"
            )
    lines.append("")
    lines.append(
        "Load average (1, 5, 15 min) before: "
        + ", ".join(f"{value:.2f}" for value in loads["before"])
        + "; after: "
        + ", ".join(f"{value:.2f}" for value in loads["after"])
        + f"; {os.cpu_count()} CPUs."
    )
    return "\n".join(lines)


def load_averages() -> list[float]:
    return [float(value) for value in Path("/proc/loadavg").read_text().split()[:3]]


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.peer_prefect", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--prefect-venv", default=str(DEFAULT_VENV))
    parser.add_argument(
        "--install", action="store_true", help="Create the Prefect environment first."
    )
    parser.add_argument(
        "--pg", default=os.environ.get("BENCH_PG", "postgres://root@127.0.0.1:5432")
    )
    parser.add_argument("--database", default="elt_prefect_peer")
    parser.add_argument("--prefect-database", default="prefect_bench")
    parser.add_argument("--runs", type=int, default=20_000, help="History size on each side.")
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", "4")))
    parser.add_argument("--prefect-workers", type=int, default=1)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--cases", default="", help="Comma list of case names (default: all).")
    parser.add_argument(
        "--generator",
        choices=["auto", "httpx", "wrk"],
        default="auto",
        help="Load generator; auto takes wrk when it is on the PATH, httpx otherwise.",
    )
    parser.add_argument("--out", default=str(OUT / "peer_prefect.json"))
    args = parser.parse_args(argv)

    started = datetime.now(UTC).isoformat()
    venv = Path(args.prefect_venv).resolve()
    if args.install and installed_prefect(venv) is None:
        install_prefect(venv)
    version = installed_prefect(venv)
    if version is None:
        print(skip_message(venv))
        return 0
    if version != PREFECT_VERSION:
        log(f"Prefect {version} in {venv}, not {PREFECT_VERSION}: measuring it anyway")
    if args.generator == "auto":
        args.generator = "wrk" if shutil.which("wrk") else "httpx"
    elif args.generator == "wrk" and shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install -y wrk)")
    OUT.mkdir(parents=True, exist_ok=True)
    ensure_postgres(args.pg)
    loads = {"before": load_averages()}
    log(f"load average {loads['before']}; Prefect {version}, load from {args.generator}")

    if not database_exists(args.pg, args.prefect_database):
        admin_sql(args.pg, f'CREATE DATABASE "{args.prefect_database}"')
    prefect_port, our_port = free_port(), free_port()
    prefect_server = PrefectServer(
        venv,
        asyncpg_url(args.pg, args.prefect_database),
        prefect_port,
        args.prefect_workers,
        OUT / "peer-prefect-server.log",
    )
    our_server = None
    url = pg_url(args.pg, args.database)
    try:
        prefect_server.wait_ready()
        prefect = asyncio.run(seed_prefect(prefect_port, args.runs, args.connections))
        seeded = ensure_seeded(args.pg, args.database, args.runs, reseed=False)
        prep = helper(url, "cost_prepare", {"clients": args.connections})
        our_server = Server(url, our_port, args.workers, OUT / "peer-web.log")
        our_server.wait_ready()
        specs = cases(prep, prefect)
        if args.cases:
            specs = {name: specs[name] for name in args.cases.split(",")}
        rounds = measure(
            args,
            {OURS: our_port, PREFECT: prefect_port},
            {OURS: our_server.process.pid, PREFECT: prefect_server.process.pid},
            {OURS: args.database, PREFECT: args.prefect_database},
            specs,
        )
    finally:
        if our_server is not None:
            our_server.stop()
            helper(url, "cleanup")
        prefect_server.stop()
    loads["after"] = load_averages()
    summary = summarize(rounds)
    text = report(summary, loads)
    print(text)
    result = {
        "started": started,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average": loads,
        },
        "prefect": {"version": version, **{k: v for k, v in prefect.items() if k != "read_runs"}},
        "seeded": seeded,
        "settings": {
            key: getattr(args, key)
            for key in ("workers", "prefect_workers", "connections", "seconds", "rounds")
        }
        | {"generator": args.generator},
        "cases": summary,
        "rounds": rounds,
        "report": text,
    }
    Path(args.out).write_text(json.dumps(result, indent=2, default=str))
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
