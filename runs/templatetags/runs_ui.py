"""Formatting for the runs pages: human bytes, counts, durations, status labels, URLs, times.

Every instant is written as ``<time datetime="...">`` (``{% instant %}``); the text inside is
the same format in UTC, and the page's script rewrites it in the viewer's zone (the browser's, or
the one they pinned), names the zone, and keeps relative times ticking.
"""

from datetime import UTC, datetime, timedelta

from django import template
from django.conf import settings
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.safestring import SafeString, mark_safe

from common.time import iso as to_iso

register = template.Library()

STATUS_LABELS = {
    "queued": "Queued",
    "running": "Running",
    "cancel_requested": "Canceling",
    "succeeded": "Succeeded",
    "failed": "Failed",
    "canceled": "Canceled",
}
STATUS_ICONS = {
    "queued": "○",
    "running": "◐",
    "cancel_requested": "◌",
    "succeeded": "✓",
    "failed": "✕",
    "canceled": "⊘",
}


@register.filter
def status_label(status: str) -> str:
    return STATUS_LABELS.get(status, status)


@register.filter
def status_icon(status: str) -> str:
    return STATUS_ICONS.get(status, "•")


@register.filter
def human_bytes(value) -> str:
    if value is None or value == "":
        return "—"
    size = float(value)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(size) < 1000 or unit == "TB":
            if unit == "B":
                return f"{int(size)} B"
            return f"{size:.1f} {unit}" if abs(size) < 100 else f"{size:.0f} {unit}"
        size /= 1000
    return f"{size:.1f} PB"  # pragma: no cover - unreachable


@register.filter
def human_count(value) -> str:
    """1234 -> 1.2k, 5600000 -> 5.6M; small numbers stay exact."""
    if value is None or value == "":
        return "—"
    number = float(value)
    for unit, scale in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(number) >= scale:
            scaled = number / scale
            return f"{scaled:.1f}{unit}" if scaled < 100 else f"{scaled:.0f}{unit}"
    return f"{int(number)}"


@register.filter
def thousands(value) -> str:
    return "—" if value is None else f"{int(value):,}"


@register.filter
def duration(value) -> str:
    """Seconds (or a timedelta) as "2h 05m", "3m 12s" or "48s"."""
    if value is None or value == "":
        return "—"
    seconds = int(value.total_seconds() if isinstance(value, timedelta) else value)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"


@register.filter
def ago(value: datetime | None) -> str:
    """A short relative time: "just now", "5m ago", "3h ago", "2d ago", or a date."""
    if value is None:
        return "—"
    seconds = int((timezone.now() - value).total_seconds())
    if seconds < 0:
        return "in the future"
    if seconds < 45:
        return "just now"
    if seconds < 3600:
        return f"{max(1, seconds // 60)}m ago"
    if seconds < 86400:
        return f"{seconds // 3600}h ago"
    if seconds < 86400 * 14:
        return f"{seconds // 86400}d ago"
    return value.strftime("%b %-d, %Y")


@register.filter
def iso(value: datetime | None) -> str:
    return to_iso(value) or ""


@register.filter
def exact(value: datetime | None) -> str:
    """The one format of an instant, in UTC: "Dec 1, 07:27:17 UTC", with the year when it is
    not the current one ("Nov 18, 2025, 12:44:00 UTC"). The page's script writes the same format
    in the viewer's zone."""
    if value is None:
        return ""
    value = value.astimezone(UTC)
    year = "" if value.year == timezone.now().year else f", {value.year}"
    return f"{value:%b} {value.day}{year}, {value:%H:%M:%S} UTC"


# Kept for templates of other apps that still write ``|short``: the same single format.
short = register.filter("short", exact)

TIME_FORMATS = ("datetime", "relative", "time")


@register.simple_tag
def instant(value: datetime | None, style: str = "datetime", empty: str = "—") -> SafeString:
    """``<time datetime="...">`` for ``value``: ``datetime`` (the one format), ``relative``
    ("3m ago", ticking, the exact instant in its title) or ``time`` (the time of day alone, for
    log lines under a heading that names the zone)."""
    if value is None:
        return format_html("{}", empty)
    if style not in TIME_FORMATS:
        raise template.TemplateSyntaxError(f"instant: unknown style {style!r}")
    text = ago(value) if style == "relative" else exact(value)
    if style == "time":
        text = f"{value.astimezone(UTC):%H:%M:%S}"
    return format_html(
        '<time datetime="{}" data-format="{}" title="{}">{}</time>',
        iso(value),
        style,
        exact(value),
        text,
    )


@register.simple_tag
def heartbeat(run, prefix: str = "last report ") -> SafeString:
    """ "last report 12s ago" on an unfinished run, a warning as it nears its gateway's lease
    (after which the system fails it as lost). The page's script keeps it ticking."""
    if run.is_final or run.status == "queued":
        return mark_safe("")
    seen = run.last_report_at or run.started_at or run.created_at
    lease = run.gateway.lease_seconds if run.gateway else settings.GATEWAY_DEFAULT_LEASE_SECONDS
    silence = max(0, int((timezone.now() - seen).total_seconds()))
    state = heartbeat_state(silence, lease)
    return format_html(
        '<span class="heartbeat is-{}" data-heartbeat="{}" data-lease="{}" data-prefix="{}" '
        'title="A run with no report for {} is failed as lost.">{}{} ago</span>',
        state,
        iso(seen),
        lease,
        prefix,
        duration(lease),
        prefix,
        duration(silence),
    )


def heartbeat_state(silence: int, lease: int) -> str:
    """``ok``, ``late`` past half the lease, ``lost`` past the lease (the reaper will act)."""
    if silence >= lease:
        return "lost"
    return "late" if silence * 2 >= lease else "ok"


@register.filter
def elapsed(start: datetime | None, end: datetime | None):
    """Seconds from ``start`` to ``end`` (None when either is missing), for ``|duration``."""
    if start is None or end is None:
        return None
    return max(0, int((end - start).total_seconds()))


@register.filter
def percent(value) -> str:
    if value is None:
        return "—"
    return (
        f"{value:.0f}%" if value in (0, 100) or value >= 99.95 or value < 0.05 else f"{value:.1f}%"
    )


@register.simple_tag(takes_context=True)
def query_with(context, **changes) -> str:
    """The current query string with some parameters replaced (None or "" drops them)."""
    params = context["request"].GET.copy()
    for key, value in changes.items():
        params.pop(key, None)
        if value not in (None, ""):
            params[key] = value
    encoded = urlencode(sorted(params.lists()), doseq=True)
    return f"?{encoded}" if encoded else "?"


@register.simple_tag(takes_context=True)
def query_adding(context, key: str, value: str) -> str:
    """The current query with one more ``key=value`` (a repeatable filter), from the first page."""
    params = context["request"].GET.copy()
    params.pop("cursor", None)
    if value not in params.getlist(key):
        params.appendlist(key, value)
    return "?" + urlencode(sorted(params.lists()), doseq=True)


@register.simple_tag(takes_context=True)
def query_without(context, key: str, value: str) -> str:
    """The current query without one value of a repeatable filter, from the first page."""
    params = context["request"].GET.copy()
    params.pop("cursor", None)
    params.setlist(key, [item for item in params.getlist(key) if item != value])
    encoded = urlencode(sorted(params.lists()), doseq=True)
    return f"?{encoded}" if encoded else "?"


@register.filter
def label_items(labels) -> list[tuple[str, str, str]]:
    """A run's labels as ``(key, value, "key:value")``, by key."""
    return [(key, value, f"{key}:{value}") for key, value in sorted((labels or {}).items())]


_SOURCE_WORDS = {"web": "the web app", "api": "API", "admin": "admin", "runner": "the runner API"}


@register.filter
def event_sentence(event) -> str:
    """An audited action on a run, as run detail says it: "Cancel requested by ana via API"."""
    details = event.details or {}
    via = _SOURCE_WORDS.get(event.source)
    by = f"by {event.actor_label}" + (f" via {via}" if via else "")
    match event.action:
        case "run.created":
            rerun = details.get("rerunOf")
            return f"Queued {by}" + (f" as a re-run of {rerun}" if rerun else "")
        case "run.rerun":
            return f"Re-run {by} as {details.get('newRunId', 'a new run')}"
        case "run.cancel_requested":
            verb = "Canceled" if details.get("status") == "canceled" else "Cancel requested"
            return f"{verb} {by}"
        case "run.status_changed":
            to = details.get("to", "")
            if to == "running" and details.get("from") == "queued":
                return f"Claimed {by}"
            return f"{status_label(to)} {by}"
        case "run.finished_by_system":
            status = status_label(details.get("status", ""))
            return f"{status} by the system: {details.get('reason', '')}"
    return f"{event.action} {by}"
