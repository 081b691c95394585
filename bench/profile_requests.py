"""Where a runner request's CPU goes, in-process: ``python -m bench.profile_requests [case]``.

Against the database of ``DATABASE_URL`` (PostgreSQL, e.g. the one ``bench.cost`` seeds), it
makes a gateway, a token, a viewer's key and runs of its own, sends ``--iterations`` requests of
each case through Django's test client (the whole middleware stack, DRF, the services, real SQL)
under cProfile, and prints the functions with the most cumulative time, the statements per
request and the mean time per request; with ``--statements``, no profiler: the request's wall and
client CPU time, and each statement's wall time. The runs it made are deleted afterwards.

Cases: ``append`` (appendLog, minimal), ``read`` (GET, minimal), ``batch`` (appendLogs of 100,
minimal), ``full-big`` (a summary PATCH with the full answer on a run at the caps), ``list``
(``GET /api/runs?limit=50`` with a viewer's key), ``401``, and ``noop`` (the bare Django view of
``config.bench_urls``, what a 401 is compared with; needs ``BENCH_ENDPOINTS=1``).
"""

import argparse
import cProfile
import io
import os
import pstats
import sys
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.models import Group  # noqa: E402
from django.db import connection  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from bench.helper import bench_pipeline, delete_runs_sql, make_runs  # noqa: E402
from common.actors import Actor  # noqa: E402
from common.roles import Role  # noqa: E402
from gateways.models import Gateway  # noqa: E402
from gateways.services import api_key_issue, gateway_token_issue  # noqa: E402

MARK = {"bench": "profile"}


def requests(case: str):
    pipeline = bench_pipeline()
    gateway, _ = Gateway.objects.get_or_create(name="bench-profile")
    _, token = gateway_token_issue(actor=Actor.system(), gateway=gateway, name="profile")
    viewer, _ = get_user_model().objects.get_or_create(username="bench-profile-viewer")
    viewer.groups.set([Group.objects.get(name=Role.VIEWER)])
    _, key = api_key_issue(actor=Actor.system(), user=viewer, name="profile")
    small, big = (
        make_runs(
            pipeline=pipeline, gateway=gateway, count=1, lines=lines, samples=samples, mark=MARK
        )[0]
        for lines, samples in ((5, 10), (500, 2000))
    )
    agent = APIClient()
    agent.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    person = APIClient()
    person.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    # One client for the anonymous cases: a new client loads the middleware (and WhiteNoise
    # scans the static files) again, which no served request does.
    anonymous = APIClient()
    line = {"level": "info", "message": "Loaded batch of 50000 rows into analytics.accounts"}
    minimal = {"HTTP_PREFER": "return=minimal"}
    url = f"/api/agent/runs/{small.public_id}"
    return {
        "append": lambda: agent.patch(url, {"appendLog": line}, format="json", **minimal),
        "read": lambda: agent.get(url, **minimal),
        "batch": lambda: agent.patch(url, {"appendLogs": [line] * 100}, format="json", **minimal),
        "full-big": lambda: agent.patch(
            f"/api/agent/runs/{big.public_id}",
            {"telemetrySummary": {"progress": 50}},
            format="json",
        ),
        "list": lambda: person.get("/api/runs?limit=50"),
        "401": lambda: anonymous.get(url),
        "noop": lambda: anonymous.get("/bench/noop"),  # with BENCH_ENDPOINTS=1
        "floor": lambda: anonymous.patch(
            f"/bench/floor/{small.public_id}", {"x": 1}, format="json"
        ),
        "bare": lambda: anonymous.patch(f"/bench/bare/{small.public_id}", {"x": 1}, format="json"),
    }[case]


def time_statements(send, case: str, iterations: int) -> None:
    """The request's mean wall and client CPU time, then each statement's mean wall time (the
    round trip and PostgreSQL's work), with no profiler in the way."""
    began, cpu = time.perf_counter(), time.process_time()
    for _ in range(iterations):
        send()
    wall = (time.perf_counter() - began) / iterations * 1000
    cpu = (time.process_time() - cpu) / iterations * 1000
    print(f"{case}: {wall:.3f} ms wall, {cpu:.3f} ms client CPU per request")
    spent: dict[str, float] = {}

    def timed(execute, sql, params, many, context):
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            spent[sql] = spent.get(sql, 0.0) + time.perf_counter() - start

    with connection.execute_wrapper(timed):
        for _ in range(iterations):
            send()
    for sql, seconds in spent.items():
        print(f"  {seconds / iterations * 1000:.3f} ms  {sql[:100]}")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_requests")
    parser.add_argument("case", nargs="?", default="append")
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--sort", default="cumulative")
    parser.add_argument(
        "--statements",
        action="store_true",
        help="No profiler: the request's wall and client CPU time, and each statement's wall time.",
    )
    args = parser.parse_args()
    try:
        send = requests(args.case)
        for _ in range(20):
            send()  # warm-up: caches, compiled statements, the last-use write
        statements: list[str] = []

        def record(execute, sql, params, many, context):
            statements.append(sql)
            return execute(sql, params, many, context)

        with connection.execute_wrapper(record):
            status = send().status_code
        if args.statements:
            print(f"{args.case}: status {status}")
            time_statements(send, args.case, args.iterations)
            return 0
        profiler = cProfile.Profile()
        began = time.perf_counter()
        profiler.enable()
        for _ in range(args.iterations):
            send()
        profiler.disable()
        elapsed = time.perf_counter() - began
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(args.sort).print_stats(args.top)
        print(out.getvalue())
        print(f"{args.case}: status {status}, {len(statements)} statements per request:")
        for sql in statements:
            print(f"  {sql[:160]}")
        print(f"{elapsed / args.iterations * 1000:.3f} ms per request under the profiler")
    finally:
        delete_runs_sql("trigger @> %s::jsonb", ['{"bench": "profile"}'])
    return 0


if __name__ == "__main__":
    sys.exit(main())
