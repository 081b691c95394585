"""The runner package keeps its own copies of a few server limits (it must import no Django):
they must be the server's."""

from django.conf import settings

from eltrunner import protocol, reporter
from runs.api.serializers import MAX_APPEND_LOGS, NODE_STATUSES
from runs.models import NODE_FINAL_STATUSES


def test_the_clients_limits_are_the_servers():
    assert reporter.MAX_MESSAGE_CHARS == settings.RUN_LOG_MESSAGE_MAX_CHARS
    assert reporter.MAX_BATCH_LINES == MAX_APPEND_LOGS
    assert protocol.NODE_STATUSES - {"cancelled"} == set(NODE_STATUSES)
    assert set(NODE_FINAL_STATUSES) == protocol.FINAL_NODE_STATUSES
