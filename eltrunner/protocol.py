"""The line protocol a job speaks on stdout/stderr, like GitHub Actions' workflow commands.

::

    ::telemetry rowsLoaded=5000 bytesLoaded=1200000 progress=40 currentPhase=load
    ::node id=n_source type=source.postgres status=running
    ::error <message>        a log line at level error (and the run's error summary if it fails)
    ::warn <message>         a log line at level warn
    ::info <message>         a log line at level info
    ::summary <text>         the error summary to report if the run fails

Any other line is a log line: ``info`` from stdout, ``warn`` from stderr, unless it starts with
a level word (``ERROR:``, ``WARN``, ``[info]``, ``level=error`` ...).
"""

from __future__ import annotations

import math
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

NODE_STATUSES = {
    "pending",
    "queued",
    "running",
    "retrying",
    "succeeded",
    "failed",
    "canceled",
    "cancelled",
    "skipped",
}
FINAL_NODE_STATUSES = {"succeeded", "failed", "canceled", "skipped"}  # after parse_node
SUMMARY_STRINGS = {"currentPhase": 200, "currentResource": 500}
COUNTERS = {"rowsLoaded", "bytesLoaded"}
MAX_COUNTER = 2**63 - 1
# ``[error]`` and ``level=error`` in any case; a bare word only in capitals, so that a line
# such as "Error rows are skipped" stays at its stream's level.
LEVEL_PREFIX = re.compile(
    r"^\s*(?:\[(?P<bracketed>(?i:debug|info|notice|warn|warning|error|critical|fatal))\]"
    r"|(?P<word>DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|CRITICAL|FATAL)\b"
    r"|(?i:level)=(?P<logfmt>(?i:debug|info|notice|warn|warning|error|critical|fatal))\b)"
)
LEVELS = {
    "debug": "info",
    "info": "info",
    "notice": "info",
    "warn": "warn",
    "warning": "warn",
    "error": "error",
    "critical": "error",
    "fatal": "error",
}
KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$")


@dataclass
class Log:
    level: str
    message: str


@dataclass
class Telemetry:
    summary: dict[str, Any] = field(default_factory=dict)
    sample: dict[str, int | float] = field(default_factory=dict)


@dataclass
class Node:
    node_id: str
    fields: dict[str, Any]


@dataclass
class Summary:
    text: str


Event = Log | Telemetry | Node | Summary


def _pairs(text: str) -> list[tuple[str, str]]:
    try:
        words = shlex.split(text)
    except ValueError:
        words = text.split()
    pairs = []
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not KEY.match(key):
            raise ValueError(f"expected key=value, got {word!r}")
        pairs.append((key, value))
    return pairs


def _scalar(value: str) -> int | float | str:
    try:
        return int(value)
    except ValueError:
        pass
    try:
        number = float(value)
    except ValueError:
        return value[:1000]
    return number if math.isfinite(number) else value


def parse_telemetry(text: str) -> Telemetry:
    """``k=v ...``: numbers go to a sample and the summary; text only to the summary."""
    telemetry = Telemetry()
    pairs = _pairs(text)
    if not pairs:
        raise ValueError("no key=value pairs")
    if len(pairs) > 32:
        raise ValueError("at most 32 keys")
    for key, raw in pairs:
        value = _scalar(raw)
        if key in SUMMARY_STRINGS:
            telemetry.summary[key] = raw[: SUMMARY_STRINGS[key]]
            continue
        if key in COUNTERS and not (isinstance(value, int) and 0 <= value <= MAX_COUNTER):
            raise ValueError(f"{key} must be a whole number >= 0")
        if key == "progress" and not (isinstance(value, int | float) and 0 <= value <= 100):
            raise ValueError("progress must be a number from 0 to 100")
        if isinstance(value, int) and abs(value) > MAX_COUNTER:
            value = float(value)
        telemetry.summary[key] = value
        if isinstance(value, int | float):
            telemetry.sample[key] = value
    return telemetry


def parse_node(text: str) -> Node:
    """``id=.. type=.. status=.. [retries=N] [other=metric ...]``."""
    values = dict(_pairs(text))
    node_id = values.pop("id", "") or values.pop("nodeId", "")
    if not node_id or len(node_id) > 200:
        raise ValueError("id=<node id> is required (at most 200 characters)")
    status = values.pop("status", "")
    if status not in NODE_STATUSES:
        raise ValueError(f"status must be one of {', '.join(sorted(NODE_STATUSES))}")
    fields: dict[str, Any] = {"status": "canceled" if status == "cancelled" else status}
    if "type" in values:
        fields["type"] = values.pop("type")[:200]
    if "retries" in values:
        retries = _scalar(values.pop("retries"))
        if not isinstance(retries, int) or not 0 <= retries < 2**31:
            raise ValueError("retries must be a whole number >= 0")
        fields["retries"] = retries
    if values:
        fields["metrics"] = {key: _scalar(value) for key, value in list(values.items())[:64]}
    return Node(node_id=node_id, fields=fields)


def parse_line(line: str, *, stream: str) -> Event:
    """One line of a job's output as what it reports. A malformed command is logged as a warn
    line that says why, so a job's mistake is visible in its run rather than lost."""
    if line.startswith("::"):
        command, _, rest = line[2:].partition(" ")
        rest = rest.strip()
        try:
            if command == "telemetry":
                return parse_telemetry(rest)
            if command == "node":
                return parse_node(rest)
        except ValueError as exc:
            return Log("warn", f"malformed ::{command} line ({exc}): {line}")
        if command in ("error", "warn", "info"):
            return Log(command, rest)
        if command == "warning":
            return Log("warn", rest)
        if command == "summary":
            return Summary(rest)
    match = LEVEL_PREFIX.match(line)
    if match:
        word = match.group("bracketed") or match.group("word") or match.group("logfmt")
        return Log(LEVELS[word.lower()], line)
    return Log("info" if stream == "stdout" else "warn", line)
