"""Formatting for the runs pages: human bytes, counts, durations, status labels, URLs."""

from datetime import datetime, timedelta

from django import template
from django.utils import timezone
from django.utils.http import urlencode

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
    return value.isoformat().replace("+00:00", "Z") if value else ""


@register.filter
def exact(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else ""


@register.filter
def short(value: datetime | None) -> str:
    """The time alone for today, else a short date and time."""
    if value is None:
        return "—"
    if value.date() == timezone.now().date():
        return value.strftime("%H:%M:%S")
    return value.strftime("%b %-d, %H:%M")


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
