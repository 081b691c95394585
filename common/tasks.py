"""Periodic jobs of ``common``, enqueued by the worker's clock (``settings.PERIODIC_TASKS``)."""

import logging

from django.tasks import task

from common import metrics, retention
from common.locks import run_exclusively

logger = logging.getLogger(__name__)


@task()
@run_exclusively
def prune() -> dict[str, int]:
    counts = retention.prune()
    metrics.pruned(counts)
    if any(counts.values()):
        logger.info("pruned %s", ", ".join(f"{n} {name}" for name, n in counts.items() if n))
    return counts
