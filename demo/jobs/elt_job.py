#!/usr/bin/env python3
"""A stand-in ELT job for the demo gateway: it extracts, transforms and loads made-up rows,
reporting through elt-gateway's line protocol (``::node``, ``::telemetry``, ``::error`` ...).

    elt_job.py --source salesforce --destination snowflake --resources accounts,contacts
               [--rows 200000] [--fail-rate 0.15] [--slow-node contacts] [--seconds 60]

It fails now and then (``--fail-rate``), one resource can be slow (``--slow-node``), and on
SIGTERM it stops at the next safe point, as a real job should.
"""

import argparse
import os
import random
import signal
import sys
import time

stopping = False


def on_sigterm(signum, frame):
    global stopping
    stopping = True


def say(line: str) -> None:
    print(line, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--source", required=True)
    parser.add_argument("--destination", required=True)
    parser.add_argument("--resources", required=True)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--fail-rate", type=float, default=0.1)
    parser.add_argument("--slow-node", default="")
    parser.add_argument("--seconds", type=float, default=60.0, help="about how long a run takes")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, on_sigterm)
    rng = random.Random()
    resources = [name for name in args.resources.split(",") if name]
    run_id = os.environ.get("ELT_RUN_ID", "local")
    say(f"Run {run_id}: {args.source} -> {args.destination} ({', '.join(resources)})")
    say(f"trigger: {os.environ.get('ELT_TRIGGER', 'manual')}")

    total = int(args.rows * rng.uniform(0.6, 1.4))
    per_resource = max(1, total // len(resources))
    fails_at = rng.choice(resources) if rng.random() < args.fail_rate else None
    step = args.seconds / (len(resources) * 12 + 4)
    loaded = 0
    bytes_loaded = 0

    source_node = f"n_{args.source}"
    say(f"::node id={source_node} type=source.{args.source} status=running")
    say("::telemetry currentPhase=extract progress=0 rowsLoaded=0 bytesLoaded=0")
    say(f"Connecting to {args.source} (password=demo-not-a-secret)")
    time.sleep(step * 2)
    say(f"::node id={source_node} type=source.{args.source} status=succeeded")

    for index, resource in enumerate(resources):
        node = f"n_{resource}"
        say(f"::node id={node} type=resource status=running")
        say(f"::telemetry currentPhase=load currentResource={resource}")
        slow = 3 if resource == args.slow_node else 1
        for chunk in range(10):
            if stopping:
                say(f"::warn SIGTERM received: stopping after {loaded} rows, at a safe point")
                say(f"::node id={node} type=resource status=canceled")
                return 143
            time.sleep(step * slow * rng.uniform(0.6, 1.4))
            rows = per_resource // 10
            loaded += rows
            bytes_loaded += rows * rng.randint(180, 420)
            progress = round(100 * (index * 10 + chunk + 1) / (len(resources) * 10), 1)
            say(f"{resource}: loaded chunk {chunk + 1}/10 ({rows} rows)")
            say(
                f"::telemetry rowsLoaded={loaded} bytesLoaded={bytes_loaded} "
                f"progress={progress} currentPhase=load currentResource={resource}"
            )
            if slow > 1 and chunk == 4:
                print(f"WARN {resource} is slow: API rate limit, backing off", file=sys.stderr)
            if resource == fails_at and chunk == 6:
                say(f"::node id={node} type=resource status=failed rows={loaded}")
                say(
                    f"::error {args.destination} refused the load of {resource}: "
                    "constraint violation on column updated_at"
                )
                say(f"::summary Load of {resource} into {args.destination} failed")
                return 1
        say(f"::node id={node} type=resource status=succeeded rows={per_resource}")

    say(f"::node id=n_{args.destination} type=destination.{args.destination} status=running")
    say("::telemetry currentPhase=finalize")
    time.sleep(step * 2)
    say(f"::node id=n_{args.destination} type=destination.{args.destination} status=succeeded")
    say(f"::telemetry progress=100 rowsLoaded={loaded} bytesLoaded={bytes_loaded}")
    say(f"Done: {loaded} rows, {bytes_loaded} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
