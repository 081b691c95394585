"""One at a time across every worker: a named lock per periodic job.

On PostgreSQL a session-level advisory lock (``pg_try_advisory_lock``) on the job's connection:
held across the job's many small transactions, released when the job ends or its connection
dies (a killed worker never leaves it held). On SQLite, which only ever serves one machine, an
exclusive ``flock`` on a file under ``SHARED_STATE_DIR`` does the same. Either way a job that
finds the lock taken is skipped, not queued: the next tick runs it.

Behind PgBouncer in transaction mode, session advisory locks do not hold (each statement may
use another server connection): point the worker at PostgreSQL directly (docs/SCALING.md).
"""

import fcntl
import hashlib
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path

from django.conf import settings
from django.db import connection

from common import metrics

logger = logging.getLogger(__name__)


def _advisory_key(name: str) -> int:
    digest = hashlib.sha256(f"elt-job:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def exclusive(name: str) -> Iterator[bool]:
    """Hold the lock named ``name`` if it is free; yields whether this caller holds it."""
    if connection.vendor == "postgresql":
        key = _advisory_key(name)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
            held = bool(cursor.fetchone()[0])
        try:
            yield held
        finally:
            if held:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
        return
    directory = Path(settings.SHARED_STATE_DIR) / "locks"
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
        else:
            yield True
    finally:
        os.close(fd)


# One line per run that held the lock; the load test reads them back to check that no two runs
# of a job ever overlapped (a task result's own times also cover its claim and bookkeeping).
SPAN_LOG = "periodic job %s held its lock from %.6f to %.6f"
SPAN_PATTERN = re.compile(r"periodic job (\w+) held its lock from ([\d.]+) to ([\d.]+)")


def run_exclusively(job: Callable) -> Callable:
    """Decorate a periodic job so that it never runs twice at once; a skipped run answers None.
    The lock and the job's metrics are named after the function (as ``PERIODIC_TASKS`` names
    it)."""
    name = job.__name__

    @wraps(job)
    def run(*args, **kwargs):
        with exclusive(name) as held:
            if not held:
                logger.info("periodic job %s is running elsewhere; skipped", name)
                return None
            started, held_from = time.monotonic(), time.time()
            try:
                return job(*args, **kwargs)
            finally:
                metrics.job_observed(name, seconds=time.monotonic() - started)
                # Before the lock is released: the span in which no other worker can run it.
                logger.info(SPAN_LOG, name, held_from, time.time())

    return run
