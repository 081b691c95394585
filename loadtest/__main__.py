"""One command: a fresh database, the Procfile's processes, the fleet, the figures, the check.

    python -m loadtest --duration 120 --gateways 200

Exit status 0 when the run met the target (no 5xx, nothing lost, runner PATCH p99 under the
limit) and the database matches the journal; 1 otherwise. Everything lands in ``--out``:
the journal, web and worker logs, and ``report.json``.
"""

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from loadtest.stack import DEFAULT_DATABASE_URL, ROOT

RUNNER_PATCHES = ("PATCH claim", "PATCH appendLog", "PATCH appendTelemetrySample", "PATCH finish")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m loadtest", description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=120, help="seconds of load")
    parser.add_argument("--gateways", type=int, default=200)
    parser.add_argument("--analysts", type=int, default=20)
    parser.add_argument("--api-clients", type=int, default=5)
    parser.add_argument("--analyst-think", type=float, nargs=2, default=(4.0, 10.0))
    parser.add_argument("--runs-per-gateway", type=int, default=1)
    parser.add_argument("--run-seconds", type=float, nargs=2, default=(20.0, 60.0))
    parser.add_argument("--history", type=int, default=2000, help="past runs seeded for pages")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("LOADTEST_DATABASE_URL", DEFAULT_DATABASE_URL),
        help="PostgreSQL database to DROP, create and use (default %(default)s)",
    )
    parser.add_argument("--web-concurrency", type=int, default=None, help="gunicorn workers")
    parser.add_argument("--webs", type=int, default=1, help="web processes (sharing the port)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument(
        "--pgbouncer",
        action="store_true",
        help="web processes connect through PgBouncer in transaction mode (workers directly)",
    )
    parser.add_argument("--p99-limit-ms", type=float, default=250.0)
    parser.add_argument("--webhook-wait", type=float, default=90.0)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quiet", action="store_true")
    return parser.parse_args(argv)


def setup_django(database_url: str) -> None:
    from loadtest.stack import process_env

    os.environ.update(process_env(database_url))
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def summarise(stats, elapsed: float, p99_limit_ms: float) -> dict:
    """Counts of answers over the whole run, drain included; rates and latencies over the load
    phase only (requests sent before it ended), since the drain is lighter: no new runs, no
    analysts or API clients."""
    window = stats.load_ended if stats.load_ended is not None else elapsed
    in_window: dict[str, list[float]] = {name: [] for name in stats.latencies}
    for finished_at, name, seconds in stats.timeline:
        if finished_at - seconds < window:
            in_window[name].append(seconds)
    rows, totals = [], {"requests": 0, "2xx": 0, "4xx": 0, "5xx": 0, "transport": 0}
    runner_latencies: list[float] = []
    load_requests = 0
    for name in sorted(stats.latencies):
        latencies, codes = in_window[name], stats.codes[name]
        ok = sum(n for c, n in codes.items() if isinstance(c, int) and 200 <= c < 300)
        client = sum(n for c, n in codes.items() if isinstance(c, int) and 400 <= c < 500)
        server = sum(n for c, n in codes.items() if isinstance(c, int) and c >= 500)
        transport = sum(n for c, n in codes.items() if not isinstance(c, int))
        rows.append(
            {
                "endpoint": name,
                "requests": len(stats.latencies[name]),
                "rps": round(len(latencies) / window, 1),
                "p50_ms": round(percentile(latencies, 50) * 1000, 1),
                "p99_ms": round(percentile(latencies, 99) * 1000, 1),
                "max_ms": round(max(latencies, default=0.0) * 1000, 1),
                "2xx": ok,
                "4xx": client,
                "5xx": server,
                "transport": transport,
                "codes": {str(c): n for c, n in sorted(codes.items(), key=str)},
            }
        )
        totals["requests"] += len(stats.latencies[name])
        load_requests += len(latencies)
        totals["2xx"] += ok
        totals["4xx"] += client
        totals["5xx"] += server
        totals["transport"] += transport
        if name in RUNNER_PATCHES:
            runner_latencies += latencies
    totals["load_seconds"] = round(window, 1)
    totals["rps"] = round(load_requests / window, 1)
    totals["runner_patch_p50_ms"] = round(percentile(runner_latencies, 50) * 1000, 1)
    totals["runner_patch_p99_ms"] = round(percentile(runner_latencies, 99) * 1000, 1)
    totals["runner_patch_p99_ok"] = totals["runner_patch_p99_ms"] < p99_limit_ms
    return {"endpoints": rows, "totals": totals}


def print_table(summary: dict) -> None:
    header = f"{'endpoint':34} {'reqs':>7} {'req/s':>7} {'p50ms':>7} {'p99ms':>7} {'maxms':>8}"
    print(header + f" {'2xx':>6} {'4xx':>5} {'5xx':>5} {'net':>4}")
    for row in summary["endpoints"]:
        print(
            f"{row['endpoint']:34} {row['requests']:>7} {row['rps']:>7} {row['p50_ms']:>7}"
            f" {row['p99_ms']:>7} {row['max_ms']:>8} {row['2xx']:>6} {row['4xx']:>5}"
            f" {row['5xx']:>5} {row['transport']:>4}"
        )
    t = summary["totals"]
    print(
        f"total {t['requests']} requests; 5xx {t['5xx']}, 4xx {t['4xx']},"
        f" transport errors {t['transport']}. Load phase ({t['load_seconds']} s): {t['rps']}"
        f" req/s, runner PATCH p50 {t['runner_patch_p50_ms']} ms,"
        f" p99 {t['runner_patch_p99_ms']} ms"
    )
    print("(req/s and latencies: requests sent during the load phase; counts: the whole run)")


def wait_for_webhooks(receiver, timeout: float) -> None:
    """Until every event of a final fleet run has reached the receiver, or ``timeout``."""
    from django.db import connections

    from webhooks.models import WebhookEvent

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        expected = set(
            WebhookEvent.objects.filter(run__pipeline__name__startswith="lt_pipeline_").values_list(
                "public_id", flat=True
            )
        )
        if expected <= {d.webhook_id for d in receiver.snapshot()}:
            break
        connections.close_all()
        time.sleep(1)
    connections.close_all()


def run_load(
    args: argparse.Namespace,
    *,
    during=None,
    configure=None,
    receiver_mode: str = "ok",
    pending_retry_ok: bool = False,
    env_extra: dict[str, str] | None = None,
):
    """Run one load and check it; ``during(fleet, stack, receiver)`` may inject a fault.

    Returns the report (also written to ``report.json``) and the receiver.
    """
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = args.out or ROOT / "loadtest" / "out" / stamp
    out.mkdir(parents=True, exist_ok=True)
    log = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))

    from loadtest.driver import Config, Fleet, Journal, Stats
    from loadtest.receiver import Receiver
    from loadtest.stack import Stack, cpu_usage, recreate_database

    log(f"database {args.database_url} (recreated); output in {out}")
    recreate_database(args.database_url)
    setup_django(args.database_url)
    from loadtest import seed as seeding

    # httpx logs every request at INFO, and Django's logging config sends INFO to the console.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    receiver = Receiver(mode=receiver_mode)
    receiver.start()
    seeding.migrate()
    fixture = seeding.seed(
        gateways=args.gateways,
        analysts=args.analysts,
        history=args.history,
        receiver_url=receiver.url,
    )
    receiver.secret = fixture.webhook_secret
    env_extra = dict(env_extra or {})
    if args.web_concurrency:
        env_extra["WEB_CONCURRENCY"] = str(args.web_concurrency)
    pooler = None
    web_env_extra = {}
    if args.pgbouncer:
        from loadtest.pooler import PgBouncer

        pooler = PgBouncer(args.database_url)
        pooler.start()
        web_env_extra = {"DATABASE_URL": pooler.url, "DATABASE_POOLER": "transaction"}
        log(f"web processes connect through PgBouncer (transaction mode) at {pooler.url}")
    stack = Stack(
        database_url=args.database_url,
        out_dir=out,
        env_extra=env_extra,
        web_env_extra=web_env_extra,
        webs=args.webs,
        workers=args.workers,
    )
    journal = Journal(out / "journal.jsonl")
    stats = Stats()
    pooled_transactions = None
    try:
        stack.start_web()
        stack.start_worker()
        import httpx

        cookie = fixture.analyst_cookies[0] if fixture.analyst_cookies else ""
        pages = httpx.get(f"{stack.base_url}/runs/", headers={"Cookie": cookie}).status_code
        read_api = httpx.get(
            f"{stack.base_url}/api/runs", headers={"Authorization": f"Bearer {fixture.api_key}"}
        ).status_code
        if pages != 200:
            log(f"! /runs/ answered {pages}: analysts are left out of this run")
        if read_api != 200:
            log(f"! /api/runs answered {read_api}: API clients read /api/elt/runs/<id> instead")
        config = Config(
            base_url=stack.base_url,
            duration=args.duration,
            gateways=fixture.gateways,
            api_key=fixture.api_key,
            analyst_cookies=fixture.analyst_cookies,
            api_clients=args.api_clients,
            analyst_think_seconds=tuple(args.analyst_think),
            runs_per_gateway=args.runs_per_gateway,
            run_seconds=tuple(args.run_seconds),
            pages=pages == 200,
            read_api=read_api == 200,
            seed=args.seed,
        )
        if configure is not None:
            configure(config)
        fleet = Fleet(config, journal, stats)
        log(
            f"load: {args.gateways} gateways, {args.analysts if config.pages else 0} analysts,"
            f" {args.api_clients} API clients for {args.duration:.0f}s against {stack.base_url}"
            f" ({args.webs} web x {stack.env.get('WEB_CONCURRENCY', '4')} gunicorn workers,"
            f" {args.workers} worker processes)"
        )
        load_before = os.getloadavg()
        started, driver_cpu = time.monotonic(), time.process_time()
        side = (lambda f: during(f, stack, receiver)) if during else None
        asyncio.run(fleet.run(during=side))
        elapsed = time.monotonic() - started
        cpu = cpu_usage(stack)
        cpu["driver_cpu_seconds"] = round(time.process_time() - driver_cpu, 2)
        journal.close()
        log(f"load done in {elapsed:.0f}s; waiting for webhook deliveries")
        wait_for_webhooks(receiver, args.webhook_wait)
    finally:
        web_alive = stack.all_webs_alive()
        stack.stop()
        receiver.stop()
        if pooler is not None:
            pooled_transactions = pooler.transactions()
            pooler.stop()

    from loadtest.verify import verify

    summary = summarise(stats, elapsed, args.p99_limit_ms)
    outcome = verify(out / "journal.jsonl", receiver.snapshot(), pending_retry_ok=pending_retry_ok)
    t = summary["totals"]
    report = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "out": str(out),
        "elapsed_seconds": round(elapsed, 1),
        "worker_starts": stack.worker_starts,
        # Transactions the web processes ran through PgBouncer (``--pgbouncer``), else null.
        "pooled_transactions": pooled_transactions,
        "web_alive_at_end": web_alive,
        "cpu": {
            **cpu,
            # Server CPU (gunicorn + PostgreSQL backends) per request: what the load costs,
            # independent of whatever else shared the machine during the run.
            "server_cpu_ms_per_request": round(
                1000
                * (cpu["web_cpu_seconds"] + cpu["database_cpu_seconds"])
                / max(1, summary["totals"]["requests"]),
                2,
            ),
        },
        # Other work on the machine shows here; the latencies depend on it.
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "gunicorn_worker_boots": (out / "web.log")
        .read_text(errors="replace")
        .count("Booting worker"),
        **summary,
        "database_check": outcome.figures,
        "problems": outcome.problems,
        "bad_503_bodies": stats.bad_503_bodies,
        "failures_timeline": stats.failures[:5000],
    }
    report["target"] = {
        "no_5xx": t["5xx"] == 0,
        "no_lost_writes": outcome.ok,
        "runner_patch_p99_under_limit": t["runner_patch_p99_ok"],
        "well_formed_503": stats.bad_503_bodies == 0,
        "web_stayed_up": web_alive,
    }
    report["_stats"] = stats
    if not args.quiet:
        print_table(summary)
        print("database check:", json.dumps(outcome.figures))
        print("cpu:", json.dumps(report["cpu"]), "load average:", report["load_average"])
        for problem in outcome.problems[:30]:
            print("  PROBLEM:", problem)
    return report, receiver


def write_report(report: dict) -> None:
    public = {k: v for k, v in report.items() if not k.startswith("_")}
    (Path(report["out"]) / "report.json").write_text(json.dumps(public, indent=2))


def stop_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so the processes the run started are stopped too."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def main(argv: list[str] | None = None) -> int:
    stop_on_sigterm()
    args = parse_args(argv)
    report, _ = run_load(args)
    write_report(report)
    met = all(report["target"].values())
    print(f"target {'MET' if met else 'NOT MET'}: {json.dumps(report['target'])}", flush=True)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
