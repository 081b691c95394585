"""``elt-gateway``: poll the control plane for a gateway's runs and run their commands.

::

    elt-gateway --url https://runs.example.com --token gwt_... --config gateway.toml

Each claimed run's command runs as a child process in its own process group, with the run in
its environment (``ELT_RUN_ID``, ``ELT_PIPELINE``, ``ELT_PIPELINE_ID``, ``ELT_TRIGGER``,
``ELT_TRIGGER_JSON``, ``ELT_GATEWAY``); its output lines become the run's log (see
``eltrunner.protocol``), its exit code the run's status. SIGTERM stops claiming and lets the
running jobs finish; a second SIGTERM cancels them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import random
import selectors
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from typing import IO, Any

from eltrunner import __version__
from eltrunner.client import RunnerClient, RunnerError, Stopped, TokenRefused
from eltrunner.config import AgentConfig, ConfigError, PipelineConfig, load_config
from eltrunner.protocol import FINAL_NODE_STATUSES, Log, Node, Summary, Telemetry, parse_line
from eltrunner.reporter import RunReporter, utc_now_iso

logger = logging.getLogger("eltrunner.agent")

EXIT_OK = 0
EXIT_CONFIG = 2
EXIT_TOKEN_REFUSED = 3
DEFAULT_LEASE_SECONDS = 600
SECRET_ENV = ("ELT_GATEWAY_TOKEN",)
READ_CHUNK = 65536


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ``ts``, ``level``, ``event`` and the record's ``fields``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def log(level: int, event: str, **fields: Any) -> None:
    logger.log(level, event, extra={"fields": fields})


class Job:
    """One claimed run: its child process, its output readers and its reporter."""

    def __init__(self, agent: Agent, run: dict[str, Any], pipeline: PipelineConfig):
        self.agent = agent
        self.run = run
        self.run_id: str = run["id"]
        self.pipeline = pipeline
        self.process: subprocess.Popen[bytes] | None = None
        self.cancel_reason: str | None = None
        self.last_error: str | None = None
        self.summary_text: str | None = None
        self.last_stderr: str | None = None
        self.outcome: str | None = None
        self._cancel = threading.Event()
        self._kill_started: float | None = None
        self.reporter = RunReporter(
            agent.client,
            self.run_id,
            flush_interval=agent.config.flush_interval,
            batch_lines=agent.config.batch_lines,
            max_buffered_lines=agent.config.max_buffered_lines,
            heartbeat_interval=agent.lease_seconds / 3,
            on_status=self._on_status,
        )
        self.thread = threading.Thread(target=self._main, name=f"job-{self.run_id}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def cancel(self, reason: str) -> None:
        """Stop the child: SIGTERM to its process group, SIGKILL after the grace period."""
        if not self._cancel.is_set():
            self.cancel_reason = reason
            self._cancel.set()

    def kill_now(self) -> None:
        """SIGKILL the child's whole process group (the agent is exiting)."""
        self._signal_group(signal.SIGKILL)

    def _on_status(self, status: str) -> None:
        if status == "cancel_requested":
            self.cancel("canceled")

    # -- the child --------------------------------------------------------------------------

    def _environment(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if key not in SECRET_ENV}
        # Python jobs then print line by line through the pipe instead of in 8 KiB blocks;
        # a pipeline's own env may say otherwise.
        env.setdefault("PYTHONUNBUFFERED", "1")
        env.update(self.pipeline.env)
        trigger = self.run.get("trigger") or {}
        gateway = self.run.get("gateway") or {}
        env.update(
            {
                "ELT_RUN_ID": self.run_id,
                "ELT_PIPELINE": self.pipeline.name,
                "ELT_PIPELINE_ID": str(self.run.get("pipelineId", "")),
                "ELT_TRIGGER": str(trigger.get("type", "")),
                "ELT_TRIGGER_JSON": json.dumps(trigger),
                "ELT_GATEWAY": str(gateway.get("name", "")),
                "ELT_CONTROL_PLANE_URL": self.agent.client.base_url,
            }
        )
        return env

    def _read(self, streams: dict[int, tuple[IO[bytes], str]]) -> None:
        """Read the child's stdout and stderr in one thread, close to the order they were written.

        Both pipes are watched by one selector. Every pipe that holds data is read before any
        line is stored, stdout first, so lines already waiting in both pipes are stored stdout
        first. Two pipes keep no time, so the order across them is a best effort: a job whose
        lines must keep an exact order writes both to one stream (``2>&1``).
        """
        # Each pipe's bytes after its last newline, as chunks: a line is joined once, when its
        # newline comes, however many reads it took.
        partial: dict[int, list[bytes]] = {fd: [] for fd in streams}
        with selectors.DefaultSelector() as selector:
            for fd in streams:
                selector.register(fd, selectors.EVENT_READ)
            while selector.get_map():
                ready = sorted(
                    (key.fd for key, _ in selector.select()),
                    key=lambda fd: streams[fd][1] != "stdout",
                )
                for fd, chunk in [(fd, os.read(fd, READ_CHUNK)) for fd in ready]:
                    name = streams[fd][1]
                    if not chunk:
                        selector.unregister(fd)
                        self._lines(b"".join(partial.pop(fd)), name)
                        streams[fd][0].close()
                        continue
                    end = chunk.rfind(b"\n")
                    if end < 0:
                        partial[fd].append(chunk)
                        continue
                    complete = b"".join([*partial[fd], chunk[:end]])
                    partial[fd] = [chunk[end + 1 :]]
                    for raw in complete.split(b"\n"):
                        self._lines(raw, name)

    def _lines(self, raw: bytes, name: str) -> None:
        line = raw.decode("utf-8", "replace").rstrip("\r")
        if line:
            event = parse_line(line, stream=name)
            if name == "stderr" and isinstance(event, Log):
                self.last_stderr = event.message
            self._handle(event)

    def _handle(self, event: Log | Telemetry | Node | Summary) -> None:
        reporter = self.reporter
        if isinstance(event, Log):
            if event.level == "error":
                self.last_error = event.message
            reporter.log(event.level, event.message)
        elif isinstance(event, Telemetry):
            if event.summary:
                reporter.summary(event.summary)
            if event.sample:
                reporter.sample(event.sample)
        elif isinstance(event, Node):
            fields = dict(event.fields)
            if fields["status"] == "running":
                fields.setdefault("startedAt", utc_now_iso())
            elif fields["status"] in FINAL_NODE_STATUSES:
                fields.setdefault("finishedAt", utc_now_iso())
            reporter.node(event.node_id, **fields)
        elif isinstance(event, Summary):
            self.summary_text = event.text

    def _signal_group(self, sig: int) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)

    def _main(self) -> None:
        started = time.monotonic()
        try:
            self.outcome = self._execute(started)
        except Exception:  # a bug here must still close the run and free the slot
            logger.exception("job crashed", extra={"fields": {"runId": self.run_id}})
            self._signal_group(signal.SIGKILL)
            self.reporter.finish("failed", error_summary="gateway agent error", timeout=30)
        finally:
            self.reporter.close(timeout=5)
            self.agent.job_done(self)

    def _execute(self, started: float) -> str:
        pipeline = self.pipeline
        log(logging.INFO, "job starting", runId=self.run_id, pipeline=pipeline.name)
        try:
            self.process = subprocess.Popen(  # noqa: S603 - the operator's own command
                pipeline.argv(),
                cwd=pipeline.cwd,
                env=self._environment(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            message = f"could not start {pipeline.argv()[0]!r}: {exc.strerror or exc}"
            self.reporter.log("error", message)
            log(logging.ERROR, "job failed to start", runId=self.run_id, error=message)
            return self._finish("failed", message)
        assert self.process.stdout is not None and self.process.stderr is not None
        streams = {
            self.process.stdout.fileno(): (self.process.stdout, "stdout"),
            self.process.stderr.fileno(): (self.process.stderr, "stderr"),
        }
        reader = threading.Thread(target=self._read, args=(streams,), daemon=True)
        reader.start()
        timed_out = False
        while self.process.poll() is None:
            now = time.monotonic()
            if pipeline.timeout is not None and not timed_out and now - started > pipeline.timeout:
                timed_out = True
                self.cancel("timeout")
            if self.reporter.error is not None and not self._cancel.is_set():
                self.cancel("refused")
            if self._cancel.is_set():
                if self._kill_started is None:
                    self._kill_started = now
                    log(
                        logging.INFO,
                        "stopping job",
                        runId=self.run_id,
                        reason=self.cancel_reason,
                        pid=self.process.pid,
                    )
                    self._signal_group(signal.SIGTERM)
                elif now - self._kill_started >= self.agent.config.cancel_grace:
                    self._signal_group(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=0.1)
        returncode = self.process.returncode
        if self._cancel.is_set():
            # Whatever the leader left behind in its group goes too.
            self._signal_group(signal.SIGKILL)
        reader.join(timeout=5)
        log(
            logging.INFO,
            "job exited",
            runId=self.run_id,
            returncode=returncode,
            seconds=round(time.monotonic() - started, 3),
        )
        if self.cancel_reason == "timeout":
            message = f"timed out after {pipeline.timeout:g}s; the job was killed"
            self.reporter.log("error", message)
            return self._finish("failed", message)
        if self.cancel_reason in ("canceled", "agent stopping"):
            self.reporter.log("warn", f"job stopped ({self.cancel_reason})")
            return self._finish("canceled", None)
        if self.cancel_reason == "refused":
            return "refused"
        if returncode == 0:
            return self._finish("succeeded", None)
        if returncode < 0:
            default = f"killed by signal {signal.Signals(-returncode).name}"
        else:
            default = f"exit code {returncode}"
        if self.last_stderr:
            # A traceback's last line ("ValueError: ...") says more than the code alone.
            default = f"{default}: {self.last_stderr}"
        return self._finish("failed", self.summary_text or self.last_error or default)

    def _finish(self, status: str, error_summary: str | None) -> str:
        answer = self.reporter.finish(status, error_summary=error_summary)
        fields = {"runId": self.run_id, "status": status}
        if answer is None:
            error = self.reporter.error
            log(logging.ERROR, "run not closed", **fields, error=str(error))
            return "refused"
        log(logging.INFO, "run finished", **fields, serverStatus=answer.get("status"))
        return status


class Agent:
    """The poll loop: claim what the config can run, watch for cancels, keep ``concurrency``."""

    def __init__(self, config: AgentConfig, client: RunnerClient):
        self.config = config
        self.client = client
        self.lease_seconds: float = DEFAULT_LEASE_SECONDS
        self.jobs: dict[str, Job] = {}
        self.draining = False
        self.exit_code = EXIT_OK
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop_poll = threading.Event()
        self._logged_unknown: set[str] = set()
        self._logged_foreign_cancel: set[str] = set()
        self._signals = 0
        self._give_up_at: float | None = None

    # -- signals ----------------------------------------------------------------------------

    def on_signal(self, signum: int, frame: Any) -> None:
        self._signals += 1
        if self._signals == 1:
            self.draining = True
            log(logging.INFO, "draining: no new runs; running jobs may finish", signal=signum)
        elif self._signals == 2:
            log(logging.WARNING, "stopping: canceling running jobs", signal=signum)
            # Reports of the cancels get a bounded time: the control plane may be going away
            # at the same moment (a stack shut down as a whole).
            bound = self.config.cancel_grace + 20
            self._give_up_at = time.monotonic() + bound
            timer = threading.Timer(bound, self._stop_poll.set)
            timer.daemon = True
            timer.start()
            for job in self.running_jobs():
                job.cancel("agent stopping")
        else:
            log(logging.WARNING, "exiting now", signal=signum)
            self._give_up_at = time.monotonic()
            self._stop_poll.set()
        if not self.running_jobs():
            self._stop_poll.set()
        self._wake.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.on_signal)
        signal.signal(signal.SIGINT, self.on_signal)

    # -- jobs -------------------------------------------------------------------------------

    def running_jobs(self) -> list[Job]:
        with self._lock:
            return list(self.jobs.values())

    def job_done(self, job: Job) -> None:
        if isinstance(job.reporter.error, TokenRefused):
            self.fatal(job.reporter.error)
        with self._lock:
            self.jobs.pop(job.run_id, None)
            idle = not self.jobs
        if self.draining and idle:
            self._stop_poll.set()
        self._wake.set()

    def fatal(self, error: TokenRefused) -> None:
        if self.exit_code == EXIT_OK:
            log(
                logging.CRITICAL,
                "the control plane refused the gateway token: check --token / "
                "ELT_GATEWAY_TOKEN (it may be revoked or expired)",
                error=str(error),
            )
        self.exit_code = EXIT_TOKEN_REFUSED
        for job in self.running_jobs():
            job.cancel("refused")
        self._stop_poll.set()
        self._wake.set()

    # -- the loop ---------------------------------------------------------------------------

    def poll_once(self) -> None:
        try:
            answer = self.client.poll(stop=self._stop_poll)
        except Stopped:
            return
        except TokenRefused as error:
            self.fatal(error)
            return
        except RunnerError as error:
            log(logging.ERROR, "poll refused", error=str(error))
            return
        lease = (answer.get("meta") or {}).get("gateway", {}).get("leaseSeconds")
        if isinstance(lease, int | float) and lease > 0:
            self.lease_seconds = lease
        for run in answer.get("data", []):
            self.consider(run)

    def consider(self, run: dict[str, Any]) -> None:
        run_id, status = run.get("id"), run.get("status")
        with self._lock:
            job = self.jobs.get(run_id)
            busy = len(self.jobs)
        if status == "cancel_requested":
            if job is not None:
                job.cancel("canceled")
            elif run_id not in self._logged_foreign_cancel:
                self._logged_foreign_cancel.add(run_id)
                log(
                    logging.INFO,
                    "cancel requested for a run this agent is not running",
                    runId=run_id,
                )
            return
        if status != "queued" or job is not None:
            return
        name = run.get("pipelineName")
        pipeline = self.config.pipelines.get(name)
        if pipeline is None:
            if run_id not in self._logged_unknown:
                self._logged_unknown.add(run_id)
                log(
                    logging.WARNING,
                    "left queued: the config names no such pipeline",
                    runId=run_id,
                    pipeline=name,
                    config=str(self.config.path),
                )
            return
        if self.draining or busy >= self.config.concurrency or self.exit_code != EXIT_OK:
            return
        try:
            claimed = self.client.claim(run_id)
        except Stopped:
            return
        except TokenRefused as error:
            self.fatal(error)
            return
        except RunnerError as error:
            log(logging.WARNING, "claim refused", runId=run_id, error=str(error))
            return
        if claimed is None:
            log(logging.INFO, "claimed by another runner", runId=run_id)
            return
        job = Job(self, {**run, **claimed}, pipeline)
        with self._lock:
            self.jobs[run_id] = job
        log(logging.INFO, "claimed", runId=run_id, pipeline=name)
        job.start()

    def run(self) -> int:
        log(
            logging.INFO,
            "elt-gateway starting",
            version=__version__,
            url=self.client.base_url,
            config=str(self.config.path),
            pipelines=sorted(self.config.pipelines),
            concurrency=self.config.concurrency,
        )
        while True:
            if self.exit_code != EXIT_OK and not self.running_jobs():
                break
            if self.draining and not self.running_jobs():
                break
            if self._give_up_at is not None and time.monotonic() >= self._give_up_at:
                jobs = self.running_jobs()
                log(logging.WARNING, "gave up waiting for jobs", runIds=[j.run_id for j in jobs])
                for job in jobs:
                    job.kill_now()
                break
            self._wake.clear()
            if self.exit_code == EXIT_OK:
                self.poll_once()
            interval = self.config.poll_interval * random.uniform(0.8, 1.2)
            if self._give_up_at is not None:
                interval = max(0.0, min(interval, self._give_up_at - time.monotonic()))
            self._wake.wait(interval)
        log(logging.INFO, "elt-gateway stopped", exitCode=self.exit_code)
        return self.exit_code


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="elt-gateway",
        description="Run the pipelines of one gateway: poll the control plane, run each claimed "
        "run's command, report its logs, telemetry and outcome.",
    )
    parser.add_argument(
        "--url", required=True, help="the control plane, e.g. https://runs.example.com"
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("ELT_GATEWAY_TOKEN"),
        help="the gateway token (gwt_...); default: $ELT_GATEWAY_TOKEN",
    )
    parser.add_argument("--config", required=True, help="gateway.toml")
    parser.add_argument(
        "--log-level", default=os.environ.get("ELT_GATEWAY_LOG_LEVEL", "INFO"), help="INFO"
    )
    parser.add_argument("--version", action="version", version=f"elt-gateway {__version__}")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("eltrunner")
    root.handlers[:] = [handler]
    root.setLevel(args.log_level.upper())
    root.propagate = False
    if not args.token:
        log(logging.CRITICAL, "no gateway token: pass --token or set ELT_GATEWAY_TOKEN")
        return EXIT_CONFIG
    try:
        config = load_config(args.config)
    except ConfigError as error:
        log(logging.CRITICAL, f"config refused: {error}", file=str(error.path), line=error.line)
        return EXIT_CONFIG

    def on_retry(what: str, reason: str, wait: float) -> None:
        log(
            logging.WARNING,
            "control plane unavailable; retrying",
            request=what,
            reason=reason,
            retryIn=round(wait, 2),
        )

    client = RunnerClient(args.url, args.token, on_retry=on_retry)
    agent = Agent(config, client)
    agent.install_signal_handlers()
    try:
        return agent.run()
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
