"""The benchmark suite: ``python -m bench`` (see the README, "Benchmark").

For each history size (10,000 and 1,000,000 runs by default) it makes sure a PostgreSQL
database holds exactly that seeded history (``seed_demo --runs N --days D --no-live``, with D
chosen so that runs per day are the same at every size), starts the app the way the Procfile's
``web`` line does on a free loopback port, measures, stops it, and finally prints one table with
the ratios the targets are stated in and writes ``bench/out/results.json``.
"""

import argparse
import contextlib
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse
from datetime import UTC, datetime, timedelta
from itertools import cycle
from pathlib import Path
from typing import Any

from bench import load
from bench.load import Request, json_body
from loadtest.stack import SECRET_KEY  # one key for every process of a run

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
PYTHON = sys.executable
RUNS_PER_DAY = 10_000 / 7  # the same density at every size: 10k over 7 days, 1M over 700
APPENDS_PER_EMPTY_RUN = 5
SERVER_START_SECONDS = 90
MIN_INGEST_RATE_RATIO = 0.6
MIN_FULL_EMPTY_RATIO = 0.9
MAX_SIZE_RATIO = 1.5
# The bulk dry-run preview is timed over this many matching runs, under BULK_PREVIEW_MAX_MS.
BULK_PREVIEW_RUNS = 100_000
BULK_PREVIEW_MAX_MS = 1000


def log(message: str) -> None:
    print(f"[bench {datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def size_label(runs: int) -> str:
    if runs % 1_000_000 == 0:
        return f"{runs // 1_000_000}m"
    if runs % 1000 == 0:
        return f"{runs // 1000}k"
    return str(runs)


# ---------------------------------------------------------------------------------------------
# Databases


def pg_url(base: str, name: str) -> str:
    return f"{base.rstrip('/')}/{name}"


def ensure_postgres(base: str) -> None:
    parsed = urllib.parse.urlparse(base)
    host, port = parsed.hostname or "127.0.0.1", str(parsed.port or 5432)
    ready = ["pg_isready", "-h", host, "-p", port, "-q"]
    if subprocess.run(ready, check=False).returncode == 0:
        return
    clusters = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if clusters:
        log("PostgreSQL is not answering; starting the local cluster")
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", clusters[-1], "main", "start"],
            check=False,
        )
    for _ in range(30):
        if subprocess.run(ready, check=False).returncode == 0:
            return
        time.sleep(1)
    raise SystemExit(f"PostgreSQL is not reachable at {host}:{port}")


def admin_sql(base: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(pg_url(base, "postgres"), autocommit=True) as conn:
        conn.execute(sql)


def database_exists(base: str, name: str) -> bool:
    import psycopg

    with psycopg.connect(pg_url(base, "postgres"), autocommit=True) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        return row is not None


def database_sessions(base: str, url: str) -> int:
    """Connections ever opened to the database (PostgreSQL 14+): with persistent connections a
    load test adds about one per web worker, without them one per request."""
    import psycopg

    name = urllib.parse.urlparse(url).path.lstrip("/")
    with psycopg.connect(pg_url(base, "postgres"), autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute("SELECT sessions FROM pg_stat_database WHERE datname = %s", [name])
        return int(row.fetchone()[0] or 0)


def app_env(database_url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("SECRET_KEY", SECRET_KEY)
    env.update(DATABASE_URL=database_url, DEBUG="false", PYTHONUNBUFFERED="1", **extra)
    # `python` and `gunicorn` in the Procfile resolve to this interpreter's environment.
    env["PATH"] = f"{Path(PYTHON).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def manage(database_url: str, *args: str, quiet: bool = True) -> None:
    subprocess.run(
        [PYTHON, "manage.py", *args],
        cwd=ROOT,
        env=app_env(database_url),
        check=True,
        stdout=subprocess.DEVNULL if quiet else None,
    )


def helper(database_url: str, command: str, spec: dict[str, Any] | None = None) -> dict:
    done = subprocess.run(
        [PYTHON, "-m", "bench.helper", command],
        cwd=ROOT,
        env=app_env(database_url),
        input=json.dumps(spec or {}),
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
        raise SystemExit(f"bench.helper {command} failed")
    return json.loads(done.stdout.strip().splitlines()[-1])


def ensure_seeded(base: str, name: str, runs: int, *, reseed: bool) -> dict[str, Any]:
    """A database holding exactly ``runs`` seeded runs, reused when it already does."""
    url = pg_url(base, name)
    days = round(runs / RUNS_PER_DAY, 2)
    if reseed and database_exists(base, name):
        log(f"{name}: dropping for --reseed")
        admin_sql(base, f'DROP DATABASE "{name}" WITH (FORCE)')
    if not database_exists(base, name):
        admin_sql(base, f'CREATE DATABASE "{name}"')
    manage(url, "migrate", "--noinput", "-v", "0")
    counts = helper(url, "counts")
    if counts["runs"] != runs:
        if counts["runs"]:
            log(f"{name}: holds {counts['runs']} runs, not {runs}; reseeding")
            admin_sql(base, f'DROP DATABASE "{name}" WITH (FORCE)')
            admin_sql(base, f'CREATE DATABASE "{name}"')
            manage(url, "migrate", "--noinput", "-v", "0")
        log(f"{name}: seeding {runs} runs over {days} days (this takes a while at 1M)")
        began = time.monotonic()
        manage(
            url, "seed_demo", "--runs", str(runs), "--days", str(days), "--no-live", "--seed", "1"
        )
        log(f"{name}: seeded in {time.monotonic() - began:.0f} s")
        counts = helper(url, "counts")
    else:
        log(f"{name}: reusing {runs} seeded runs")
    return {"database": name, "runs": runs, "days": days, **counts}


# ---------------------------------------------------------------------------------------------
# The web process


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def procfile_web_command(port: int) -> str:
    """The Procfile's ``web`` line, bound to loopback instead of every interface."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            command = line.split(":", 1)[1].strip()
            return re.sub(r"--bind\s+\S+", f"--bind 127.0.0.1:{port}", command)
    raise SystemExit("Procfile has no web line")


class Server:
    def __init__(self, database_url: str, port: int, workers: int, log_path: Path):
        self.port = port
        self.command = procfile_web_command(port)
        self.log_file = log_path.open("w")
        env = app_env(database_url, PORT=str(port), WEB_CONCURRENCY=str(workers))
        self.process = subprocess.Popen(
            ["bash", "-c", self.command],
            cwd=ROOT,
            env=env,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the web process exited; see {self.log_file.name}")
            try:
                conn = load.Connection(self.port, timeout=2)
                status, *_ = conn.send(Request("GET", "/api/agent/runs"))
                conn.close()
                if status in (200, 401, 403):
                    return
            except OSError:
                pass
            time.sleep(0.3)
        raise SystemExit("the web process did not answer in time")

    def workers(self) -> list[int]:
        """Gunicorn's worker processes: the children of its master (bash may exec it or not)."""
        children: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
        masters = [
            pid
            for pid in [self.process.pid, *self._descendants(self.process.pid, children)]
            if "gunicorn" in self._cmdline(pid) and children.get(pid)
        ]
        return [pid for master in masters for pid in children.get(master, [])]

    @staticmethod
    def _descendants(pid: int, children: dict[int, list[int]]) -> list[int]:
        found, stack = [], [pid]
        while stack:
            for child in children.get(stack.pop(), []):
                found.append(child)
                stack.append(child)
        return found

    @staticmethod
    def _cmdline(pid: int) -> str:
        try:
            return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            return ""

    def peak_rss_mb(self) -> list[float]:
        """Peak resident memory (VmHWM) of each worker so far."""
        peaks = []
        for pid in self.workers():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            match = re.search(r"VmHWM:\s+(\d+) kB", status)
            if match:
                peaks.append(round(int(match.group(1)) / 1024, 1))
        return peaks

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.log_file.close()


# ---------------------------------------------------------------------------------------------
# Measurements


def page_requests(prep: dict[str, Any]) -> dict[str, Request]:
    """Pages, partials, list endpoints and live polls, built from parameters, not markup."""
    cookie = {"Cookie": prep["session_cookie"]}
    htmx = {**cookie, "HX-Request": "true"}
    key = {"Authorization": f"Bearer {prep['api_key']}"}
    pipeline = prep["filter_pipeline"]["public_id"]
    week_ago = (datetime.fromisoformat(prep["now"]) - timedelta(days=7)).isoformat()
    filtered = urllib.parse.urlencode({"status": "failed", "pipelineId": pipeline, "window": "7d"})
    api_filtered = urllib.parse.urlencode(
        {"status": "failed", "pipelineId": pipeline, "from": week_ago, "limit": 50}
    )
    deep = urllib.parse.urlencode({"cursor": prep["deep_cursor"]})
    api_deep = urllib.parse.urlencode({"cursor": prep["deep_cursor"], "limit": 50})
    recent, big, live = prep["recent_run"], prep["big_run"], prep["live_runs"]
    since = urllib.parse.quote(datetime.now(UTC).isoformat())
    return {
        "page /runs/": Request("GET", "/runs/", cookie),
        "page /runs/ filtered": Request("GET", f"/runs/?{filtered}", cookie),
        "page /runs/ deep": Request("GET", f"/runs/?{deep}", cookie),
        "partial /runs/": Request("GET", "/runs/", htmx),
        "partial /runs/ filtered": Request("GET", f"/runs/?{filtered}", htmx),
        "partial /runs/ deep": Request("GET", f"/runs/?{deep}", htmx),
        "partial /runs/ 30d window": Request("GET", "/runs/?window=30d", htmx),
        "detail finished run": Request("GET", f"/runs/{recent}/", cookie),
        "detail running run": Request("GET", f"/runs/{live[0]}/", cookie),
        "detail 500 lines/2000 samples": Request("GET", f"/runs/{big}/", cookie),
        "poll /runs/live/ unchanged": Request("GET", prep["live_poll_url"], cookie),
        "poll detail live unchanged": Request(
            "GET", f"/runs/{live[0]}/live/?since={since}", cookie
        ),
        "poll log tail unchanged": Request(
            "GET", f"/runs/{live[0]}/log/?after={prep['live_run_log_seq']}", cookie
        ),
        "api /api/runs": Request("GET", "/api/runs?limit=50", key),
        "api /api/runs filtered": Request("GET", f"/api/runs?{api_filtered}", key),
        "api /api/runs deep": Request("GET", f"/api/runs?{api_deep}", key),
        "api /api/runs/{id}": Request("GET", f"/api/runs/{big}", key),
        # Judgement: pipeline pages over 200 pipelines, badges and ETAs on every Runs page above.
        "page /pipelines/": Request("GET", "/pipelines/", cookie),
        "partial /pipelines/ by p90": Request("GET", "/pipelines/?sort=-p90", htmx),
        "page /pipelines/{id}/ 30d": Request("GET", f"/pipelines/{pipeline}/", cookie),
        "page /runs/ out of baseline": Request("GET", "/runs/?baseline=out", cookie),
        "api /api/pipelines/{id} stats": Request("GET", f"/api/pipelines/{pipeline}", key),
        "api /api/runs/{id}/compare": Request("GET", f"/api/runs/{recent}/compare", key),
    }


STRIP_VARIANTS = {
    "strip 24h (default)": "",
    "strip filtered": "status=failed&pipelineId={pipeline}&window=7d",
    # Informational: at 10k runs the whole history is 7 days, so 30 days hold fewer runs there.
    "strip 30d": "window=30d",
}
INFO_ONLY = {"strip 30d", "partial /runs/ 30d window"}


def measure_pages(
    ports: dict[str, int], preps: dict[str, dict[str, Any]], iterations: int, warmup: int = 3
) -> dict[str, dict[str, Any]]:
    """Server time of every page at every size, the sizes' requests alternating one by one so
    that whatever else the machine is doing weighs on each size alike."""
    requests = {label: page_requests(prep) for label, prep in preps.items()}
    names = list(next(iter(requests.values())))
    connections = {label: load.Connection(port) for label, port in ports.items()}
    results: dict[str, dict[str, Any]] = {label: {} for label in ports}
    try:
        for name in names:
            samples: dict[str, list] = {label: [] for label in ports}
            for attempt in range(warmup + iterations):
                for label, conn in connections.items():
                    status, body, _, elapsed = conn.send(requests[label][name])
                    if attempt >= warmup:
                        samples[label].append((elapsed * 1000, status, len(body)))
            for label, rows in samples.items():
                times = [row[0] for row in rows]
                statuses = sorted({row[1] for row in rows})
                results[label][name] = {
                    "p50_ms": round(statistics.median(times), 2),
                    "min_ms": round(min(times), 2),
                    "max_ms": round(max(times), 2),
                    "statuses": statuses,
                    "bytes": rows[-1][2],
                    "missing": 404 in statuses,
                }
            log(
                f"  {name}: "
                + ", ".join(
                    f"{label} p50 {results[label][name]['p50_ms']} ms "
                    f"{results[label][name]['statuses']}"
                    for label in ports
                )
            )
    finally:
        for conn in connections.values():
            conn.close()
    return results


def ingest_streams(prep: dict[str, Any], case: str, minimal: bool) -> list:
    """One request stream per client, each on its own gateway's runs."""
    streams = []
    for client_index, client in enumerate(prep["ingest"]):
        headers = {
            "Authorization": f"Bearer {client['token']}",
            "Content-Type": "application/json",
        }
        if minimal:
            headers["Prefer"] = "return=minimal"
        streams.append(_stream(case, client, headers, prep["ingest_state"][client_index], minimal))
    return streams


def _stream(case: str, client: dict[str, Any], headers: dict[str, str], state, minimal: bool):
    log_line = json_body(
        {"appendLog": {"level": "info", "message": "Read batch of 50000 rows", "nodeId": "n_1"}}
    )
    sample = json_body(
        {"appendTelemetrySample": {"rowsLoaded": 50000, "bytesLoaded": 12000000, "progress": 20}}
    )
    if case == "trivial":
        runs = cycle(client["empty"][:4])
        while True:
            yield Request(
                "GET", f"/api/agent/runs/{next(runs)}", {**headers, "Prefer": "return=minimal"}
            )
    if case in ("log_full", "samples_full"):
        body = log_line if case == "log_full" else sample
        runs = cycle(client["full_log" if case == "log_full" else "full_samples"])
        while True:
            yield Request("PATCH", f"/api/agent/runs/{next(runs)}", headers, body)
    # Empty: each run takes at most APPENDS_PER_EMPTY_RUN appends of a kind, then the next run.
    kind = "log" if case == "log_empty" else "samples"
    body = log_line if kind == "log" else sample
    pool = client["empty"]
    while True:
        index = state[kind] // APPENDS_PER_EMPTY_RUN
        state[kind] += 1
        yield Request("PATCH", f"/api/agent/runs/{pool[index % len(pool)]}", headers, body)


INGEST_CASES = ["trivial", "log_empty", "log_full", "samples_empty", "samples_full"]


def measure_ingest(port: int, prep: dict[str, Any], *, seconds: float, rounds: int) -> dict:
    """Each case ``rounds`` times, interleaved, so slow drift in machine load hits all alike."""
    prep["ingest_state"] = [{"log": 0, "samples": 0} for _ in prep["ingest"]]
    totals: dict[str, load.CaseResult] = {}
    plan = [("trivial", True)] + [
        (case, minimal) for minimal in (True, False) for case in INGEST_CASES[1:]
    ]
    # Warm every worker's code paths and connections first.
    for case, minimal in plan:
        load.concurrent(port, ingest_streams(prep, case, minimal), seconds=0.3)
    for round_index in range(rounds):
        for case, minimal in plan:
            name = f"{case}/{'minimal' if minimal else 'full'}"
            result = load.concurrent(port, ingest_streams(prep, case, minimal), seconds=seconds)
            totals.setdefault(name, load.CaseResult()).add(result)
        log(f"  ingest round {round_index + 1}/{rounds} done")
    out = {name: result.summary() for name, result in totals.items()}
    pool = len(prep["ingest"][0]["empty"])
    # Lines (samples) an "empty" run gained at most: 5 unless the pool wrapped around.
    per_run = APPENDS_PER_EMPTY_RUN
    out["_empty_runs_max_appends"] = {
        kind: max(
            (
                min(s[kind], per_run)
                if s[kind] <= per_run * pool
                else per_run * -(-s[kind] // (per_run * pool))
            )
            for s in prep["ingest_state"]
        )
        for kind in ("log", "samples")
    }
    return out


def query_requests(prep: dict[str, Any]) -> list[dict[str, Any]]:
    items = []
    for name, request in page_requests(prep).items():
        headers = {k: v for k, v in request.headers.items() if k != "Cookie"}
        items.append({"name": name, "method": "GET", "path": request.path, "headers": headers})
    if not prep.get("ingest"):
        return items
    client = prep["ingest"][0]
    token = {"Authorization": f"Bearer {client['token']}"}
    for name, run_id in (
        ("PATCH appendLog 5 lines", client["empty"][-1]),
        ("PATCH appendLog 500 lines", client["full_log"][0]),
    ):
        for minimal in (True, False):
            headers = {**token, **({"Prefer": "return=minimal"} if minimal else {})}
            items.append(
                {
                    "name": f"{name} {'minimal' if minimal else 'full'}",
                    "method": "PATCH",
                    "path": f"/api/agent/runs/{run_id}",
                    "headers": headers,
                    "body": {"appendLog": {"level": "info", "message": "x"}},
                }
            )
    items.append(
        {
            "name": "trivial GET minimal",
            "method": "GET",
            "path": f"/api/agent/runs/{client['empty'][0]}",
            "headers": {**token, "Prefer": "return=minimal"},
        }
    )
    return items


def run_all(args, sizes: list[int]) -> dict[str, dict[str, Any]]:
    """Seed and prepare every size, start one web process per size, measure the pages with the
    sizes interleaved, then ingest size by size; queries and the strip in-process at the end."""
    pool = max(
        50,
        int(
            args.expected_rate
            * args.ingest_seconds
            * args.rounds
            * 2.5
            / APPENDS_PER_EMPTY_RUN
            / args.clients
        ),
    )
    urls, preps, results = {}, {}, {}
    for runs in sizes:
        label = size_label(runs)
        name = f"{args.db_prefix}{label}"
        urls[label] = pg_url(args.pg, name)
        info = ensure_seeded(args.pg, name, runs, reseed=args.reseed)
        log(f"{name}: preparing a user, gateways, a few running runs and cursors")
        preps[label] = helper(urls[label], "prepare", {"clients": args.clients})
        newest = datetime.fromisoformat(preps[label]["history_newest"])
        info["history_age_hours"] = round((datetime.now(UTC) - newest).total_seconds() / 3600, 1)
        results[label] = {"size": info}
    servers: dict[str, Server] = {}
    try:
        for label, url in urls.items():
            port = free_port() if not args.port else args.port + len(servers)
            servers[label] = Server(url, port, args.workers, OUT / f"server-{label}.log")
        for label, server in servers.items():
            server.wait_ready()
            results[label]["server"] = {
                "command": server.command,
                "workers": args.workers,
                "port": server.port,
            }
        log(f"web processes up ({args.workers} workers each); pages, sizes interleaved")
        pages = measure_pages(
            {label: server.port for label, server in servers.items()}, preps, args.iterations
        )
        for label in servers:
            results[label]["pages"] = pages[label]
        for label, server in servers.items():
            if args.no_ingest:
                break
            prep = preps[label]
            log(f"{label}: {pool * args.clients} runs to append to")
            pools = helper(urls[label], "ingest_prepare", {"clients": args.clients, "pool": pool})
            prep["ingest"] = [
                {"token": token, **runs}
                for token, runs in zip(prep["tokens"], pools["ingest"], strict=True)
            ]
            log(f"{label}: ingest, {args.clients} clients, {args.rounds} x {args.ingest_seconds} s")
            sessions_before = database_sessions(args.pg, urls[label])
            results[label]["ingest"] = measure_ingest(
                server.port, prep, seconds=args.ingest_seconds, rounds=args.rounds
            )
            results[label]["ingest"]["_db_sessions_opened"] = (
                database_sessions(args.pg, urls[label]) - sessions_before
            )
        for label, server in servers.items():
            results[label]["peak_rss_mb"] = server.peak_rss_mb()
    finally:
        for server in servers.values():
            server.stop()
    for label, url in urls.items():
        prep = preps[label]
        log(f"{label}: SQL queries per request and plans (in-process)")
        results[label]["queries"] = helper(
            url,
            "queries",
            {
                "session_cookie": prep["session_cookie"],
                "requests": query_requests(prep),
                "explain": True,
            },
        )["results"]
        log(f"{label}: the cost of the PATCH that finishes a run, without and with the index")
        results[label]["finish"] = helper(url, "finish_cost", {"runs": 40, "rounds": 4})
        log(f"{label}: the bulk dry-run preview over the newest {BULK_PREVIEW_RUNS:,} runs")
        results[label]["bulk_preview"] = helper(
            url,
            "bulk_preview",
            {"matching": BULK_PREVIEW_RUNS, "iterations": max(3, args.iterations // 2)},
        )
        # The ingest pool goes before the strip is timed: the strip sees seeded history only.
        helper(url, "cleanup")
    measure_strip(args, urls, preps, results)
    return results


def measure_strip(args, urls: dict[str, str], preps: dict, results: dict) -> None:
    """The strip's aggregate in-process, in short bursts alternating between the sizes (one
    process per database), so that drift in the machine's load weighs on every size alike."""
    bursts = 4
    per_burst = max(1, -(-args.iterations // bursts))
    collected: dict[str, dict[str, dict[str, Any]]] = {label: {} for label in urls}
    for _ in range(bursts):
        for label, url in urls.items():
            pipeline = preps[label]["filter_pipeline"]["public_id"]
            answer = helper(
                url,
                "strip",
                {
                    "variants": {k: v.format(pipeline=pipeline) for k, v in STRIP_VARIANTS.items()},
                    "iterations": per_burst,
                    "warmup": 2,
                },
            )
            if "results" not in answer:
                collected[label] = answer
                continue
            for name, value in answer["results"].items():
                entry = collected[label].setdefault(name, {"times_ms": [], **value})
                entry["times_ms"] = entry["times_ms"] + value.get("times_ms", [])
    for label, per_name in collected.items():
        if "error" in per_name:
            results[label]["strip"] = per_name
            continue
        for entry in per_name.values():
            if entry["times_ms"]:
                entry["p50_ms"] = round(statistics.median(entry["times_ms"]), 2)
        results[label]["strip"] = {"results": per_name}


# ---------------------------------------------------------------------------------------------
# Report


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    with contextlib.suppress(OSError, AttributeError):
        mem_kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    pg = ""
    with contextlib.suppress(OSError):
        pg = subprocess.run(
            ["psql", "--version"], capture_output=True, text=True, check=False
        ).stdout.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "postgres_client": pg,
        "loadavg": os.getloadavg(),
    }


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def build_report(results: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """The table, and the list of target checks behind its PASS/FAIL column."""
    lines: list[str] = []
    checks: list[dict[str, Any]] = []
    sizes = results["sizes"]
    labels = list(sizes)
    small, large = labels[0], labels[-1]

    for label in labels:
        ingest = sizes[label].get("ingest")
        if not ingest:
            continue
        lines.append(f"\n1. Runner ingest at {label} runs ({results['clients']} clients, loopback)")
        lines.append(
            f"{'case':<34}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
            f"{'vs trivial':>12}{'full/empty':>12}  target"
        )
        trivial = ingest["trivial/minimal"]["rate"]
        lines.append(
            f"{'GET /api/agent/runs/{id} (trivial)':<34}{trivial:>9.0f}"
            f"{ingest['trivial/minimal']['p50_ms']:>9.2f}{ingest['trivial/minimal']['p99_ms']:>9.2f}"
            f"{ingest['trivial/minimal']['errors']:>8}{'1.00':>12}{'':>12}"
        )
        for mode in ("minimal", "full"):
            for kind, empty_label, full_label in (
                ("log", "appendLog, 5 lines", "appendLog, 500 lines"),
                ("samples", "appendSample, 10 samples", "appendSample, 2000 samples"),
            ):
                empty = ingest[f"{kind}_empty/{mode}"]
                full = ingest[f"{kind}_full/{mode}"]
                for which, row, text in (("empty", empty, empty_label), ("full", full, full_label)):
                    vs_trivial = row["rate"] / trivial if trivial else 0
                    full_ratio = full["rate"] / empty["rate"] if empty["rate"] else 0
                    judged = mode == "minimal"
                    ok_rate = vs_trivial >= MIN_INGEST_RATE_RATIO and row["errors"] == 0
                    ok_full = full_ratio >= MIN_FULL_EMPTY_RATIO if which == "full" else None
                    ok = ok_rate and (ok_full is not False)
                    checks.append(
                        {
                            "target": f"ingest {text} ({mode}) at {label}",
                            "judged": judged,
                            "vs_trivial": round(vs_trivial, 2),
                            "full_over_empty": round(full_ratio, 2) if which == "full" else None,
                            "pass": ok,
                        }
                    )
                    lines.append(
                        f"{text + ' [' + mode + ']':<34}{row['rate']:>9.0f}{row['p50_ms']:>9.2f}"
                        f"{row['p99_ms']:>9.2f}{row['errors']:>8}{vs_trivial:>12.2f}"
                        f"{(f'{full_ratio:.2f}' if which == 'full' else ''):>12}  "
                        f"{verdict(ok)}{'' if judged else ' (info)'}"
                    )
        lines.append(
            "   [minimal] = Prefer: return=minimal, what a runner sends (judged); [full] = the"
            " default response with log, samples and nodes (shown for information)."
        )
        opened = ingest.get("_db_sessions_opened")
        total = sum(v["requests"] for k, v in ingest.items() if not k.startswith("_"))
        if opened is not None:
            persistent = opened <= 4 * results["workers"]
            checks.append(
                {
                    "target": f"persistent database connections at {label}",
                    "judged": True,
                    "opened": opened,
                    "requests": total,
                    "pass": persistent,
                }
            )
            lines.append(
                f"   database connections opened during {total} ingest requests: {opened}"
                f" (persistent connections: {verdict(persistent)})"
            )

    lines.append(
        f"\n2-3. Server time, p50 of {results['iterations']} (ms), and SQL queries per request"
    )
    header = f"{'page / endpoint':<34}"
    for label in labels:
        header += f"{label + ' ms':>10}"
    header += f"{large + '/' + small:>10}"
    for label in labels:
        header += f"{'q@' + label:>7}"
    lines.append(header + "  target")
    page_names = list(sizes[small].get("pages", {}))
    for name in page_names:
        row = f"{name:<34}"
        times = []
        for label in labels:
            page = sizes[label].get("pages", {}).get(name, {})
            times.append(page.get("p50_ms"))
            bad = [s for s in page.get("statuses", []) if s >= 400]
            row += f"{(str(page.get('p50_ms')) + ('!' if bad else '')):>10}"
        missing = any(
            sizes[label].get("pages", {}).get(name, {}).get("missing") for label in labels
        )
        ratio = times[-1] / times[0] if len(times) > 1 and times[0] else None
        row += f"{(f'{ratio:.2f}' if ratio is not None else '-'):>10}"
        query_counts = []
        for label in labels:
            q = sizes[label].get("queries", {}).get(name, {}).get("queries")
            query_counts.append(q)
            row += f"{(q if q is not None else '-'):>7}"
        ok = None
        if not missing and ratio is not None:
            ok = ratio <= MAX_SIZE_RATIO and len(set(query_counts)) == 1
            checks.append(
                {
                    "target": f"{name} at {large} within {MAX_SIZE_RATIO}x of {small}",
                    "judged": name not in INFO_ONLY,
                    "ratio": round(ratio, 2),
                    "queries": query_counts,
                    "pass": ok,
                }
            )
        note = " (info)" if name in INFO_ONLY else ""
        lines.append(row + f"  {'missing (404)' if missing else verdict(ok)}{note}")

    strip_names = [
        n for n in sizes[small].get("strip", {}).get("results", {}) if not n.startswith("_")
    ]
    for name in strip_names:
        row = f"{name + ' (in-process)':<34}"
        times, query_counts = [], []
        for label in labels:
            strip = sizes[label].get("strip", {}).get("results", {}).get(name, {})
            times.append(strip.get("p50_ms"))
            query_counts.append(strip.get("queries"))
            row += f"{strip.get('p50_ms')!s:>10}"
        ratio = times[-1] / times[0] if len(times) > 1 and times[0] else None
        row += f"{(f'{ratio:.2f}' if ratio is not None else '-'):>10}"
        for q in query_counts:
            row += f"{(q if q is not None else '-'):>7}"
        ok = None if ratio is None else ratio <= MAX_SIZE_RATIO
        if ok is not None:
            checks.append(
                {
                    "target": f"{name} at {large} within {MAX_SIZE_RATIO}x",
                    "judged": name not in INFO_ONLY,
                    "ratio": round(ratio, 2),
                    "pass": ok,
                }
            )
        lines.append(row + f"  {verdict(ok)}{' (info)' if name in INFO_ONLY else ''}")

    lines.append("\n   SQL queries per ingest request (in-process):")
    for name in sizes[small].get("queries", {}):
        if name.startswith(("PATCH", "trivial")):
            counts = [
                sizes[label].get("queries", {}).get(name, {}).get("queries") for label in labels
            ]
            lines.append(f"   {name:<40}" + "".join(f"{c!s:>6}" for c in counts))

    lines.append(
        "\n   Finishing a run (PATCH status=succeeded, in-process, p50 ms): before = without the "
        "baseline index"
    )
    for label in labels:
        finish = sizes[label].get("finish")
        if not finish:
            continue
        ratio = finish["after_p50_ms"] / finish["before_p50_ms"] if finish["before_p50_ms"] else 0
        ok = ratio <= 1.2
        checks.append(
            {
                "target": f"finishing a run at {label} within 1.2x of before",
                "judged": True,
                "ratio": round(ratio, 2),
                "pass": ok,
            }
        )
        lines.append(
            f"   at {label}: before {finish['before_p50_ms']} ms, after {finish['after_p50_ms']}"
            f" ms ({ratio:.2f}x, {finish['patches']} PATCHes each) {verdict(ok)}"
        )

    lines.append(
        f"\n   Bulk dry-run preview over the newest {BULK_PREVIEW_RUNS:,} runs "
        "(POST /api/runs/bulk dryRun, in-process, p50 ms)"
    )
    for label in labels:
        preview = sizes[label].get("bulk_preview")
        if not preview or "skipped" in preview:
            if preview:
                lines.append(f"   at {label}: {preview['skipped']}")
            continue
        for action in ("cancel", "rerun"):
            figures = preview[action]
            ok = figures["request_p50_ms"] < BULK_PREVIEW_MAX_MS
            checks.append(
                {
                    "target": f"bulk {action} preview over {figures['matched']:,} runs at "
                    f"{label} under {BULK_PREVIEW_MAX_MS} ms",
                    "judged": True,
                    "ms": figures["request_p50_ms"],
                    "pass": ok,
                }
            )
            lines.append(
                f"   at {label}, {action}: {figures['request_p50_ms']} ms (service "
                f"{figures['service_p50_ms']} ms; {figures['matched']:,} matched, "
                f"{figures['touch']:,} touch, {figures['skip']:,} skip) {verdict(ok)}"
            )

    lines.append("\n4. Peak RSS of a web worker (MB)")
    for label in labels:
        peaks = sizes[label].get("peak_rss_mb") or []
        lines.append(
            f"   at {label}: max {max(peaks, default=0):.0f} MB over {len(peaks)} workers {peaks}"
        )
    return "\n".join(lines), checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,1000000", help="Comma list of history sizes.")
    parser.add_argument("--quick", action="store_true", help="10k only, fewer iterations.")
    parser.add_argument("--reseed", action="store_true", help="Drop and reseed the databases.")
    parser.add_argument(
        "--pg", default=os.environ.get("BENCH_PG", "postgres://root@127.0.0.1:5432")
    )
    parser.add_argument("--db-prefix", default="elt_bench_")
    parser.add_argument("--port", type=int, default=0, help="Default: a free loopback port.")
    parser.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("WEB_CONCURRENCY", "4")),
        help="Gunicorn workers (WEB_CONCURRENCY, as in the Procfile).",
    )
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--ingest-seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--expected-rate", type=float, default=1000.0, help=argparse.SUPPRESS)
    parser.add_argument("--no-ingest", action="store_true")
    parser.add_argument("--out", default=str(OUT / "results.json"))
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.iterations, args.ingest_seconds, args.rounds = "10000", 10, 1.5, 1
    sizes = [int(size) for size in args.sizes.split(",")]
    OUT.mkdir(parents=True, exist_ok=True)
    ensure_postgres(args.pg)
    started = datetime.now(UTC)
    results: dict[str, Any] = {
        "started": started.isoformat(),
        "machine": machine(),
        "clients": args.clients,
        "workers": args.workers,
        "iterations": args.iterations,
        "ingest_seconds": args.ingest_seconds,
        "rounds": args.rounds,
        "sizes": {},
    }
    results["sizes"] = run_all(args, sizes)
    results["finished"] = datetime.now(UTC).isoformat()
    results["machine"]["loadavg_end"] = os.getloadavg()
    table, checks = build_report(results)
    results["checks"] = checks
    judged = [check for check in checks if check["judged"]]
    failed = [check for check in judged if not check["pass"]]
    summary = f"\nTargets: {len(judged) - len(failed)} of {len(judged)} pass"
    if failed:
        summary += "; failing: " + "; ".join(check["target"] for check in failed)
    header = (
        f"Benchmark {started:%Y-%m-%d %H:%M} UTC on {results['machine']['cpu']}, "
        f"{results['machine']['cores']} cores; load average at start "
        f"{', '.join(f'{x:.2f}' for x in results['machine']['loadavg'])}"
    )
    for label, size in results["sizes"].items():
        info = size["size"]
        header += (
            f"\n  {label}: {info['runs']} runs over {info['days']} days "
            f"(history ends {info['history_age_hours']} h ago), db {info['database']}"
        )
    results["table"] = header + "\n" + table + summary
    Path(args.out).write_text(json.dumps(results, indent=2, default=str))
    print(results["table"])
    print(f"\nWrote {args.out}")
    return 0
