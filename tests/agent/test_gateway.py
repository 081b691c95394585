"""``elt-gateway`` as a real process, running real child processes against a real server."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from eltrunner import RunnerClient
from eltrunner.agent import READ_CHUNK, Agent, Job
from eltrunner.config import AgentConfig, PipelineConfig
from runs.models import LogLine, Run, RunStatus
from tests.agent.test_client import stored_messages, wait_for
from tests.factories import PipelineFactory, RunFactory

AGENT = Path(sys.executable).parent / "elt-gateway"
PY = sys.executable


class Gateway:
    """One ``elt-gateway`` process; its stderr (JSON lines) goes to a file."""

    def __init__(self, tmp_path: Path, url: str, token: str, config: str):
        self.config_path = tmp_path / "gateway.toml"
        self.config_path.write_text(textwrap.dedent(config))
        self.stderr_path = tmp_path / "gateway.stderr"
        env = {**os.environ, "ELT_GATEWAY_TOKEN": token}
        self.process = subprocess.Popen(
            [str(AGENT), "--url", url, "--config", str(self.config_path)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(self.stderr_path, "wb"),  # noqa: SIM115 - lives with the process
        )

    def events(self) -> list[dict]:
        events = []
        for line in self.stderr_path.read_text().splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                events.append({"event": line, "raw": True})
        return events

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def write_job(tmp_path: Path, name: str, source: str) -> str:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return f"{PY} {path}"


def config(tmp_path: Path, pipelines: dict[str, str], **agent: object) -> str:
    settings = {"poll_interval": 0.5, "cancel_grace": 2, **agent}
    lines = [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    for name, body in pipelines.items():
        lines.append(f"[pipelines.{name}]")
        lines.append(textwrap.dedent(body).strip())
    return "\n".join(lines) + "\n"


def final(run: Run, timeout: float = 30) -> Run:
    wait_for(lambda: Run.objects.get(pk=run.pk).is_final, timeout=timeout)
    return Run.objects.get(pk=run.pk)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) is gone for our purposes.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def gateways(server, edge, tmp_path):
    started = []

    def start(config_text: str, *, token: str | None = None) -> Gateway:
        gateway = Gateway(tmp_path, server.url, token or edge[1], config_text)
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        gateway.stop()


PRINTS = """
    import os, sys, time
    print("starting run", os.environ["ELT_RUN_ID"], "of", os.environ["ELT_PIPELINE"],
          "trigger", os.environ["ELT_TRIGGER"], flush=True)
    print("token visible:", "ELT_GATEWAY_TOKEN" in os.environ, flush=True)
    print("::node id=n_source type=source.postgres status=running", flush=True)
    for i in range(300):
        print(f"row batch {i}")
    print("::telemetry rowsLoaded=5000 bytesLoaded=1200000 progress=40 currentPhase=load",
          flush=True)
    print("a warning on stderr", file=sys.stderr, flush=True)
    print("ERROR: a line that says it is an error", file=sys.stderr, flush=True)
    print("INFO a line that says it is info", file=sys.stderr, flush=True)
    print("::warn disk almost full", flush=True)
    print("::node id=n_source type=source.postgres status=succeeded rows=5000", flush=True)
    print("::telemetry progress=100 rowsLoaded=9000", flush=True)
"""


def test_a_job_that_prints_succeeds_with_its_lines_telemetry_and_nodes(
    gateways, edge_pipeline, tmp_path
):
    command = write_job(tmp_path, "prints", PRINTS)
    run = RunFactory(pipeline=edge_pipeline, trigger_type="schedule")
    gateways(config(tmp_path, {"crm_to_warehouse": f"command = {json.dumps(command)}"}))
    run = final(run)
    assert run.status == RunStatus.SUCCEEDED, run.error_summary
    lines = list(LogLine.objects.filter(run=run).order_by("seq").values_list("level", "message"))
    assert lines[0] == (
        "info",
        f"starting run {run.public_id} of crm_to_warehouse trigger schedule",
    )
    assert ("info", "token visible: False") in lines
    assert [m for _, m in lines if m.startswith("row batch")] == [
        f"row batch {i}" for i in range(300)
    ]
    assert ("warn", "a warning on stderr") in lines
    assert ("error", "ERROR: a line that says it is an error") in lines
    assert ("info", "INFO a line that says it is info") in lines
    assert ("warn", "disk almost full") in lines
    assert not [m for _, m in lines if m.startswith("::")]
    assert run.telemetry_summary == {
        "rowsLoaded": 9000,
        "bytesLoaded": 1200000,
        "progress": 100,
        "currentPhase": "load",
    }
    assert [s.values for s in run.samples.order_by("seq")] == [
        {"rowsLoaded": 5000, "bytesLoaded": 1200000, "progress": 40},
        {"progress": 100, "rowsLoaded": 9000},
    ]
    node = run.nodes.get()
    assert (node.node_id, node.type, node.status) == ("n_source", "source.postgres", "succeeded")
    assert node.metrics == {"rows": 5000}
    assert node.started_at is not None and node.finished_at is not None


@contextlib.contextmanager
def claimed_job(server, token: str, run: Run, tmp_path: Path):
    """A ``Job`` of the agent for a run it has claimed, with no child: a test feeds its reader."""
    pipeline = PipelineConfig(name="crm_to_warehouse", command="true")
    with RunnerClient(server.url, token, timeout=5) as client:
        assert client.claim(run.public_id)
        agent = Agent(AgentConfig(path=tmp_path, pipelines={pipeline.name: pipeline}), client)
        job = Job(agent, {"id": run.public_id}, pipeline)
        yield job
        job.reporter.finish("succeeded", timeout=30)
        job.reporter.close()


def stored(run: Run) -> list[tuple[str, str]]:
    return list(LogLine.objects.filter(run=run).order_by("seq").values_list("level", "message"))


def test_lines_already_waiting_in_both_pipes_are_stored_stdout_first(
    server, edge, edge_pipeline, tmp_path
):
    """Both streams' lines wait in their pipes before the reader runs: stdout's go first.

    A partial last line with no newline is stored too, and a CRLF loses its CR.
    """
    run = RunFactory(pipeline=edge_pipeline)
    with claimed_job(server, edge[1], run, tmp_path) as job:
        (out_r, out_w), (err_r, err_w) = os.pipe(), os.pipe()
        os.write(out_w, b"written first, to stdout\r\nstdout again\n")
        os.write(err_w, b"written second, to stderr\nno newline at the end")
        os.close(out_w)
        os.close(err_w)
        stdout, stderr = os.fdopen(out_r, "rb"), os.fdopen(err_r, "rb")
        # stderr is registered first: the order comes from the stream, not from the dict.
        job._read({err_r: (stderr, "stderr"), out_r: (stdout, "stdout")})
        assert stdout.closed and stderr.closed
        assert job.last_stderr == "no newline at the end"
    assert stored(run) == [
        ("info", "written first, to stdout"),
        ("info", "stdout again"),
        ("warn", "written second, to stderr"),
        ("warn", "no newline at the end"),
    ]


def test_a_line_that_takes_many_reads_is_stored_whole(server, edge, edge_pipeline, tmp_path):
    """A line longer than a read, sent in small writes, and a character split between writes."""
    run = RunFactory(pipeline=edge_pipeline)
    long_line = b"start " + b"x" * (3 * READ_CHUNK)
    pieces = [long_line[i : i + 4096] for i in range(0, len(long_line), 4096)]
    pieces += [b"\nnext line\ncaf\xc3", b"\xa9\n", b"\n\n", b"last"]
    with claimed_job(server, edge[1], run, tmp_path) as job:
        (out_r, out_w), (err_r, err_w) = os.pipe(), os.pipe()
        os.close(err_w)

        def write() -> None:
            for piece in pieces:
                os.write(out_w, piece)
                time.sleep(0.001)
            os.close(out_w)

        writer = threading.Thread(target=write)
        writer.start()
        streams = {
            out_r: (os.fdopen(out_r, "rb"), "stdout"),
            err_r: (os.fdopen(err_r, "rb"), "stderr"),
        }
        job._read(streams)
        writer.join()
    lines = stored(run)
    assert [message for _, message in lines[1:]] == ["next line", "café", "last"]
    first = lines[0][1]
    # Stored as one line, cut at the message limit.
    assert first.startswith("start xxxx") and first.endswith("[truncated]")
    assert set(first[len("start ") : -len(" … [truncated]")]) == {"x"}


def test_a_failing_job_fails_with_its_last_error_line_or_summary_or_exit_code(
    gateways, edge, tmp_path
):
    jobs = {
        "last_error": write_job(
            tmp_path,
            "last_error",
            """
            print("::error first problem")
            print("::error connection to postgres://u:hunter2@db/x refused")
            raise SystemExit(1)
            """,
        ),
        "with_summary": write_job(
            tmp_path,
            "with_summary",
            """
            print("::error detail")
            print("::summary Load failed: table orders is locked")
            raise SystemExit(3)
            """,
        ),
        "quiet": write_job(tmp_path, "quiet", "raise SystemExit(7)"),
        "traceback": write_job(tmp_path, "traceback", "raise ValueError('no such column: id')"),
    }
    runs = {}
    for name in jobs:
        runs[name] = RunFactory(pipeline=PipelineFactory(name=name, default_gateway=edge[0]))
    pipelines = {name: f"command = {json.dumps(command)}" for name, command in jobs.items()}
    gateways(config(tmp_path, pipelines))
    results = {name: final(run) for name, run in runs.items()}
    assert {name: run.status for name, run in results.items()} == dict.fromkeys(
        jobs, RunStatus.FAILED
    )
    assert results["last_error"].error_summary == (
        "connection to postgres://u:[REDACTED]@db/x refused"
    )
    assert results["with_summary"].error_summary == "Load failed: table orders is locked"
    assert results["quiet"].error_summary == "exit code 7"
    assert results["traceback"].error_summary == "exit code 1: ValueError: no such column: id"


def test_a_job_past_its_timeout_is_killed_and_failed(gateways, edge_pipeline, tmp_path):
    pid_file = tmp_path / "hang.pid"
    command = write_job(
        tmp_path,
        "hang",
        f"""
        import os, signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # only SIGKILL stops it
        open({str(pid_file)!r}, "w").write(str(os.getpid()))
        print("hanging", flush=True)
        time.sleep(600)
        """,
    )
    run = RunFactory(pipeline=edge_pipeline)
    started = time.monotonic()
    gateways(
        config(tmp_path, {"crm_to_warehouse": f"command = {json.dumps(command)}\ntimeout = 2"})
    )
    run = final(run, timeout=40)
    elapsed = time.monotonic() - started
    assert run.status == RunStatus.FAILED
    assert run.error_summary == "timed out after 2s; the job was killed"
    assert not alive(int(pid_file.read_text()))
    # Timeout 2 s, grace 2 s, a poll of 0.5 s and reporting: well under 15 s.
    assert elapsed < 15, elapsed


@pytest.mark.parametrize("obeys_sigterm", [True, False])
def test_a_cancel_mid_run_stops_the_child_within_the_grace_period(
    gateways, edge_pipeline, tmp_path, key_client_for_server, obeys_sigterm
):
    pid_file = tmp_path / "child.pid"
    command = write_job(
        tmp_path,
        "long",
        f"""
        import os, signal, subprocess, sys, time
        if not {obeys_sigterm}:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        # A grandchild in the same process group must go too.
        grandchild = subprocess.Popen(["sleep", "600"])
        open({str(pid_file)!r}, "w").write(f"{{os.getpid()}} {{grandchild.pid}}")
        for i in range(100000):
            print(f"working {{i}}", flush=True)
            time.sleep(0.2)
        """,
    )
    run = RunFactory(pipeline=edge_pipeline)
    gateways(config(tmp_path, {"crm_to_warehouse": f"command = {json.dumps(command)}"}))
    wait_for(lambda: pid_file.exists() and LogLine.objects.filter(run=run).exists())
    pids = [int(pid) for pid in pid_file.read_text().split()]
    assert all(alive(pid) for pid in pids)
    response = key_client_for_server.delete(f"/api/runs/{run.public_id}")
    assert response.status_code == 200, response.text
    asked = time.monotonic()
    wait_for(lambda: not any(alive(pid) for pid in pids), timeout=20)
    gone_after = time.monotonic() - asked
    # The cancel is seen within the poll interval (0.5 s) or the next PATCH answer; the
    # child gets SIGTERM, and SIGKILL after the 2 s grace when it ignores SIGTERM.
    assert gone_after < (1.5 if obeys_sigterm else 4.0), gone_after
    run = final(run)
    assert run.status == RunStatus.CANCELED
    assert stored_messages(run)[-1] == "job stopped (canceled)"


def test_a_pipeline_the_config_does_not_name_is_left_queued_and_logged_once(
    gateways, edge, tmp_path
):
    unknown = RunFactory(pipeline=PipelineFactory(name="not_here", default_gateway=edge[0]))
    known_command = write_job(tmp_path, "ok", "print('ok')")
    known = RunFactory(pipeline=PipelineFactory(name="here", default_gateway=edge[0]))
    gateway = gateways(config(tmp_path, {"here": f"command = {json.dumps(known_command)}"}))
    assert final(known).status == RunStatus.SUCCEEDED
    time.sleep(2.5)  # several more polls
    assert Run.objects.get(pk=unknown.pk).status == RunStatus.QUEUED
    notices = [
        event
        for event in gateway.events()
        if event.get("runId") == unknown.public_id and "left queued" in event["event"]
    ]
    assert len(notices) == 1, notices
    assert notices[0]["pipeline"] == "not_here"


def test_a_refused_token_is_fatal_with_a_clear_message(gateways, edge_pipeline, tmp_path):
    gateway = gateways(
        config(tmp_path, {"crm_to_warehouse": 'command = "true"'}), token="gwt_revoked-or-wrong"
    )
    assert gateway.process.wait(timeout=30) == 3
    messages = [event["event"] for event in gateway.events()]
    assert any("refused the gateway token" in message for message in messages), messages


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("concurrency = 2\n[pipelines.a\ncommand = 'x'\n", 2, "not valid TOML"),
        ("concurrency = 2\n", 1, "names no pipeline"),
        ("poll_interval = 1\n\n[pipelines.a]\ncommand = 'x'\ncolour = 'red'\n", 5, "colour"),
        ("[pipelines.a]\ncwd = '/tmp'\n\n[pipelines.b]\ncommand = 'x'\n", 1, "needs command"),
        ("[pipelines.a]\ncommand = 'x'\n\n[pipelines.b]\ncommand = 'a \"b'\n", 5, "split"),
        ("[pipelines.a]\ncommand = 'x'\ntimeout = -1\n", 3, "timeout"),
        ("concurrency = 0\n[pipelines.a]\ncommand = 'x'\n", 1, "concurrency"),
    ],
)
def test_a_bad_config_is_refused_with_its_file_and_line(tmp_path, text, line, reason):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    result = subprocess.run(
        [str(AGENT), "--url", "http://127.0.0.1:9", "--token", "gwt_x", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    event = json.loads(result.stderr.strip().splitlines()[-1])
    assert event["file"] == str(path) and event["line"] == line, event
    assert f"{path}:{line}:" in event["event"] and reason in event["event"], event


def test_sigterm_drains_then_a_second_sigterm_cancels(gateways, edge_pipeline, tmp_path):
    command = write_job(
        tmp_path,
        "slow",
        """
        import time
        for i in range(int(__import__("os").environ["STEPS"])):
            print(f"step {i}", flush=True)
            time.sleep(0.5)
        """,
    )
    first = RunFactory(pipeline=edge_pipeline)
    gateway = gateways(
        config(
            tmp_path,
            {"crm_to_warehouse": f'command = {json.dumps(command)}\nenv = {{ STEPS = "6" }}'},
        )
    )
    wait_for(lambda: LogLine.objects.filter(run=first).exists())
    gateway.process.send_signal(signal.SIGTERM)
    second = RunFactory(pipeline=edge_pipeline)
    assert final(first).status == RunStatus.SUCCEEDED
    assert gateway.process.wait(timeout=20) == 0
    assert Run.objects.get(pk=second.pk).status == RunStatus.QUEUED

    # A new agent takes the queued run; two SIGTERMs cancel it.
    gateway = gateways(
        config(
            tmp_path,
            {"crm_to_warehouse": f'command = {json.dumps(command)}\nenv = {{ STEPS = "600" }}'},
        )
    )
    wait_for(lambda: LogLine.objects.filter(run=second).exists())
    gateway.process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    gateway.process.send_signal(signal.SIGTERM)
    assert final(second).status == RunStatus.CANCELED
    assert gateway.process.wait(timeout=20) == 0


def test_the_server_away_mid_run_loses_and_duplicates_no_line(
    gateways, server, edge_pipeline, tmp_path
):
    command = write_job(
        tmp_path,
        "steady",
        """
        import time
        for i in range(400):
            print(f"line {i}", flush=True)
            time.sleep(0.02)
        """,
    )
    run = RunFactory(pipeline=edge_pipeline)
    gateway = gateways(config(tmp_path, {"crm_to_warehouse": f"command = {json.dumps(command)}"}))
    wait_for(lambda: LogLine.objects.filter(run=run).count() >= 20)
    server.stop()
    time.sleep(5)
    server.start()
    run = final(run, timeout=60)
    assert run.status == RunStatus.SUCCEEDED
    assert stored_messages(run) == [f"line {i}" for i in range(400)]
    assert any("retrying" in event["event"] for event in gateway.events())


def test_a_quiet_job_is_reported_every_third_of_the_lease(gateways, edge, edge_pipeline, tmp_path):
    edge[0].__class__.objects.filter(pk=edge[0].pk).update(lease_seconds=3)
    command = write_job(
        tmp_path, "quiet", "import time\nprint('start', flush=True)\ntime.sleep(5)\n"
    )
    run = RunFactory(pipeline=edge_pipeline)
    gateways(config(tmp_path, {"crm_to_warehouse": f"command = {json.dumps(command)}"}))
    wait_for(lambda: LogLine.objects.filter(run=run).exists())
    reports = set()
    deadline = time.monotonic() + 3.8
    while time.monotonic() < deadline:
        reports.add(Run.objects.get(pk=run.pk).last_report_at)
        time.sleep(0.1)
    # A 3 s lease: a report at least every second while the job says nothing.
    assert len(reports) >= 3, sorted(reports)
    assert final(run).status == RunStatus.SUCCEEDED
