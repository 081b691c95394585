"""What every page view shares."""

from typing import Any

from django.http import HttpRequest


def wants_fragment(request: HttpRequest) -> bool:
    """Whether htmx asked for a fragment: not for boosted or history-restore requests, which
    need the whole page (STYLE: one view, full page or fragment)."""
    htmx: Any = getattr(request, "htmx", None)
    return bool(htmx) and not htmx.boosted and not htmx.history_restore_request
