"""Django's PostgreSQL backend, with a connection health check that costs no round trip.

With ``CONN_HEALTH_CHECKS`` on, Django checks a persistent connection before the first query of
every request by sending ``SELECT 1`` and waiting for its answer: over HTTP that wait and the work
on both sides were about a fifth of a one-line append's CPU (bench/RESULTS.md). A connection the
server has dropped while it sat idle between requests (the server restarted, the backend was
terminated, a pooler in front of it restarted) always has something to read: the server's last
message, or the end of the stream. So the check of an idle connection asks the operating system,
without waiting, whether its socket is readable, and a readable idle connection is closed and
opened again. A connection in a transaction, or after an error, gets Django's own check.
"""

import select

from django.db.backends.postgresql import base
from psycopg.pq import TransactionStatus


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self) -> bool:
        connection = self.connection
        if connection is None or connection.closed or connection.broken:
            return False
        if connection.info.transaction_status != TransactionStatus.IDLE:
            return super().is_usable()
        poller = select.poll()
        poller.register(connection.fileno(), select.POLLIN)
        # Nothing is owed to an idle connection: anything to read (a goodbye, the end of the
        # stream, or a message nobody waits for) means it cannot be trusted with a query.
        return not poller.poll(0)
