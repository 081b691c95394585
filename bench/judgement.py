"""The judgement pages in-process: ``DATABASE_URL=... python -m bench.judgement [--repeat N]``.

Against a database that ``python -m bench`` seeded (its ``bench.helper prepare`` pads the
pipelines to 200), through Django's test client (server time without the HTTP hop, so a loaded
machine's scheduling of a web worker stays out of it): p50/p90 of ``--repeat`` after a warm-up,
and the SQL query count of each request, for the pages issue 15 judges: the Runs page with
badges and ETAs (and under ``excludeStatus=succeeded``, a page of failed runs), ``/pipelines/``,
one pipeline over 30 days, the out-of-baseline filter, the pipeline API's figures and a compare.
Prints one JSON object; the load average before and after says how busy the machine was.
"""

import argparse
import json
import os

from bench.timing import timed_get

USERNAME = "bench-judgement"


def measure(repeat: int) -> dict:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from pipelines.models import Pipeline
    from runs.models import Run, RunStatus

    user, _ = get_user_model().objects.get_or_create(username=USERNAME)
    user.groups.add(Group.objects.get(name="viewer"))
    client = Client()
    client.force_login(user)
    # The seeded pipeline the driver filters on (bench.helper prepare), not the empty padding.
    pipeline = Pipeline.objects.exclude(name__startswith="bench_").order_by("name").first()
    # A succeeded run with an earlier succeeded one to compare with.
    recent = Run.objects.filter(pipeline=pipeline, status=RunStatus.SUCCEEDED).order_by(
        "-created_at", "-id"
    )[1]
    htmx = {"HTTP_HX_REQUEST": "true"}
    cases = {
        "page /runs/ (badges and ETAs)": ("/runs/", {}),
        "page /runs/?excludeStatus=succeeded": ("/runs/?excludeStatus=succeeded", {}),
        "page /runs/ out of baseline": ("/runs/?baseline=out", {}),
        "page /pipelines/ (200 pipelines)": ("/pipelines/", {}),
        "partial /pipelines/ by p90": ("/pipelines/?sort=-p90", htmx),
        "page /pipelines/{id}/ 30d": (f"/pipelines/{pipeline.public_id}/", {}),
        "api /api/pipelines/{id} stats": (f"/api/pipelines/{pipeline.public_id}", {}),
        "api /api/runs/{id}/compare": (f"/api/runs/{recent.public_id}/compare", {}),
    }
    results = {"loadavg_before": os.getloadavg(), "pipelines": Pipeline.objects.count()}
    for label, (url, headers) in cases.items():
        client.defaults.update(headers)
        summary, _ = timed_get(client, url, repeat)
        with CaptureQueriesContext(connection) as captured:
            client.get(url)
        for key in headers:
            client.defaults.pop(key)
        results[label] = {**summary, "queries": len(captured.captured_queries)}
    results["loadavg_after"] = os.getloadavg()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.judgement")
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    print(json.dumps(measure(args.repeat)))


if __name__ == "__main__":
    main()
