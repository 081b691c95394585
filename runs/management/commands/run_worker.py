"""The ``worker`` process: django-tasks-db's ``db_worker``, webhook senders and a clock.

Every ``PERIODIC_TASKS_INTERVAL`` seconds the clock enqueues each task named in
``settings.PERIODIC_TASKS``. Those tasks are idempotent and safe to run concurrently (they use
conditional updates or row locks), so several worker processes may each run a clock.

Each of ``settings.WORKER_SERVICES`` (dotted paths, like the periodic tasks, so that this app
needs no import of the apps that plug in) is started beside db_worker: a callable that takes the
stop event, starts its threads and returns a callable that stops them. The webhook senders are
one (``webhooks.senders.serve``): a pool of threads fed by the send tasks and by a poll of due
deliveries, so that a receiver that hangs holds one endpoint's share of the senders and nothing
else.
"""

import contextlib
import logging
import threading
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import InterfaceError, OperationalError, close_old_connections, connections
from django.utils.module_loading import import_string

from common import metrics
from config.startup import require_secret_key

logger = logging.getLogger(__name__)


def enqueue_periodic_tasks() -> None:
    for path in settings.PERIODIC_TASKS:
        try:
            import_string(path).enqueue()
        except Exception:
            logger.exception("could not enqueue periodic task %s", path)


class Command(BaseCommand):
    help = "Run the background worker (db_worker) with a clock for periodic tasks."

    def add_arguments(self, parser):
        parser.add_argument("--queue-name", default="default")
        parser.add_argument("--interval", type=float, default=None, help="Clock interval (s).")
        parser.add_argument("--no-clock", action="store_true")

    def handle(self, *args, queue_name: str, interval: float | None, no_clock: bool, **opts):
        require_secret_key()
        if settings.DATABASES["default"].get("DISABLE_SERVER_SIDE_CURSORS"):
            # DATABASE_POOLER=transaction: the periodic jobs' session advisory locks would not
            # hold, so two workers could run the same job at once.
            raise CommandError(
                "The worker needs a direct database connection: unset DATABASE_POOLER for it "
                "(only web processes may go through a transaction-mode pooler)."
            )
        stop = threading.Event()
        stoppers = [import_string(path)(stop) for path in settings.WORKER_SERVICES]
        if not no_clock:
            every = interval or settings.PERIODIC_TASKS_INTERVAL

            def clock() -> None:
                while not stop.wait(every):
                    enqueue_periodic_tasks()
                    close_old_connections()
                    with contextlib.suppress(Exception):  # metrics never stop the clock
                        metrics.heartbeat("clock")

            threading.Thread(target=clock, name="periodic-clock", daemon=True).start()
        try:
            self.work(queue_name)
        finally:
            stop.set()
            for stopper in stoppers:
                stopper()

    def work(self, queue_name: str) -> None:
        """Run db_worker; when the database goes away, wait for it and start again.

        db_worker exits on a lost connection (a PostgreSQL restart, a failover). Restarting it
        here keeps the process up, so queued deliveries and periodic jobs carry on once the
        database is back, without a supervisor having to notice.
        """
        delay = 1.0
        while True:
            started = time.monotonic()
            try:
                call_command("db_worker", queue_name=queue_name, reload=False, interval=0.5)
                return
            except (OperationalError, InterfaceError) as exc:
                logger.warning("database unavailable (%s); worker restarts in %.0fs", exc, delay)
                connections.close_all()
                if time.monotonic() - started > 60:
                    delay = 1.0  # it ran for a while: this is a new outage
                time.sleep(delay)
                delay = min(delay * 2, 15.0)
