"""The Python client (``eltrunner``) against a real server: claim, batches, retries, outages."""

import subprocess
import sys
import threading
import time

import pytest

from eltrunner import RetryPolicy, RunnerClient, RunReporter, TokenRefused
from runs.models import LogLine, Run, RunStatus, TelemetrySample
from tests.agent.conftest import ResponseDroppingProxy, Server
from tests.factories import RunFactory

FAST_RETRY = RetryPolicy(initial=0.05, maximum=0.5)


def stored_messages(run: Run) -> list[str]:
    return list(LogLine.objects.filter(run=run).order_by("seq").values_list("message", flat=True))


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError("condition not met in time")


@pytest.fixture
def client(server, edge):
    with RunnerClient(server.url, edge[1], retry=FAST_RETRY, timeout=5) as client:
        yield client


def test_importable_without_django():
    code = (
        "import sys, eltrunner, eltrunner.agent; "
        "assert not [m for m in sys.modules if m.split('.')[0] == 'django'], 'django imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_poll_lists_queued_runs_with_pipeline_name_and_lease(client, edge, edge_pipeline):
    run = RunFactory(pipeline=edge_pipeline)
    answer = client.poll()
    assert [(item["id"], item["pipelineName"], item["status"]) for item in answer["data"]] == [
        (run.public_id, "crm_to_warehouse", "queued")
    ]
    assert answer["meta"]["gateway"] == {
        "id": edge[0].public_id,
        "name": "edge-agent",
        "leaseSeconds": edge[0].lease_seconds,
    }


def test_claim_race_has_one_winner_and_409_is_none(server, edge, edge_pipeline):
    run = RunFactory(pipeline=edge_pipeline)
    results = []
    clients = [RunnerClient(server.url, edge[1], retry=FAST_RETRY) for _ in range(4)]
    threads = [
        threading.Thread(target=lambda c=c: results.append(c.claim(run.public_id))) for c in clients
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [result for result in results if result is not None]
    assert len(winners) == 1 and winners[0]["status"] == "running"
    assert "logEntries" not in winners[0], "Prefer: return=minimal"
    assert results.count(None) == 3
    for c in clients:
        c.close()


def test_a_refused_token_raises_token_refused(server, edge_pipeline):
    client = RunnerClient(server.url, "gwt_not-a-real-token", retry=FAST_RETRY)
    with client, pytest.raises(TokenRefused):
        client.poll()


def test_reporter_streams_in_batches_in_order(client, edge_pipeline):
    run = RunFactory(pipeline=edge_pipeline)
    assert client.claim(run.public_id)
    reporter = RunReporter(client, run.public_id, flush_interval=0.5, batch_lines=200)
    for i in range(450):
        reporter.log("info", f"line {i}")
        if i % 50 == 0:
            reporter.sample({"rowsLoaded": i})
    reporter.summary({"rowsLoaded": 449, "currentPhase": "load"})
    reporter.node("n_load", type="destination.warehouse", status="running")
    answer = reporter.finish("succeeded", timeout=30)
    reporter.close()
    assert answer is not None and answer["status"] == "succeeded"
    assert stored_messages(run) == [f"line {i}" for i in range(450)]
    # 450 lines as batches, not a request a line.
    assert reporter.requests <= 6, reporter.requests
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert run.telemetry_summary == {"rowsLoaded": 449, "currentPhase": "load"}
    assert TelemetrySample.objects.filter(run=run).count() == 9
    # The node the job left running is closed with its run.
    assert run.nodes.get().status == "canceled"


def test_lines_go_out_within_the_flush_interval_without_asking(client, edge_pipeline):
    run = RunFactory(pipeline=edge_pipeline)
    client.claim(run.public_id)
    reporter = RunReporter(client, run.public_id, flush_interval=0.3, heartbeat_interval=600)
    time.sleep(0.5)  # the thread is now asleep until the heartbeat
    logged = time.monotonic()
    reporter.log("info", "one quiet line")
    wait_for(lambda: stored_messages(run) == ["one quiet line"], timeout=10)
    assert time.monotonic() - logged < 3
    reporter.close()


def test_a_quiet_run_is_reported_on_every_heartbeat(client, edge_pipeline):
    run = RunFactory(pipeline=edge_pipeline)
    client.claim(run.public_id)
    Run.objects.filter(pk=run.pk).update(last_report_at=None)
    reporter = RunReporter(client, run.public_id, heartbeat_interval=0.3)
    seen = set()

    def reports() -> bool:
        seen.add(Run.objects.get(pk=run.pk).last_report_at)
        return len(seen - {None}) >= 3

    wait_for(reports, timeout=10)
    reporter.close()


def test_reporter_sees_a_cancel_in_a_patch_answer(client, key_client_for_server, edge_pipeline):
    run = RunFactory(pipeline=edge_pipeline)
    client.claim(run.public_id)
    statuses = []
    reporter = RunReporter(client, run.public_id, flush_interval=0.1, on_status=statuses.append)
    reporter.log("info", "working")
    reporter.flush(10)
    assert key_client_for_server.delete(f"/api/runs/{run.public_id}").status_code == 200
    reporter.log("info", "still working")
    reporter.flush(10)
    assert reporter.status == "cancel_requested"
    assert statuses[-1] == "cancel_requested"
    assert reporter.finish("canceled", timeout=10)["status"] == "canceled"


def test_server_killed_and_restarted_mid_run_loses_and_duplicates_no_line(
    server, edge, edge_pipeline
):
    run = RunFactory(pipeline=edge_pipeline)
    client = RunnerClient(server.url, edge[1], retry=RetryPolicy(initial=0.1, maximum=1.0))
    assert client.claim(run.public_id)
    reporter = RunReporter(client, run.public_id, flush_interval=0.2, batch_lines=50)
    for i in range(100):
        reporter.log("info", f"line {i}")
    assert reporter.flush(20)
    server.stop()  # SIGKILL: requests in flight are cut off
    for i in range(100, 400):
        reporter.log("info", f"line {i}")
        if i % 20 == 0:
            time.sleep(0.05)  # batches are taken and retried while the server is away
    time.sleep(2)
    assert reporter.lines_sent == 100
    server.start()
    answer = reporter.finish("succeeded", timeout=60)
    reporter.close()
    client.close()
    assert answer is not None and answer["status"] == "succeeded"
    assert stored_messages(run) == [f"line {i}" for i in range(400)]


def test_over_the_buffer_cap_the_oldest_are_dropped_and_the_run_says_how_many(
    server, edge, edge_pipeline
):
    run = RunFactory(pipeline=edge_pipeline)
    client = RunnerClient(server.url, edge[1], retry=RetryPolicy(initial=0.1, maximum=0.5))
    assert client.claim(run.public_id)
    server.stop()
    reporter = RunReporter(
        client, run.public_id, flush_interval=1.0, batch_lines=200, max_buffered_lines=50
    )
    for i in range(120):
        reporter.log("info", f"line {i}")
    time.sleep(1.5)
    server.start()
    assert reporter.flush(30)
    reporter.close()
    client.close()
    messages = stored_messages(run)
    assert messages[0].startswith("[eltrunner] dropped 70 log lines")
    assert messages[1:] == [f"line {i}" for i in range(70, 120)]


@pytest.fixture
def throttled_server(transactional_db, tmp_path):
    server = Server(tmp_path, workers=1, env={"THROTTLE_GATEWAY": "3/sec"})
    server.start()
    yield server
    server.stop()


def test_429_is_retried_after_retry_after(throttled_server, edge, edge_pipeline):
    run = RunFactory(pipeline=edge_pipeline)
    retries = []
    client = RunnerClient(
        throttled_server.url,
        edge[1],
        retry=FAST_RETRY,
        on_retry=lambda what, reason, wait: retries.append((reason, wait)),
    )
    client.claim(run.public_id)
    for i in range(6):
        client.patch(run.public_id, {"appendLog": {"level": "info", "message": f"l{i}"}})
    client.close()
    assert stored_messages(run) == [f"l{i}" for i in range(6)]
    throttled = [wait for reason, wait in retries if reason == "HTTP 429"]
    assert throttled, retries
    # The wait is the server's Retry-After (whole seconds), not the 50 ms backoff.
    assert all(wait >= 1 for wait in throttled)


def test_a_batch_whose_answer_is_lost_is_retried_and_stored_once(server, edge, edge_pipeline):
    proxy = ResponseDroppingProxy(server.port)
    run = RunFactory(pipeline=edge_pipeline)
    client = RunnerClient(proxy.url, edge[1], retry=FAST_RETRY, timeout=5)
    assert client.claim(run.public_id)
    reporter = RunReporter(client, run.public_id, flush_interval=0.2, batch_lines=10)
    proxy.drop_patches = 3  # three answers in a row never arrive
    for i in range(40):
        reporter.log("info", f"line {i}")
    assert reporter.flush(30)
    answer = reporter.finish("succeeded", timeout=30)
    reporter.close()
    client.close()
    proxy.close()
    assert proxy.dropped == 3
    assert answer is not None and answer["status"] == "succeeded"
    assert stored_messages(run) == [f"line {i}" for i in range(40)]


def test_a_refused_report_still_stores_its_lines_and_says_what_was_refused(client, edge_pipeline):
    run = RunFactory(pipeline=edge_pipeline)
    client.claim(run.public_id)
    reporter = RunReporter(client, run.public_id, flush_interval=0.2)
    reporter.log("info", "before")
    reporter.summary({"progress": 140})  # the server refuses progress above 100
    reporter.log("info", "after")
    answer = reporter.finish("succeeded", timeout=30)
    reporter.close()
    assert answer is not None and answer["status"] == "succeeded"
    messages = stored_messages(run)
    assert messages[:2] == ["before", "after"]
    assert messages[2].startswith("[eltrunner] the server refused part of a report")
    assert "telemetrySummary.progress" in messages[2]
    run.refresh_from_db()
    assert run.telemetry_summary == {} and reporter.refused_batches == 1
