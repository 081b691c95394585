"""Words for judgements: ETAs ("ETA 4 min (~07:42)", "overdue by 6 min") and ratios."""

from django import template
from django.utils import timezone

register = template.Library()


def _minutes(seconds: float) -> str:
    minutes = max(1, round(seconds / 60))
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


@register.filter
def eta_label(eta) -> str:
    if eta is None:
        return ""
    left = eta.seconds_left(timezone.now())
    if left >= 0:
        return f"ETA {_minutes(left)} (~{eta.at:%H:%M})"
    return f"overdue by {_minutes(-left)}"


@register.filter
def eta_overdue(eta) -> bool:
    return eta is not None and eta.seconds_left(timezone.now()) < 0


@register.filter
def eta_basis(eta) -> str:
    if eta is None:
        return ""
    if eta.basis == "progress":
        return "Estimated from the progress rate so far"
    return "Estimated from the pipeline's median duration (its baseline)"


@register.filter
def times(value) -> str:
    """A ratio as "2.5x", or an em dash."""
    if value is None:
        return "—"
    return f"{value:.2f}x" if value < 10 else f"{value:.0f}x"


@register.filter
def seconds(value) -> str:
    if value is None:
        return "—"
    value = float(value)
    if value < 120:
        return f"{value:.0f} s" if value >= 10 or value.is_integer() else f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


@register.filter
def get_item(mapping, key):
    return mapping.get(key) if mapping else None


@register.filter
def rate(value) -> str:
    """A 0..1 success rate as "96%", or an em dash when there was nothing to rate."""
    if value is None:
        return "—"
    return f"{value * 100:.0f}%" if value * 100 >= 10 or value == 0 else f"{value * 100:.1f}%"
