"""A minute of the load run (``python -m loadtest``) at a small scale: the Procfile's processes on
PostgreSQL, a fleet of gateways, analysts and API clients, and the database checked against the
journal of acknowledged writes."""

import json
import subprocess
import sys

import pytest

from loadtest.stack import ROOT, process_env

pytestmark = pytest.mark.smoke_load


def run_load(
    *args: str,
    database_url: str,
    out,
    duration: int = 60,
    run_seconds: tuple[int, int] = (15, 30),
    p99_limit_ms: int = 1500,
    timeout: int = 400,
) -> tuple[dict, subprocess.CompletedProcess]:
    """``python -m <args>`` (``loadtest`` or ``loadtest.faults <fault>``) at the small scale these
    tests share: 20 gateways, 4 analysts, 2 API clients, 300 past runs. Answers its report."""
    command = [
        sys.executable,
        "-m",
        *args,
        f"--duration={duration}",
        "--gateways=20",
        "--analysts=4",
        "--api-clients=2",
        "--history=300",
        "--run-seconds",
        *(str(seconds) for seconds in run_seconds),
        f"--p99-limit-ms={p99_limit_ms}",
        f"--database-url={database_url}",
        f"--out={out}",
        "--quiet",
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    report_path = out / "report.json"
    assert report_path.exists(), result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(report_path.read_text()), result


def test_a_minute_of_load_loses_nothing_and_never_fails(scratch_database_url, tmp_path):
    # Shared CI machines are noisy: the latency target is for the full run, not this one.
    report, result = run_load("loadtest", database_url=scratch_database_url, out=tmp_path)
    checked = report["database_check"]
    assert report["totals"]["5xx"] == 0, report["endpoints"]
    assert report["problems"] == [], report["problems"][:20]
    assert checked["log_lost"] == checked["sample_lost"] == 0
    assert checked["log_duplicated"] == checked["sample_duplicated"] == 0
    assert checked["claimed_twice"] == 0
    # The load really ran: runs went round, lines and samples were written and acknowledged.
    assert checked["runs_finished"] >= 20
    assert checked["log_acked"] >= 200
    assert checked["sample_acked"] >= 100
    assert report["target"]["web_stayed_up"]
    assert result.returncode == 0, report["target"]


def test_two_web_and_two_worker_processes_with_a_worker_killed(scratch_database_url, tmp_path):
    """Scaling out: two web processes on one port, two workers each with its own clock, one
    worker killed with SIGKILL while it sends a delivery (and started again)."""
    report, result = run_load(
        *("loadtest.faults", "kill-worker", "--webs=2", "--workers=2", "--web-concurrency=2"),
        database_url=scratch_database_url,
        out=tmp_path,
        p99_limit_ms=2000,
        timeout=700,
    )
    checked = report["database_check"]
    assert (tmp_path / "web2.log").exists() and (tmp_path / "worker2.log").exists()
    assert report["totals"]["5xx"] == 0, report["endpoints"]
    assert report["problems"] == [], report["problems"][:20]
    assert checked["claimed_twice"] == 0
    assert checked["log_lost"] == checked["sample_lost"] == 0
    assert checked["final_runs_without_event"] == checked["final_runs_with_wrong_events"] == 0
    assert checked["periodic_jobs_overlapping"] == 0
    assert checked["periodic_job_runs"] >= 10
    assert checked["runs_finished"] >= 20
    assert report["target"]["web_stayed_up"]
    assert result.returncode == 0, report["target"]


def test_a_minute_of_load_with_web_behind_pgbouncer(scratch_database_url, tmp_path):
    """The web processes connect through PgBouncer in transaction mode (``DATABASE_POOLER``),
    the worker directly: nothing lost, nothing claimed twice, no 5xx."""
    from loadtest import pooler

    assert pooler.available(), "pgbouncer is not installed (.ci/run installs it)"
    report, result = run_load(
        "loadtest",
        "--pgbouncer",
        database_url=scratch_database_url,
        out=tmp_path,
        duration=45,
        run_seconds=(10, 20),
    )
    checked = report["database_check"]
    assert report["totals"]["5xx"] == 0, report["endpoints"]
    assert report["problems"] == [], report["problems"][:20]
    assert checked["log_lost"] == checked["sample_lost"] == 0
    assert checked["claimed_twice"] == 0
    assert checked["runs_finished"] >= 20
    # The requests really went through the pooler: every one is at least one transaction.
    assert report["pooled_transactions"] >= report["totals"]["requests"] * 0.9
    assert result.returncode == 0, report["target"]


def test_the_worker_refuses_a_transaction_mode_pooler(scratch_database_url):
    env = {**process_env(scratch_database_url), "DATABASE_POOLER": "transaction"}
    result = subprocess.run(
        [sys.executable, "manage.py", "run_worker"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "The worker needs a direct database connection" in result.stderr


def test_load_survives_the_shared_store_going_away(scratch_database_url, tmp_path):
    """Redis (``REDIS_URL``, a server of the run's own) is killed in the middle of the load and
    started again: rate limits stop being counted meanwhile, and no request fails."""
    report, result = run_load(
        *("loadtest.faults", "redis-stop"),
        database_url=scratch_database_url,
        out=tmp_path,
        duration=45,
        run_seconds=(10, 20),
        p99_limit_ms=2000,
    )
    target = report["target"]
    assert target["counted_in_redis_before"] and target["counted_in_redis_after"], report["fault"]
    assert target["outage_seen_by_web"], report["fault"]
    assert target["nothing_else_failed"], report["fault"]["failures"]
    assert target["no_lost_writes"], report["problems"][:20]
    assert report["totals"]["5xx"] == 0
    assert result.returncode == 0, target
