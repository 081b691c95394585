"""Django's PostgreSQL backend, with a connection health check that costs no round trip while
the connection is busy.

With ``CONN_HEALTH_CHECKS`` on, Django checks a persistent connection before the first query of
every request by sending ``SELECT 1`` and waiting for its answer: over HTTP that wait and the work
on both sides were about a sixth of a one-line append's CPU (bench/RESULTS.md).

A connection the server closed while it sat idle between requests (the server restarted, the
backend was terminated, a pooler in front of it restarted) has something to read: the server's
last message, the end of the stream, or an error. So the check of an idle connection that was
checked a moment ago (``QUIET_SECONDS``) asks the operating system, without waiting, whether its
socket is readable, and a readable idle connection is closed and opened again. A connection that
was quiet for longer gets Django's own ``SELECT 1``: a peer that vanished without a word (a host
that crashed, a firewall or NAT that forgot an idle connection) leaves nothing to read, and only
a round trip finds out. So does a connection in a transaction, or after an error.
"""

import select
import time

from django.db.backends.postgresql import base
from psycopg.pq import TransactionStatus

# A worker under load checks its connection every few milliseconds; one that waited longer than
# this since its last check pays the round trip.
QUIET_SECONDS = 10.0


class DatabaseWrapper(base.DatabaseWrapper):
    _last_check: tuple[object, float] | None = None  # (the connection, when it was last checked)

    def is_usable(self) -> bool:
        connection = self.connection
        if connection is None or connection.closed or connection.broken:
            return False
        now = time.monotonic()
        last, self._last_check = self._last_check, (connection, now)
        recent = last is not None and last[0] is connection and now - last[1] <= QUIET_SECONDS
        if not recent or connection.info.transaction_status != TransactionStatus.IDLE:
            return super().is_usable()
        poller = select.poll()
        poller.register(connection.fileno(), select.POLLIN)
        # Nothing is owed to an idle connection: anything to read (a goodbye, the end of the
        # stream, or a message nobody waits for) means it cannot be trusted with a query.
        return not poller.poll(0)
