"""The log panel of run detail as a debugger: structured filters, context around errors, and
line anchors.

Query parameters (all in the URL, so a view of the log can be shared):

- ``level`` (repeated), ``nodeId``, ``logq``: the lines to show (combinable);
- ``errors=1``: the error lines (of the node and text chosen) with ``context`` lines before and
  after each, whatever the level filter;
- ``around=<seq>``: line ``seq`` highlighted with ``context`` lines before and after, whatever the
  filters (the "first error" link and anchors to lines a filter hides land here);
- ``context``: how many lines of context, 0 to ``MAX_CONTEXT`` (default ``DEFAULT_CONTEXT``);
- ``wrap=0`` and ``ts=0``: long lines scroll instead of wrapping; no timestamps.

A run keeps the newest ``RUN_LOG_CAP`` lines, numbered by ``seq`` from 1 for the whole life of the
run, so a line's number never changes and ``#L<seq>`` is a stable anchor. A line older than the
newest ``RUN_LOG_CAP`` is gone; asking for it says so rather than showing something else.
"""

from dataclasses import dataclass, field, replace
from typing import Any

from django.conf import settings
from django.http import QueryDict
from django.utils.http import urlencode

from runs import selectors
from runs.models import LogLevel, LogLine, Run

DEFAULT_CONTEXT = 10
MAX_CONTEXT = 100
MAX_TEXT = 200
LOG_LEVELS = [level for level, _ in LogLevel.choices]


def _int(raw: str | None, *, low: int, high: int) -> int | None:
    raw = (raw or "").strip()
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        return None
    value = int(raw)
    return value if low <= value <= high else None


@dataclass(frozen=True)
class LogFilters:
    levels: list[str] = field(default_factory=list)
    text: str = ""
    node: str = ""
    errors: bool = False
    around: int | None = None
    context: int = DEFAULT_CONTEXT
    wrap: bool = True
    timestamps: bool = True

    @property
    def selects(self) -> bool:
        """Whether some lines are left out (the empty log says "no lines match")."""
        return bool(self.levels or self.text or self.node or self.errors or self.around)

    @property
    def narrows(self) -> bool:
        """Whether the level, node or text filters leave lines out."""
        return bool(self.levels or self.text or self.node)

    @property
    def with_context(self) -> bool:
        return self.errors or self.around is not None

    def params(self) -> list[tuple[str, Any]]:
        items: list[tuple[str, Any]] = [("level", level) for level in self.levels]
        items += [("nodeId", self.node)] if self.node else []
        items += [("logq", self.text)] if self.text else []
        items += [("errors", 1)] if self.errors else []
        items += [("around", self.around)] if self.around is not None else []
        items += [("context", self.context)] if self.context != DEFAULT_CONTEXT else []
        items += [("wrap", 0)] if not self.wrap else []
        items += [("ts", 0)] if not self.timestamps else []
        return items

    def query(self, **changes: Any) -> str:
        """The query string of this view of the log with ``changes`` applied ("" or "?...")."""
        text = urlencode(replace(self, **changes).params())
        return f"?{text}" if text else ""

    def tail_query(self) -> str:
        """The filters the live tail keeps (it appends only lines that match)."""
        return urlencode(
            replace(self, wrap=True, timestamps=True, context=DEFAULT_CONTEXT).params()
        )


def parse_log_filters(params: QueryDict) -> LogFilters:
    """Values that make no sense are dropped (the page still answers), never a 500."""
    node = params.get("nodeId", "").strip()
    context = _int(params.get("context"), low=0, high=MAX_CONTEXT)
    return LogFilters(
        levels=[level for level in LOG_LEVELS if level in params.getlist("level")],
        text=params.get("logq", "").strip()[:MAX_TEXT],
        node=node if len(node) <= 200 else "",
        errors=params.get("errors") in ("1", "on", "true"),
        around=_int(params.get("around"), low=1, high=10**15),
        context=DEFAULT_CONTEXT if context is None else context,
        wrap=params.get("wrap") != "0",
        timestamps=params.get("ts") != "0",
    )


@dataclass
class LogView:
    lines: list[LogLine]
    first_kept: int
    last_seq: int
    # ``around`` pointed at a line that was trimmed away, or one not written (yet).
    trimmed: int | None = None
    unknown: int | None = None
    matches: int = 0

    @property
    def cap(self) -> int:
        return settings.RUN_LOG_CAP


def _matches(line: LogLine, filters: LogFilters, *, levels: list[str]) -> bool:
    return (
        (not levels or line.level in levels)
        and (not filters.node or line.node_id == filters.node)
        and (not filters.text or filters.text.casefold() in line.message.casefold())
    )


def filtered_lines(run: Run, filters: LogFilters, *, after: int | None = None) -> list[LogLine]:
    """The kept lines the level, node and text filters select, oldest first; one query."""
    lines = selectors.run_log_lines(run=run)
    if after is not None:
        lines = lines.filter(seq__gt=after)
    if filters.levels:
        lines = lines.filter(level__in=filters.levels)
    if filters.node:
        lines = lines.filter(node_id=filters.node)
    if filters.text:
        lines = lines.filter(message__icontains=filters.text)
    return list(lines)


def log_view(run: Run, filters: LogFilters) -> LogView:
    """The lines the panel shows, each marked ``is_match``/``is_focus``; one query at most."""
    first_kept = max(1, run.log_seq - settings.RUN_LOG_CAP + 1)
    view = LogView(lines=[], first_kept=first_kept, last_seq=run.log_seq)
    if filters.around is not None:
        if filters.around < first_kept:
            view.trimmed = filters.around
            return view
        if filters.around > run.log_seq:
            view.unknown = filters.around
            return view
        low, high = filters.around - filters.context, filters.around + filters.context
        view.lines = list(selectors.run_log_lines(run=run).filter(seq__gte=low, seq__lte=high))
        if not any(line.seq == filters.around for line in view.lines):
            # Within the numbers a run keeps, but gone: the runner replaced its whole log.
            view.trimmed, view.lines = filters.around, []
            return view
        for line in view.lines:
            line.is_focus = line.seq == filters.around
            line.is_match = line.is_focus or (
                filters.narrows and _matches(line, filters, levels=filters.levels)
            )
        view.matches = 1
        return view
    if filters.errors:
        every = list(selectors.run_log_lines(run=run))
        hits = [
            index
            for index, line in enumerate(every)
            if _matches(line, filters, levels=[LogLevel.ERROR])
        ]
        shown: set[int] = set()
        for index in hits:
            shown.update(range(index - filters.context, index + filters.context + 1))
        hit_set = set(hits)
        for index, line in enumerate(every):
            line.is_match = index in hit_set
            line.is_focus = False
        view.lines = [line for index, line in enumerate(every) if index in shown]
        view.matches = len(hits)
        return view
    view.lines = filtered_lines(run, filters)
    view.matches = len(view.lines)
    return view


def first_error(run: Run) -> LogLine | None:
    """The oldest kept ``error`` line of the run; one query."""
    return selectors.run_log_lines(run=run).filter(level=LogLevel.ERROR).first()


def log_links(run_url: str, filters: LogFilters, first: LogLine | None) -> dict[str, str]:
    """The panel's links, each keeping the rest of the view: the toggles, the first error and
    the whole log (the filters without the context modes)."""
    links = {
        "wrap": run_url + filters.query(wrap=not filters.wrap),
        "timestamps": run_url + filters.query(timestamps=not filters.timestamps),
        "whole": run_url + filters.query(around=None, errors=False),
    }
    if first is not None:
        links["first_error"] = run_url + filters.query(around=first.seq, errors=False)
    return links
