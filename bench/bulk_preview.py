"""The bulk dry-run preview on its own: ``python -m bench.bulk_preview [--runs N]``.

Against ``DATABASE_URL`` (PostgreSQL), migrated here: tops the runs table up to ``--runs`` runs
(server-side, one INSERT ... SELECT generate_series, statuses mixed, one second apart) and times
``POST /api/runs/bulk`` with ``dryRun`` over the newest ``--matching`` runs, for cancel and
re-run, through ``bench.helper bulk_preview`` (the same measurement ``python -m bench`` makes on
its 1M-run database). Prints the figures, the plan of the count, and PASS under 1 s.
"""

import argparse
import json
import os
import sys

import psycopg

from bench.run import BULK_PREVIEW_MAX_MS, helper, log, manage

STATUSES = ["succeeded", "succeeded", "succeeded", "failed", "canceled", "queued", "running"]


def top_up(url: str, runs: int) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        have = conn.execute("SELECT count(*) FROM runs_run").fetchone()[0]
        if have >= runs:
            return have
        if not conn.execute(
            "SELECT 1 FROM pipelines_pipeline WHERE name = 'bench_bulk'"
        ).fetchone():
            manage(url, "create_gateway", "bench-bulk")
            manage(url, "create_pipeline", "bench_bulk", "--gateway", "bench-bulk")
        pipeline, gateway = conn.execute(
            "SELECT id, default_gateway_id FROM pipelines_pipeline WHERE name = 'bench_bulk'"
        ).fetchone()
        missing = runs - have
        log(f"seeding {missing:,} runs")
        conn.execute(
            """
            INSERT INTO runs_run (public_id, pipeline_id, gateway_id, status, trigger_type,
                trigger, created_at, updated_at, started_at, finished_at, error_summary,
                finished_by_system, telemetry_summary, log_seq, sample_seq)
            SELECT 'run_bulkbench' || lpad(g::text, 13, '0'), %(pipeline)s, %(gateway)s,
                (%(statuses)s::text[])[1 + g %% %(n)s], 'api', '{}'::jsonb,
                now() - (%(missing)s - g) * interval '1 second', now(), now(),
                CASE WHEN (%(statuses)s::text[])[1 + g %% %(n)s] IN ('queued', 'running')
                     THEN NULL ELSE now() END,
                '', false, '{}'::jsonb, 0, 0
            FROM generate_series(1, %(missing)s) AS g
            """,
            {
                "pipeline": pipeline,
                "gateway": gateway,
                "statuses": STATUSES,
                "n": len(STATUSES),
                "missing": missing,
            },
        )
        conn.execute("VACUUM ANALYZE runs_run")
        return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=200_000)
    parser.add_argument("--matching", type=int, default=100_000)
    parser.add_argument("--iterations", type=int, default=10)
    args = parser.parse_args(argv)
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        raise SystemExit("set DATABASE_URL to a PostgreSQL database")
    manage(url, "migrate", "--no-input")
    total = top_up(url, args.runs)
    log(f"{total:,} runs; previewing the newest {args.matching:,}")
    result = helper(url, "bulk_preview", {"matching": args.matching, "iterations": args.iterations})
    plan = result.pop("count_plan", "")
    print(json.dumps(result, indent=2))
    print(plan)
    ok = all(
        result[action]["request_p50_ms"] < BULK_PREVIEW_MAX_MS for action in ("cancel", "rerun")
    )
    print("PASS" if ok else "FAIL", f"(target: under {BULK_PREVIEW_MAX_MS} ms)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
