"""Fault runs: the load of ``python -m loadtest`` with one fault injected, and the same checks.

    python -m loadtest.faults db-outage       # this database refuses connections for a while
    python -m loadtest.faults pg-restart --yes-restart-postgres   # the whole server restarts
    python -m loadtest.faults kill-worker     # SIGKILL the worker while a delivery is in flight
    python -m loadtest.faults hang-receiver   # the webhook receiver stops answering
    python -m loadtest.faults retry           # runners time out early and retry every PATCH
    python -m loadtest.faults redis-stop      # the shared store (REDIS_URL) is killed, then back

Every fault keeps the base checks (nothing acknowledged is lost, nothing stored twice, no run
claimed twice, one event per final run, every event delivered) and adds its own. Options after
the fault name are those of ``python -m loadtest`` (``--duration``, ``--gateways`` ...).
"""

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from loadtest.__main__ import (
    RUNNER_PATCHES,
    parse_args,
    percentile,
    run_load,
    stop_on_sigterm,
    write_report,
)
from loadtest.stack import admin_url, database_name, free_port

FAULTS = ["db-outage", "pg-restart", "kill-worker", "hang-receiver", "retry", "redis-stop"]


def _sql(url: str, *statements: tuple[str, list]) -> None:
    import psycopg

    with psycopg.connect(admin_url(url), autocommit=True, connect_timeout=5) as conn:
        for statement, params in statements:
            conn.execute(statement, params)


def db_outage(fault_args):
    """The load's database refuses every connection for ``--outage-seconds``.

    Only this database is touched (``ALLOW_CONNECTIONS false`` and its backends terminated), so
    other databases on the server keep working. Open connections die mid-transaction, exactly as
    in a server restart.
    """
    window: dict[str, float] = {}

    async def during(fleet, stack, receiver):
        await asyncio.sleep(fleet.config.duration / 3)
        url, name = stack.database_url, database_name(stack.database_url)
        window["start"] = time.monotonic() - fleet.stats.started
        await asyncio.to_thread(
            _sql,
            url,
            (f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false', []),
            ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name]),
        )
        await asyncio.sleep(fault_args.outage_seconds)
        await asyncio.to_thread(_sql, url, (f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true', []))
        window["end"] = time.monotonic() - fleet.stats.started
        print(
            f"fault: database refused connections from {window['start']:.1f}s to "
            f"{window['end']:.1f}s",
            flush=True,
        )

    return during, window


def pg_restart(fault_args):
    """Restart the PostgreSQL server itself (every database on it) with a fast shutdown."""
    window: dict[str, float] = {}
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[-1]

    async def during(fleet, stack, receiver):
        await asyncio.sleep(fleet.config.duration / 3)
        window["start"] = time.monotonic() - fleet.stats.started
        await asyncio.to_thread(
            subprocess.run,
            [
                "pg_ctlcluster",
                "--skip-systemctl-redirect",
                version,
                "main",
                "restart",
                "-m",
                "fast",
            ],
            check=True,
            timeout=60,
        )
        window["end"] = time.monotonic() - fleet.stats.started
        print(
            f"fault: PostgreSQL restarted from {window['start']:.1f}s to {window['end']:.1f}s",
            flush=True,
        )

    return during, window


def kill_worker(fault_args):
    """SIGKILL the workers (all of them, so that the one sending is among them) while the
    receiver (slow for a moment) holds a delivery open; start them again."""
    state: dict = {}

    async def during(fleet, stack, receiver):
        await asyncio.sleep(fleet.config.duration / 3)
        # Slow answers only around the kill, so a delivery is surely in flight then and the
        # single worker does not build a backlog for the rest of the run.
        receiver.mode = "slow"
        deadline = time.monotonic() + fleet.config.duration / 2
        while receiver.in_flight == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        with receiver._lock:
            now = time.time()
            # Requests that arrived within the slow answer's delay are still being answered.
            state["in_flight_ids"] = sorted(
                {wid for at, wid in receiver.arrivals if now - at < receiver.slow_seconds}
            )
        state["killed_at"] = now
        stack.kill_worker(signal.SIGKILL)
        print(
            f"fault: worker killed with {len(state['in_flight_ids'])} deliveries in flight",
            flush=True,
        )
        await asyncio.sleep(receiver.slow_seconds + 1)
        receiver.mode = "ok"
        stack.start_worker()

    return during, state


def hang_receiver(fault_args):
    """The receiver stops answering for the middle third of the load; then it answers again."""
    window: dict[str, float] = {}

    async def during(fleet, stack, receiver):
        third = fleet.config.duration / 3
        await asyncio.sleep(third)
        receiver.mode = "hang"
        window["start"] = time.monotonic() - fleet.stats.started
        await asyncio.sleep(third)
        receiver.mode = "ok"
        window["end"] = time.monotonic() - fleet.stats.started

    return during, window


class OwnRedis:
    """A Redis of the run's own on a free port (so the machine's Redis is never stopped)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                *("redis-server", "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no"),
            ],
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while self.keys("*") is None:
            if time.monotonic() > deadline:
                raise SystemExit("redis-server did not start")
            time.sleep(0.1)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def keys(self, pattern: str) -> int | None:
        import redis

        try:
            return len(redis.Redis(port=self.port, socket_timeout=1).keys(pattern))
        except redis.RedisError:
            return None


def redis_stop(fault_args, store: OwnRedis):
    """Kill the shared store for ``--outage-seconds`` in the middle of the load, then start it
    again: rate limits go unenforced meanwhile, and nothing else may fail."""
    window: dict = {}

    async def during(fleet, stack, receiver):
        await asyncio.sleep(fleet.config.duration / 3)
        window["throttle_keys_before"] = store.keys("*throttle:*")
        window["start"] = time.monotonic() - fleet.stats.started
        store.kill()
        await asyncio.sleep(fault_args.outage_seconds)
        await asyncio.to_thread(store.start)
        window["end"] = time.monotonic() - fleet.stats.started
        # Counting resumes in the new store once the breaker lets the next request try.
        await asyncio.sleep(min(10.0, fleet.config.duration / 4))
        window["throttle_keys_after"] = store.keys("*throttle:*")
        print(f"fault: Redis down from {window['start']:.1f}s to {window['end']:.1f}s", flush=True)

    return during, window


def runner_p99(stats, start: float, end: float) -> float:
    values = [s for t, name, s in stats.timeline if name in RUNNER_PATCHES and start <= t < end]
    return round(percentile(values, 99) * 1000, 1)


def main(argv: list[str] | None = None) -> int:
    stop_on_sigterm()
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m loadtest.faults", allow_abbrev=False)
    parser.add_argument("fault", choices=FAULTS)
    parser.add_argument("--outage-seconds", type=float, default=8.0)
    parser.add_argument("--yes-restart-postgres", action="store_true")
    parser.add_argument("--without-idempotency-keys", action="store_true")
    fault_args, rest = parser.parse_known_args(argv)
    defaults = ["--duration", "90", "--gateways", "100", "--analysts", "10"]
    args = parse_args(defaults + rest)
    fault = fault_args.fault
    configure = None
    receiver_mode = "ok"
    env_extra: dict[str, str] = {}
    store = OwnRedis()
    checks: dict[str, bool] = {}

    if fault == "pg-restart" and not fault_args.yes_restart_postgres:
        raise SystemExit(
            "pg-restart restarts the whole PostgreSQL server, interrupting every database on "
            "it; pass --yes-restart-postgres to go ahead (db-outage is the same fault for one "
            "database)."
        )
    if fault == "db-outage":
        during, window = db_outage(fault_args)
    elif fault == "pg-restart":
        during, window = pg_restart(fault_args)
    elif fault == "kill-worker":
        during, window = kill_worker(fault_args)
        # The killed delivery's lease (WEBHOOK_LEASE_SECONDS) must expire before the sweep
        # sends it again.
        args.webhook_wait = max(args.webhook_wait, 240)
    elif fault == "redis-stop":
        store.start()
        env_extra = {"REDIS_URL": store.url}
        during, window = redis_stop(fault_args, store)
    elif fault == "hang-receiver":
        during, window = hang_receiver(fault_args)
        # Attempts that timed out retry 5 s later, then 5 min later (the Standard Webhooks
        # schedule): wait for the quick retries; the slow ones are checked as scheduled.
        args.webhook_wait = max(args.webhook_wait, 60)
    else:
        during, window = None, {}

        def configure(config):
            # One PATCH in five gives up after 20 ms, usually after the server applied it, and
            # is retried with the same key (or, with --without-idempotency-keys, with none).
            config.short_timeout_rate = 0.2
            config.short_timeout = 0.02
            config.idempotency_keys = not fault_args.without_idempotency_keys

    try:
        report, receiver = run_load(
            args,
            during=during,
            configure=configure,
            receiver_mode=receiver_mode,
            pending_retry_ok=fault == "hang-receiver",
            env_extra=env_extra,
        )
    finally:
        store.kill()
    stats = report.pop("_stats")
    target = report["target"]
    failures = report["failures_timeline"]

    if fault in ("db-outage", "pg-restart"):
        # 503s are the expected answer while the database is gone; nothing else is.
        start, end = window.get("start", 0), window.get("end", 0)
        codes = [code for _, _, code in failures]
        others = [f for f in failures if f[2] not in ("503", "409")]
        after = [f for f in failures if f[0] > end + 5 and f[2] == "503"]
        target["no_5xx"] = all(code == "503" or not code.startswith("5") for code in codes)
        checks["saw_503_during_outage"] = any(
            start <= t <= end + 5 and code == "503" for t, _, code in failures
        )
        checks["recovered_without_restart"] = not after and report["web_alive_at_end"]
        report["fault"] = {
            "window_seconds": [round(start, 1), round(end, 1)],
            "503_count": codes.count("503"),
            "503_after_recovery": len(after),
            "other_failures": len(others),
            "runner_patch_p99_ms_after_recovery": runner_p99(stats, end + 5, 1e9),
        }
        # The outage itself is slow by design; the latency target applies once it is over.
        target["runner_patch_p99_under_limit"] = (
            report["fault"]["runner_patch_p99_ms_after_recovery"] < args.p99_limit_ms
        )
    elif fault == "kill-worker":
        killed_at = window.get("killed_at", 0)
        delivered_after = {d.webhook_id for d in receiver.snapshot() if d.received_at > killed_at}
        cut = sorted({wid for _, wid in receiver.interrupted})
        again = [i for i in cut if i in delivered_after]
        # The kill must really have cut a delivery off, and each one cut off must arrive again,
        # complete, under the same webhook-id.
        checks["killed_mid_delivery"] = bool(cut)
        checks["cut_deliveries_sent_again_same_id"] = bool(cut) and again == cut
        report["fault"] = {
            "in_flight_at_kill": window.get("in_flight_ids", []),
            "cut_off": cut,
            "delivered_again_after_kill": again,
            "worker_starts": report["worker_starts"],
        }
    elif fault == "redis-stop":
        start, end = window["start"], window["end"]
        web_logs = "".join(
            path.read_text(errors="replace") for path in Path(report["out"]).glob("web*.log")
        )
        report["fault"] = {
            "window_seconds": [round(start, 1), round(end, 1)],
            "throttle_keys_before": window["throttle_keys_before"],
            "throttle_keys_after": window["throttle_keys_after"],
            "runner_patch_p99_ms_before": runner_p99(stats, 5, start),
            "runner_patch_p99_ms_while_down": runner_p99(stats, start, end),
        }
        # Rate limits were counted in Redis before and again after; the web processes saw the
        # outage (and said so) while every request was still answered.
        checks["counted_in_redis_before"] = bool(window["throttle_keys_before"])
        checks["counted_in_redis_after"] = bool(window["throttle_keys_after"])
        checks["outage_seen_by_web"] = "shared store unavailable" in web_logs
        # Refusals that belong to the load (a claim lost to another replica: 409) are not
        # failures; a 5xx (503 included), a 429 or a transport error is.
        report["fault"]["failures"] = [f for f in failures if f[2] != "409"][:20]
        checks["nothing_else_failed"] = not report["fault"]["failures"]
    elif fault == "hang-receiver":
        start, end = window["start"], window["end"]
        before, hanging = runner_p99(stats, 5, start), runner_p99(stats, start, end)
        report["fault"] = {
            "runner_patch_p99_ms_before": before,
            "runner_patch_p99_ms_while_hanging": hanging,
        }
        # Unchanged: within the target, or no worse than half again the p99 before the hang
        # (a busy machine can miss the target with or without a hanging receiver).
        checks["api_latency_unchanged"] = hanging < max(args.p99_limit_ms, 1.5 * before)
    else:
        figures = report["database_check"]
        timeouts = sum(
            report_row["codes"].get("timeout", 0)
            for report_row in report["endpoints"]
            if report_row["endpoint"] in RUNNER_PATCHES
        )
        report["fault"] = {"client_timeouts_retried": timeouts}
        checks["retries_happened"] = timeouts > 0
        if fault_args.without_idempotency_keys:
            # The control: without keys, a retried append can be stored twice, and the check
            # must say so.
            duplicated = figures.get("log_duplicated", 0) + figures.get("sample_duplicated", 0)
            checks["duplicates_detected_without_keys"] = duplicated > 0
            target["no_lost_writes"] = figures.get("log_lost", 0) == 0
            target["runner_patch_p99_under_limit"] = True
        # Early client timeouts are the fault; the p99 of answered requests still counts.
    if fault in ("kill-worker", "retry"):
        # Latency is not what these faults test (early client timeouts, a dead worker); it is
        # reported, and the load run holds the target.
        report["fault"]["runner_patch_p99_under_limit"] = target.pop("runner_patch_p99_under_limit")
    report["target"] = {**target, **checks}
    write_report(report)
    met = all(report["target"].values())
    print("fault:", json.dumps(report.get("fault", {})))
    print(f"{fault}: {'PASSED' if met else 'FAILED'}: {json.dumps(report['target'])}", flush=True)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
