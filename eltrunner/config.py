"""``gateway.toml``: which command runs each pipeline, and how the agent behaves.

::

    concurrency = 4          # runs at once (default 4)
    poll_interval = 5        # seconds between polls, jittered by ±20% (default 5)
    cancel_grace = 10        # seconds between SIGTERM and SIGKILL (default 10)
    max_buffered_lines = 100000  # per run, while the control plane is unreachable

    [pipelines.crm_to_warehouse]
    command = "dlt pipeline crm run"   # split like a shell would (shlex), run without a shell
    cwd = "/srv/pipelines/crm"         # relative paths are relative to this file
    env = { DLT_LOG_LEVEL = "INFO" }
    timeout = 3600                     # seconds; past it the job is killed and the run failed
    shell = false                      # true: run `command` with /bin/sh -c
"""

from __future__ import annotations

import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eltrunner.reporter import MAX_BATCH_LINES

AGENT_KEYS = {
    "concurrency",
    "poll_interval",
    "cancel_grace",
    "max_buffered_lines",
    "flush_interval",
    "batch_lines",
    "pipelines",
}
PIPELINE_KEYS = {"command", "cwd", "env", "timeout", "shell"}
HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(?:#.*)?$")


class ConfigError(Exception):
    """A config the agent refuses, with the file and line at fault."""

    def __init__(self, path: Path, line: int, message: str):
        super().__init__(f"{path}:{line}: {message}")
        self.path = path
        self.line = line


@dataclass(frozen=True)
class PipelineConfig:
    name: str
    command: str | list[str]
    cwd: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None
    shell: bool = False

    def argv(self) -> list[str]:
        """The child's argv: ``/bin/sh -c command`` only when ``shell = true``."""
        if self.shell:
            command = self.command if isinstance(self.command, str) else shlex.join(self.command)
            return ["/bin/sh", "-c", command]
        if isinstance(self.command, list):
            return list(self.command)
        return shlex.split(self.command)


@dataclass(frozen=True)
class AgentConfig:
    path: Path
    pipelines: dict[str, PipelineConfig]
    concurrency: int = 4
    poll_interval: float = 5.0
    cancel_grace: float = 10.0
    max_buffered_lines: int = 100_000
    flush_interval: float = 1.0
    batch_lines: int = 200


def _normalize_table(name: str) -> str:
    parts = [part.strip().strip("\"'") for part in name.split(".")]
    return ".".join(parts)


class _Lines:
    """Finds the line of a table or key in the TOML source (tomllib keeps no positions)."""

    def __init__(self, text: str):
        self.lines = text.splitlines()

    def of(self, table: str | None = None, key: str | None = None) -> int:
        current = None
        header_line = 1
        key_pattern = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=") if key else None
        for number, line in enumerate(self.lines, start=1):
            match = HEADER.match(line)
            if match:
                current = _normalize_table(match.group(1))
                if table is not None and current == table:
                    header_line = number
                    if key_pattern is None:
                        return number
                continue
            if key_pattern and current == table and key_pattern.match(line):
                return number
            if key_pattern and table is None and current is None and key_pattern.match(line):
                return number
            dotted = f"{table}.{key}" if table and key else None
            if dotted and current is None and re.match(rf"^\s*{re.escape(dotted)}\s*=", line):
                return number
        return header_line


def _number(value: Any, *, positive: bool = True) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return value > 0 if positive else value >= 0


def load_config(path: str | Path) -> AgentConfig:
    """Read and check ``path``; ``ConfigError`` names the file and line of the first fault."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(path, 0, f"cannot read the config: {exc.strerror or exc}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # Python 3.14 has exc.lineno; 3.13 says "(at line N, column M)" in the message.
        found = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        line = getattr(exc, "lineno", None) or (int(found.group(1)) if found else 1)
        message = getattr(exc, "msg", None) or str(exc)
        raise ConfigError(path, line, f"not valid TOML: {message}") from exc
    lines = _Lines(text)

    def fail(message: str, table: str | None = None, key: str | None = None) -> ConfigError:
        return ConfigError(path, lines.of(table, key), message)

    for key in data:
        if key not in AGENT_KEYS:
            raise fail(f"unknown setting {key!r} (known: {', '.join(sorted(AGENT_KEYS))})", key=key)
    settings: dict[str, Any] = {}
    for key, kind, positive in [
        ("concurrency", int, True),
        ("poll_interval", float, True),
        ("cancel_grace", float, False),
        ("max_buffered_lines", int, True),
        ("flush_interval", float, True),
        ("batch_lines", int, True),
    ]:
        if key not in data:
            continue
        value = data[key]
        if not _number(value, positive=positive) or (kind is int and not isinstance(value, int)):
            wanted = "a positive integer" if kind is int else "a number of seconds"
            raise fail(f"{key} must be {wanted}", key=key)
        settings[key] = value
    if "batch_lines" in settings and settings["batch_lines"] > MAX_BATCH_LINES:
        raise fail(f"batch_lines must be at most {MAX_BATCH_LINES}", key="batch_lines")

    tables = data.get("pipelines")
    if not isinstance(tables, dict) or not tables:
        raise fail(
            "names no pipeline: add a [pipelines.<name>] table with a command",
            table="pipelines" if "pipelines" in data else None,
        )
    pipelines = {}
    for name, table in tables.items():
        where = f"pipelines.{name}"
        if not isinstance(table, dict):
            raise fail(f"[{where}] must be a table", table="pipelines", key=name)
        for key in table:
            if key not in PIPELINE_KEYS:
                raise fail(
                    f"unknown key {key!r} in [{where}] (known: {', '.join(sorted(PIPELINE_KEYS))})",
                    table=where,
                    key=key,
                )
        command = table.get("command")
        if isinstance(command, list):
            if not command or not all(isinstance(part, str) for part in command):
                raise fail("command must be a non-empty list of strings", where, "command")
        elif isinstance(command, str):
            if not command.strip():
                raise fail("command is empty", where, "command")
            if not table.get("shell", False):
                try:
                    shlex.split(command)
                except ValueError as exc:
                    raise fail(f"command cannot be split: {exc}", where, "command") from exc
        else:
            raise fail(f'[{where}] needs command = "..."', where, "command" if command else None)
        shell = table.get("shell", False)
        if not isinstance(shell, bool):
            raise fail("shell must be true or false", where, "shell")
        cwd = table.get("cwd")
        if cwd is not None:
            if not isinstance(cwd, str) or not cwd:
                raise fail("cwd must be a path", where, "cwd")
            cwd = (path.parent / cwd).resolve() if not Path(cwd).is_absolute() else Path(cwd)
        env = table.get("env", {})
        if not isinstance(env, dict):
            raise fail("env must be a table of names to strings", where, "env")
        clean_env = {}
        for key, value in env.items():
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise fail(f"env.{key} must be a string or a number", where, "env")
            clean_env[str(key)] = str(value)
        timeout = table.get("timeout")
        if timeout is not None and not _number(timeout):
            raise fail("timeout must be a positive number of seconds", where, "timeout")
        pipelines[name] = PipelineConfig(
            name=name,
            command=command,
            cwd=cwd,
            env=clean_env,
            timeout=float(timeout) if timeout is not None else None,
            shell=shell,
        )
    return AgentConfig(path=path, pipelines=pipelines, **settings)
