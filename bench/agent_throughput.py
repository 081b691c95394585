"""The runner side, measured: one command.

    .venv/bin/python -m bench.agent_throughput [--pg postgres://root@127.0.0.1:5432] [--lines 60000]

On a fresh PostgreSQL database ``elt_bench_agent`` it starts the Procfile's ``web`` line on a
free loopback port and measures:

1. **Agent throughput**: lines per second one job pushes through ``elt-gateway`` to the server
   until the server has stored them all (the run's log sequence reaches the count), and the
   PATCH requests per second that took, for a job printing as fast as it can and for a steady
   job printing 400 lines a second.
2. **Server cost per stored line**: web + database CPU-seconds per line for ``appendLogs`` of 200
   lines against one ``appendLog`` per request (both with ``Idempotency-Key`` and
   ``Prefer: return=minimal``, as the client sends them).

It prints the figures as JSON and writes ``bench/out/agent_throughput.json``.
"""

import argparse
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import psycopg

from loadtest.stack import Stack, cpu_usage, recreate_database

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
PY = sys.executable
AGENT = Path(sys.executable).parent / "elt-gateway"


def log(message: str) -> None:
    print(f"[agent-bench] {message}", file=sys.stderr, flush=True)


def manage(database_url: str, *args: str) -> str:
    env = {
        # The app refuses to start with DEBUG=false and no key of its own.
        "SECRET_KEY": secrets.token_urlsafe(50),
        **os.environ,
        "DATABASE_URL": database_url,
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    result = subprocess.run(
        [PY, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    lines = result.stdout.strip().splitlines()
    return lines[-1] if lines else ""


def log_seq(database_url: str, run_id: str) -> int:
    with psycopg.connect(database_url.replace("postgres://", "postgresql://", 1)) as conn:
        row = conn.execute(
            "SELECT log_seq, status FROM runs_run WHERE public_id = %s", [run_id]
        ).fetchone()
    return row[0] if row else -1


def run_status(database_url: str, run_id: str) -> str:
    with psycopg.connect(database_url.replace("postgres://", "postgresql://", 1)) as conn:
        return conn.execute(
            "SELECT status FROM runs_run WHERE public_id = %s", [run_id]
        ).fetchone()[0]


def patch_count(log_path: Path, run_id: str) -> int:
    pattern = re.compile(rf"PATCH /api/agent/runs/{run_id} 200")
    return sum(
        1 for line in log_path.read_text(errors="replace").splitlines() if pattern.search(line)
    )


def queue_run(base_url: str, key: str, pipeline_id: str) -> str:
    response = httpx.post(
        f"{base_url}/api/elt/runs",
        json={"pipelineId": pipeline_id, "trigger": "manual"},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    response.raise_for_status()
    return response.json()["id"]


JOB = """
import sys, time
lines, rate = int(sys.argv[1]), float(sys.argv[2])
start = time.monotonic()
out = sys.stdout
for i in range(lines):
    out.write(f"line {i} of the throughput job, about sixty characters long\\n")
    if rate and i % 100 == 99:
        out.flush()
        ahead = (i + 1) / rate - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)
out.flush()
"""


def measure_agent(
    stack: Stack,
    database_url: str,
    token: str,
    key: str,
    pipeline_id: str,
    *,
    lines: int,
    rate: float,
    workdir: Path,
) -> dict:
    job = workdir / "job.py"
    job.write_text(JOB)
    config = workdir / f"gateway-{int(rate)}.toml"
    config.write_text(
        "poll_interval = 0.5\n[pipelines.throughput]\n"
        f"command = {json.dumps(f'{PY} {job} {lines} {rate}')}\n"
    )
    stderr = open(workdir / f"agent-{int(rate)}.log", "wb")  # noqa: SIM115
    agent = subprocess.Popen(
        [str(AGENT), "--url", stack.base_url, "--config", str(config)],
        env={**os.environ, "ELT_GATEWAY_TOKEN": token},
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )
    try:
        run_id = queue_run(stack.base_url, key, pipeline_id)
        # The clock starts when the run is claimed (its first stored line is close behind).
        deadline = time.monotonic() + 60
        while log_seq(database_url, run_id) < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        started = time.monotonic()
        while log_seq(database_url, run_id) < lines:
            if time.monotonic() - started > 600:
                raise SystemExit("lines did not all arrive within 10 minutes")
            time.sleep(0.02)
        elapsed = time.monotonic() - started
        deadline = time.monotonic() + 60
        while run_status(database_url, run_id) != "succeeded" and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # the access log line of the last PATCH
        requests = patch_count(stack.out_dir / "web.log", run_id)
    finally:
        agent.terminate()
        agent.wait(timeout=30)
        stderr.close()
    return {
        "lines": lines,
        "job_rate_lines_per_s": rate or "as fast as it can print",
        "seconds_to_all_stored": round(elapsed, 2),
        "stored_lines_per_s": round(lines / elapsed),
        "patch_requests": requests,
        "requests_per_s": round(requests / elapsed, 2),
        "lines_per_request": round(lines / max(requests, 1), 1),
    }


def measure_cost(
    stack: Stack, key: str, pipeline_id: str, *, lines: int, batch: int, clients: int = 4
) -> dict:
    run_ids = [queue_run(stack.base_url, key, pipeline_id) for _ in range(clients)]
    per_client = lines // clients
    errors = []

    def push(run_id: str) -> None:
        with httpx.Client(
            base_url=stack.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        ) as client:
            sent = 0
            while sent < per_client:
                size = min(batch, per_client - sent)
                entries = [
                    {"level": "info", "message": f"line {sent + i} of a cost run, sixty chars"}
                    for i in range(size)
                ]
                body = {"appendLogs": entries} if batch > 1 else {"appendLog": entries[0]}
                response = client.patch(
                    f"/api/elt/runs/{run_id}",
                    json=body,
                    headers={"Idempotency-Key": uuid.uuid4().hex, "Prefer": "return=minimal"},
                )
                if response.status_code != 200:
                    errors.append(response.text[:200])
                    return
                sent += size

    before = cpu_usage(stack)
    started = time.monotonic()
    threads = [threading.Thread(target=push, args=(run_id,)) for run_id in run_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    after = cpu_usage(stack)
    if errors:
        raise SystemExit(f"cost run refused: {errors[0]}")
    stored = per_client * clients
    web = after["web_cpu_seconds"] - before["web_cpu_seconds"]
    database = after["database_cpu_seconds"] - before["database_cpu_seconds"]
    return {
        "lines": stored,
        "lines_per_request": batch,
        "requests": stored // batch,
        "seconds": round(elapsed, 2),
        "web_cpu_seconds": round(web, 2),
        "database_cpu_seconds": round(database, 2),
        "cpu_ms_per_line": round(1000 * (web + database) / stored, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg", default="postgres://root@127.0.0.1:5432")
    parser.add_argument("--lines", type=int, default=60_000, help="lines of the full-speed job")
    parser.add_argument("--single-lines", type=int, default=4_000, help="lines sent one a request")
    args = parser.parse_args()
    database_url = f"{args.pg.rstrip('/')}/elt_bench_agent"
    OUT.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="agent-bench-", dir=OUT))
    log(f"recreating {database_url}")
    recreate_database(database_url)
    manage(database_url, "migrate", "--noinput", "-v", "0")
    token = manage(database_url, "create_gateway", "bench-gateway")
    pipeline_id = manage(
        database_url, "create_pipeline", "throughput", "--gateway", "bench-gateway"
    )
    key = manage(database_url, "create_api_key", "bench", "--create-user")
    manage(
        database_url,
        "shell",
        "-c",
        "from django.contrib.auth.models import User; "
        "User.objects.filter(username='bench').update(is_superuser=True)",
    )
    stack = Stack(
        database_url,
        workdir,
        env_extra={"WEB_CONCURRENCY": "2", "DEBUG": "false", "SECURE_COOKIES": "false"},
    )
    results: dict = {"machine": {"cpus": os.cpu_count(), "load_1m": os.getloadavg()[0]}}
    try:
        log(f"starting web on {stack.base_url}")
        stack.start_web()
        log(f"agent: a job printing {args.lines} lines as fast as it can")
        results["agent_full_speed"] = measure_agent(
            stack, database_url, token, key, pipeline_id, lines=args.lines, rate=0, workdir=workdir
        )
        log("agent: a job printing 400 lines/s for 15 s")
        results["agent_steady_400"] = measure_agent(
            stack, database_url, token, key, pipeline_id, lines=6000, rate=400, workdir=workdir
        )
        log(f"cost: {args.single_lines} lines one a request")
        single = measure_cost(stack, key, pipeline_id, lines=args.single_lines, batch=1)
        log(f"cost: {args.single_lines * 10} lines 200 a request")
        batched = measure_cost(stack, key, pipeline_id, lines=args.single_lines * 10, batch=200)
        results["cost_append_log_single"] = single
        results["cost_append_logs_200"] = batched
        results["cpu_per_line_ratio_single_over_batched"] = round(
            single["cpu_ms_per_line"] / batched["cpu_ms_per_line"], 1
        )
        results["machine"]["load_1m_after"] = os.getloadavg()[0]
    finally:
        stack.stop()
    (OUT / "agent_throughput.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
