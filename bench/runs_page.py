"""Server-side render time of the Runs page, with whatever history the database holds.

    DATABASE_URL=postgres://... python bench/runs_page.py [--repeat 15] [--json out.json]

Renders in-process through Django's test client (no network, no browser), signed in as a
superuser, and prints the median and p90 time and the SQL query count of each scenario: the
first page, a filtered page (failed, one pipeline, last 7 days), a page deep in the history, the
dashboard strip over 30 days, the table fragment htmx asks for, and the live-rows partial,
with the time spent in SQL apart (steadier than wall time on a shared machine).
The cache is cleared before every render, so the dashboard strip is always computed.
Compare a run on 10,000 runs (``seed_demo --runs 10000``) with one on 1,000,000.
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.cache import cache  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from pipelines.models import Pipeline  # noqa: E402
from runs.models import Run  # noqa: E402
from runs.pagination import Position, encode_cursor  # noqa: E402


def scenarios() -> dict[str, tuple[str, dict]]:
    pipeline = Pipeline.objects.order_by("name").first()
    total = Run.objects.count()
    # A position 90% of the way back through the history, found through the index.
    deep = Run.objects.order_by("-created_at", "-id").values("created_at", "id")[int(total * 0.9)]
    cursor = encode_cursor(Position(deep["created_at"], deep["id"], "older"))
    live_ids = ",".join(
        Run.objects.order_by("-created_at", "-id").values_list("public_id", flat=True)[:10]
    )
    htmx = {"HTTP_HX_REQUEST": "true"}
    return {
        "first page": ("/runs/", {}),
        "filtered (failed, 1 pipeline, 7d)": (
            f"/runs/?status=failed&pipelineId={pipeline.public_id}&window=7d",
            {},
        ),
        "deep page (90% back)": (f"/runs/?cursor={cursor}", {}),
        "dashboard 30d (fragment)": ("/runs/?window=30d", htmx),
        "table fragment": ("/runs/", htmx),
        "live rows partial": (f"/runs/live/?ids={live_ids}", {}),
    }, total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--json", default=None)
    options = parser.parse_args()
    admin = get_user_model().objects.filter(is_superuser=True).order_by("id").first()
    client = Client()
    client.force_login(admin)
    plan, total = scenarios()
    results = {"runs": total, "scenarios": {}}
    print(f"{total:,} runs, {options.repeat} renders each (after 2 warm-ups)")
    for name, (url, headers) in plan.items():
        for _ in range(2):
            client.get(url, **headers)
        times, sql_times = [], []
        for _ in range(options.repeat):
            cache.clear()  # measure the strip computed, never a cached copy
            with CaptureQueriesContext(connection) as queries:
                start = time.perf_counter()
                response = client.get(url, **headers)
                times.append((time.perf_counter() - start) * 1000)
            sql_times.append(sum(float(query["time"]) for query in queries.captured_queries) * 1000)
            assert response.status_code in (200, 204), (url, response.status_code)
        times.sort()
        row = {
            "median_ms": round(statistics.median(times), 1),
            "p90_ms": round(times[int(len(times) * 0.9) - 1], 1),
            "sql_median_ms": round(statistics.median(sql_times), 1),
            "queries": len(queries),
        }
        results["scenarios"][name] = row
        print(
            f"  {name:36s} median {row['median_ms']:7.1f} ms  p90 {row['p90_ms']:7.1f} ms  "
            f"SQL {row['sql_median_ms']:6.1f} ms in {row['queries']} queries"
        )
    if options.json:
        Path(options.json).parent.mkdir(parents=True, exist_ok=True)
        Path(options.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
