"""The per-request cost of the runner API against the framework's floor: ``python -m bench.cost``.

It seeds (or reuses) a PostgreSQL database with a history of runs, starts the Procfile's ``web``
line with ``BENCH_ENDPOINTS=1`` (the reference endpoints of ``config/bench_urls.py``), and drives
every case over loopback with ``wrk`` (8 connections, 2 threads, Lua scripts written to
``bench/out/wrk/``), in interleaved rounds, vacuuming between rounds (autovacuum may be off on
the machine). Each case's rate is also stated as a ratio of the floor measured in the same round:
on a machine shared with other work, ratios within one round mean more than absolute rates, so
the load average before each case is printed beside it. CPU per request is the gunicorn workers'
plus the database backends' CPU time over the case, divided by its requests.

Cases (each client has its own gateway, token and API key, so no rate-limit bucket is shared):

- ``bare noop``: a bare Django view doing nothing; ``bare update``: the floor's UPDATE without DRF;
- ``floor``: a DRF APIView with no authentication and no throttling, doing one indexed UPDATE
  (of a run per client, as every runner case has);
- ``401``: ``GET /api/agent/runs/{id}`` without a token;
- ``read minimal``: the same URL with a token and ``Prefer: return=minimal``;
- ``appendLog minimal``: the runner PATCH appending one line;
- ``appendLogs 100 minimal``: the PATCH appending 100 lines (its lines/s is compared with
  ``appendLog``'s);
- ``full PATCH few lines`` and ``full PATCH 500 lines/2000 samples``: a telemetry-summary PATCH with
  the default (full) response, on a run holding 5 lines and 10 samples vs one at the caps;
- ``list 50``: ``GET /api/runs?limit=50`` with a viewer's key.
"""

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import load
from bench.load import Request
from bench.run import (
    OUT,
    Server,
    ensure_postgres,
    ensure_seeded,
    free_port,
    helper,
    log,
    pg_url,
)

WRK_THREADS = 2
FLOOR = "floor"
# The targets of issue 18, as (case, reference case, minimum ratio).
TARGETS = [
    ("appendLog minimal", FLOOR, 0.5),
    ("read minimal", FLOOR, 0.8),
    ("401", "bare noop", 0.9),
    (FLOOR, "bare update", 0.9),
    ("full PATCH 500 lines/2000 samples", "full PATCH few lines", 0.5),
]
LINES_PER_BATCH = 100


def _line(n: int) -> dict[str, str]:
    return {"level": "info", "message": f"Loaded batch {n} of 50000 rows into analytics.accounts"}


def cases(prep: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each case: an expected status and one request per client (wrk cycles through them)."""
    json_type = {"Content-Type": "application/json"}
    minimal = {"Prefer": "return=minimal"}

    def token(client: dict[str, Any]) -> dict[str, str]:
        return {"Authorization": f"Bearer {client['token']}"}

    append = json.dumps({"appendLog": _line(1)})
    batch = json.dumps({"appendLogs": [_line(n) for n in range(LINES_PER_BATCH)]})
    summary = json.dumps({"telemetrySummary": {"progress": 50}})
    clients = prep["clients"]
    return {
        "bare noop": {"status": 200, "requests": [Request("GET", "/bench/noop")]},
        "bare update": {
            "status": 200,
            "requests": [
                Request("PATCH", f"/bench/bare/{c['floor']}", json_type, append.encode())
                for c in clients
            ],
        },
        FLOOR: {
            "status": 200,
            "requests": [
                Request("PATCH", f"/bench/floor/{c['floor']}", json_type, append.encode())
                for c in clients
            ],
        },
        "401": {
            "status": 401,
            "requests": [Request("GET", f"/api/agent/runs/{c['small']}") for c in clients],
        },
        "read minimal": {
            "status": 200,
            "requests": [
                Request("GET", f"/api/agent/runs/{c['small']}", {**token(c), **minimal})
                for c in clients
            ],
        },
        "appendLog minimal": {
            "status": 200,
            "requests": [
                Request(
                    "PATCH",
                    f"/api/agent/runs/{c['append']}",
                    {**token(c), **json_type, **minimal},
                    append.encode(),
                )
                for c in clients
            ],
        },
        "appendLogs 100 minimal": {
            "status": 200,
            "lines": LINES_PER_BATCH,
            "requests": [
                Request(
                    "PATCH",
                    f"/api/agent/runs/{c['batch']}",
                    {**token(c), **json_type, **minimal},
                    batch.encode(),
                )
                for c in clients
            ],
        },
        "full PATCH few lines": {
            "status": 200,
            "requests": [
                Request(
                    "PATCH",
                    f"/api/agent/runs/{c['small']}",
                    {**token(c), **json_type},
                    summary.encode(),
                )
                for c in clients
            ],
        },
        "full PATCH 500 lines/2000 samples": {
            "status": 200,
            "requests": [
                Request(
                    "PATCH",
                    f"/api/agent/runs/{c['big']}",
                    {**token(c), **json_type},
                    summary.encode(),
                )
                for c in clients
            ],
        },
        "list 50": {
            "status": 200,
            "requests": [
                Request("GET", "/api/runs?limit=50", {"Authorization": f"Bearer {c['api_key']}"})
                for c in clients
            ],
        },
    }


def _lua_string(value: str | bytes) -> str:
    text = value.decode() if isinstance(value, bytes) else value
    return "[==[" + text + "]==]"


def wrk_script(requests: list[Request]) -> str:
    rows = []
    for request in requests:
        headers = ", ".join(
            f"[ {_lua_string(name)} ] = {_lua_string(value)}"
            for name, value in request.headers.items()
        )
        body = _lua_string(request.body) if request.body else "nil"
        rows.append(
            f"  {{method = {_lua_string(request.method)}, path = {_lua_string(request.path)}, "
            f"headers = {{{headers}}}, body = {body}}},"
        )
    return (
        "local requests = {\n" + "\n".join(rows) + "\n}\n"
        "local i = 0\n"
        "request = function()\n"
        "  i = i + 1\n"
        "  local r = requests[(i % #requests) + 1]\n"
        "  return wrk.format(r.method, r.path, r.headers, r.body)\n"
        "end\n"
        "done = function(summary, latency, requests)\n"
        '  io.write(string.format("WRK {\\"requests\\": %d, \\"duration_us\\": %d, '
        '\\"non_2xx\\": %d, \\"socket_errors\\": %d, \\"p50_us\\": %d, \\"p99_us\\": %d}\\n",\n'
        "    summary.requests, summary.duration, summary.errors.status,\n"
        "    summary.errors.connect + summary.errors.read + summary.errors.write "
        "+ summary.errors.timeout,\n"
        "    latency:percentile(50), latency:percentile(99)))\n"
        "end\n"
    )


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _backends(database: str) -> list[int]:
    """PostgreSQL backends serving ``database`` (their process titles name it)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if title.startswith("postgres: ") and f" {database} " in title:
            pids.append(int(entry.name))
    return pids


def cpu_snapshot(server: Server, database: str) -> dict[int, float]:
    return {pid: _cpu_seconds(pid) for pid in [*server.workers(), *_backends(database)]}


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def check(port: int, case: str, spec: dict[str, Any]) -> None:
    """One request of the case, before it is measured: the expected status, or stop."""
    conn = load.Connection(port)
    try:
        status, body, *_ = conn.send(spec["requests"][0])
    finally:
        conn.close()
    if status != spec["status"]:
        raise SystemExit(f"{case}: answered {status}, not {spec['status']}: {body[:300]!r}")


def run_wrk(port: int, script: Path, *, seconds: int, connections: int) -> dict[str, Any]:
    done = subprocess.run(
        [
            "wrk",
            f"-t{WRK_THREADS}",
            f"-c{connections}",
            f"-d{int(seconds)}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    match = re.search(r"^WRK (\{.*\})$", done.stdout, re.MULTILINE)
    if match is None:
        raise SystemExit(f"wrk printed no summary:\n{done.stdout}\n{done.stderr}")
    return json.loads(match.group(1))


def measure(
    args, servers: dict[str, tuple[int, Server]], database: str, prep: dict[str, Any]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Every case on every server (``""``: the Procfile's line; ``VARIANT``: the same with
    ``--variant-args``), interleaved within each round."""
    specs = cases(prep)
    selected = [name for name in specs if not args.cases or name in args.cases.split(",")]
    scripts = OUT / "wrk"
    scripts.mkdir(parents=True, exist_ok=True)
    for name in selected:
        for port, _ in servers.values():
            check(port, name, specs[name])
        path = scripts / (re.sub(r"[^a-z0-9]+", "_", name.lower()) + ".lua")
        path.write_text(wrk_script(specs[name]["requests"]))
        specs[name]["script"] = path
    rounds: list[dict[str, dict[str, Any]]] = []
    for number in range(1, args.rounds + 1):
        log(f"round {number} of {args.rounds}")
        figures: dict[str, dict[str, Any]] = {}
        # The variant's cases alternate with the Procfile's, the variant first in even rounds.
        order = list(servers.items())
        if number % 2 == 0:
            order.reverse()
        for base, (variant, (port, server)) in (
            (base, entry) for base in selected for entry in order
        ):
            name = base + (f" [{variant}]" if variant else "")
            spec = specs[base]
            load_before = load_average()
            cpu_before = cpu_snapshot(server, database)
            result = run_wrk(
                port, spec["script"], seconds=args.seconds, connections=args.connections
            )
            cpu_after = cpu_snapshot(server, database)
            cpu = sum(cpu_after[pid] - cpu_before.get(pid, 0.0) for pid in cpu_after)
            requests = result["requests"]
            rate = requests / (result["duration_us"] / 1e6)
            unexpected = result["non_2xx"] if spec["status"] < 400 else 0
            figures[name] = {
                "rate": round(rate, 1),
                "lines_per_s": round(rate * spec.get("lines", 1), 1),
                "p50_ms": round(result["p50_us"] / 1000, 2),
                "p99_ms": round(result["p99_us"] / 1000, 2),
                "cpu_ms": round(cpu * 1000 / requests, 2) if requests else None,
                "unexpected_status": unexpected,
                "socket_errors": result["socket_errors"],
                "load": load_before,
            }
            floor = figures.get(FLOOR + (f" [{variant}]" if variant else ""), {}).get("rate")
            ratio = f", {rate / floor:.2f}x floor" if floor else ""
            log(
                f"  {name}: {rate:.0f} req/s{ratio}, p99 {figures[name]['p99_ms']} ms, "
                f"CPU {figures[name]['cpu_ms']} ms/req, load {load_before:.2f}"
                + (f", {unexpected} unexpected statuses" if unexpected else "")
            )
        for variant in servers:
            suffix = f" [{variant}]" if variant else ""
            floor_rate = figures.get(FLOOR + suffix, {}).get("rate")
            for name, figure in figures.items():
                if name.endswith(suffix) and (variant or not name.endswith("]")):
                    figure["x_floor"] = (
                        round(figure["rate"] / floor_rate, 3) if floor_rate else None
                    )
        rounds.append(figures)
        helper(pg_url(args.pg, database), "vacuum")
    return summarize(rounds), rounds


def summarize(rounds: list[dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """Per case: the median of each figure over the rounds, with the range of the rate."""
    summary: dict[str, Any] = {}
    for name in rounds[0]:
        rows = [figures[name] for figures in rounds if name in figures]
        entry: dict[str, Any] = {}
        for key in rows[0]:
            values = [row[key] for row in rows if row[key] is not None]
            entry[key] = round(statistics.median(values), 3) if values else None
        entry["rate_range"] = [min(row["rate"] for row in rows), max(row["rate"] for row in rows)]
        entry["loads"] = [row["load"] for row in rows]
        summary[name] = entry
    return summary


def ratio(
    rounds: list[dict[str, Any]], case: str, reference: str, key: str = "rate"
) -> float | None:
    """The median over the rounds of ``case``'s figure over ``reference``'s in the same round
    (for CPU per request, reference over case: both then read "higher is cheaper")."""
    values = []
    for figures in rounds:
        if case in figures and reference in figures:
            mine, theirs = figures[case][key], figures[reference][key]
            if mine and theirs:
                values.append(mine / theirs if key != "cpu_ms" else theirs / mine)
    return statistics.median(values) if values else None


def report(
    summary: dict[str, Any], rounds: list[dict[str, Any]], variants: Sequence[str] = ("",)
) -> str:
    lines = [
        "| case | req/s (range) | x floor | lines/s | p50 ms | p99 ms | CPU ms/req | load |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, entry in summary.items():
        low, high = entry["rate_range"]
        loads = "/".join(f"{value:.1f}" for value in entry["loads"])
        x_floor = "-" if entry["x_floor"] is None else f"{entry['x_floor']:.2f}"
        lines.append(
            f"| {name} | {entry['rate']:.0f} ({low:.0f}-{high:.0f}) | {x_floor} | "
            f"{entry['lines_per_s']:.0f} | {entry['p50_ms']} | {entry['p99_ms']} | "
            f"{entry['cpu_ms']} | {loads} |"
        )
    for variant in variants:
        suffix = f" [{variant}]" if variant else ""
        lines.append("")
        lines.append(
            f"Targets{suffix}, as medians over the rounds of ratios within one round (rate; and"
        )
        lines.append("CPU per request, reference/case, which a busy machine distorts less):")
        for case, reference, minimum in TARGETS:
            value = ratio(rounds, case + suffix, reference + suffix)
            cpu = ratio(rounds, case + suffix, reference + suffix, "cpu_ms")
            if value is not None:
                verdict = "met" if value >= minimum else "NOT met"
                cpu_text = f", by CPU {cpu:.2f}" if cpu is not None else ""
                lines.append(
                    f"- {case} / {reference}: {value:.2f}{cpu_text} (target >= {minimum}): "
                    f"{verdict}"
                )
        batch = ratio(
            rounds, "appendLogs 100 minimal" + suffix, "appendLog minimal" + suffix, "lines_per_s"
        )
        if batch is not None:
            verdict = "met" if batch >= 20 else "NOT met"
            lines.append(
                f"- appendLogs 100 lines/s / appendLog lines/s: {batch:.1f} (>= 20): {verdict}"
            )
    for variant in variants:
        if not variant:
            continue
        lines.append("")
        lines.append(f"[{variant}] / the Procfile's line, per case (median of per-round ratios):")
        for name in summary:
            if name.endswith("]"):
                continue
            value = ratio(rounds, f"{name} [{variant}]", name)
            cpu = ratio(rounds, f"{name} [{variant}]", name, "cpu_ms")
            if value is not None:
                lines.append(f"- {name}: rate {value:.2f}, by CPU {cpu:.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.cost", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--pg", default=os.environ.get("BENCH_PG", "postgres://root@127.0.0.1:5432")
    )
    parser.add_argument("--database", default="elt_bench_cost")
    parser.add_argument("--runs", type=int, default=10_000, help="Seeded history size.")
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", "4")))
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--cases", default="", help="Comma list of case names (default: all).")
    parser.add_argument("--out", default=str(OUT / "cost.json"))
    parser.add_argument(
        "--variant-args",
        default="",
        help="Also start the web line with these extra gunicorn arguments (GUNICORN_CMD_ARGS, "
        "e.g. '--worker-class gthread --threads 2') and measure every case on both, "
        "interleaved.",
    )
    parser.add_argument(
        "--variant-env",
        default="",
        help="Also (or instead) start that second web line with these extra environment "
        "variables (comma list of NAME=VALUE, e.g. PREPARE_HOT_STATEMENTS=0).",
    )
    parser.add_argument("--variant-name", default="variant")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install -y wrk)")
    OUT.mkdir(parents=True, exist_ok=True)
    ensure_postgres(args.pg)
    seeded = ensure_seeded(args.pg, args.database, args.runs, reseed=False)
    url = pg_url(args.pg, args.database)
    prep = helper(url, "cost_prepare", {"clients": args.clients})
    os.environ["BENCH_ENDPOINTS"] = "1"
    servers: dict[str, tuple[int, Server]] = {}
    try:
        port = free_port()
        servers[""] = (port, Server(url, port, args.workers, OUT / "cost-web.log"))
        extra = dict(pair.split("=", 1) for pair in args.variant_env.split(",") if pair)
        if args.variant_args:
            extra["GUNICORN_CMD_ARGS"] = args.variant_args
        if extra:
            port = free_port()
            saved = {name: os.environ.get(name) for name in extra}
            os.environ.update(extra)
            try:
                log_path = OUT / f"cost-web-{args.variant_name}.log"
                servers[args.variant_name] = (port, Server(url, port, args.workers, log_path))
            finally:
                for name, value in saved.items():
                    if value is None:
                        del os.environ[name]
                    else:
                        os.environ[name] = value
        for _, server in servers.values():
            server.wait_ready()
        summary, rounds = measure(args, servers, args.database, prep)
    finally:
        for _, server in servers.values():
            server.stop()
        helper(url, "cleanup")
    text = report(summary, rounds, list(servers))
    print(text)
    result = {
        "started": datetime.now(UTC).isoformat(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "seeded": seeded,
        "settings": {
            key: getattr(args, key)
            for key in (
                "workers",
                "connections",
                "seconds",
                "rounds",
                "variant_args",
                "variant_env",
            )
        },
        "cases": summary,
        "rounds": rounds,
        "report": text,
    }
    Path(args.out).write_text(json.dumps(result, indent=2, default=str))
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
