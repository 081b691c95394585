"""The log lines of run detail, written out in Python.

A run's log is up to 500 lines, and run detail shows them all so that any kept line's anchor
(``#L<seq>``) is in the first response. Rendered as a ``{% partialdef %}`` per line, the template
engine's variable lookups and filters took most of the page's time (about 90 ms of a 500-line
page, measured on a loaded machine); this writes the same markup with ``escape`` and string
formatting, several times faster (bench/RESULTS.md, "Run detail as a debugger").
"""

from collections.abc import Iterable

from django import template
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from common.time import iso
from runs.log_panel import LogFilters
from runs.models import LogLine
from runs.templatetags.runs_ui import exact

register = template.Library()

LINE = (
    '<li class="log-line lvl-{level}{extra}" id="L{seq}" data-seq="{seq}">'
    '<a class="ln" href="#L{seq}" aria-label="Line {seq}">{seq}</a>'
    '<time datetime="{iso}" data-format="time" title="{exact}">{clock}</time>'
    '<span class="lvl">{level}</span>'
    '<span class="node">{node}</span><span class="msg">{message}</span></li>'
)


def log_line_html(line: LogLine, *, with_context: bool = False) -> str:
    at = timezone.localtime(line.at)
    extra = ""
    if with_context and not getattr(line, "is_match", True):
        extra += " is-context"
    if getattr(line, "is_focus", False):
        extra += " is-focus"
    return LINE.format(
        level=escape(line.level),
        extra=extra,
        seq=int(line.seq),
        iso=iso(line.at),
        exact=exact(line.at),
        clock=at.strftime("%H:%M:%S"),
        node=escape(line.node_id),
        message=escape(line.message),
    )


@register.simple_tag
def log_lines(lines: Iterable[LogLine], filters: LogFilters | None = None) -> SafeString:
    with_context = bool(filters and filters.with_context)
    # Every value was escaped or is a number.
    return mark_safe("".join(log_line_html(line, with_context=with_context) for line in lines))  # noqa: S308
