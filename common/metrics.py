"""Prometheus metrics at ``GET /metrics``, behind a bearer token of their own (``METRICS_TOKEN``).

Three kinds, so that a scrape of any one ``web`` process tells the whole story:

- request counts and latency histograms by route and status, counted by ``MetricsMiddleware`` in
  each process (with ``PROMETHEUS_MULTIPROC_DIR`` set, every gunicorn worker of a machine writes
  to that directory and a scrape adds them up; without it a scrape sees one worker);
- state read at scrape time from the database by each app's collector
  (``settings.METRICS_COLLECTORS``): runs by status and gateway, the webhook backlog and the age
  of its oldest due delivery;
- heartbeats, periodic job durations and prune counts, which the worker writes to the shared
  store (``common.cache``: Redis, or the file cache of one machine) as it works.
"""

import contextlib
import os
import time
from collections.abc import Iterable

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.utils.crypto import constant_time_compare
from django.utils.module_loading import import_string
from django.views.decorators.http import require_GET
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

REQUESTS = Counter(
    "elt_http_requests_total", "HTTP requests answered.", ["route", "method", "status"]
)
LATENCY = Histogram(
    "elt_http_request_duration_seconds",
    "Time to answer an HTTP request.",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
JOB_KEY = "metrics:job:"
PRUNED_KEY = "metrics:pruned:"
HEARTBEAT_KEY = "metrics:heartbeat:"


class MetricsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        match = request.resolver_match
        # The URL pattern, never the path: a run id in a label would make a series per run.
        route = (match.view_name or match.route) if match is not None else "unmatched"
        if route != "metrics":
            REQUESTS.labels(route, request.method, str(response.status_code)).inc()
            LATENCY.labels(route, request.method).observe(time.perf_counter() - started)
        return response


# Written by the worker (heartbeats, jobs, prune counts)


def _pruned_key(kind: str) -> str:
    return PRUNED_KEY + kind.replace(" ", "_")


def heartbeat(name: str) -> None:
    cache.set(f"{HEARTBEAT_KEY}{name}", time.time(), timeout=None)


def job_observed(name: str, *, seconds: float) -> None:
    cache.set(f"{JOB_KEY}{name}", {"at": time.time(), "seconds": seconds}, timeout=None)
    heartbeat("worker")


def pruned(counts: dict[str, int]) -> None:
    for kind, count in counts.items():
        if count:
            key = _pruned_key(kind)
            cache.add(key, 0, timeout=None)
            with contextlib.suppress(Exception):  # a lost count must not fail the pruning
                cache.incr(key, count)


class _SharedStoreCollector(Collector):
    def collect(self) -> Iterable:
        beats = GaugeMetricFamily(
            "elt_heartbeat_timestamp_seconds",
            "When a worker last ran a job (worker) or its clock last ticked (clock).",
            labels=["process"],
        )
        for name in ("worker", "clock"):
            value = cache.get(f"{HEARTBEAT_KEY}{name}")
            if value is not None:
                beats.add_metric([name], value)
        yield beats
        last = GaugeMetricFamily(
            "elt_periodic_job_last_run_timestamp_seconds", "When a job last ran.", labels=["job"]
        )
        took = GaugeMetricFamily(
            "elt_periodic_job_duration_seconds", "How long a job's last run took.", labels=["job"]
        )
        for path in settings.PERIODIC_TASKS:
            job = path.rsplit(".", 1)[1]
            seen = cache.get(f"{JOB_KEY}{job}")
            if seen:
                last.add_metric([job], seen["at"])
                took.add_metric([job], seen["seconds"])
        yield last
        yield took
        counts = GaugeMetricFamily(
            "elt_pruned_total", "Rows deleted by retention, by kind.", labels=["kind"]
        )
        for kind in settings.PRUNED_KINDS:
            counts.add_metric([kind], cache.get(_pruned_key(kind)) or 0)
        yield counts


class _AppCollector(Collector):
    def collect(self) -> Iterable:
        for path in settings.METRICS_COLLECTORS:
            yield from import_string(path)()


def _registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(_SharedStoreCollector())
    registry.register(_AppCollector())
    return registry


def _authorized(request: HttpRequest) -> bool:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and constant_time_compare(token, settings.METRICS_TOKEN)


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not settings.METRICS_TOKEN:
        return HttpResponse(status=404)
    if not _authorized(request):
        response = HttpResponse("Metrics need their bearer token.\n", status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        processes = CollectorRegistry()
        multiprocess.MultiProcessCollector(processes)
        body = generate_latest(processes)
    else:
        body = generate_latest(REGISTRY)
    body += generate_latest(_registry())
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
