"""Racing runners, through HTTP, with real threads and their own database connections."""

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from rest_framework.test import APIClient

from runs.models import LogLine, Run, RunStatus
from tests.factories import RunFactory

pytestmark = pytest.mark.django_db(transaction=True)


def agent(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def in_threads(count: int, work):
    """Run ``work(index)`` in ``count`` threads that start together; return their results."""
    barrier = threading.Barrier(count)

    def runner(index):
        try:
            barrier.wait(timeout=30)
            return work(index)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(runner, range(count)))


def test_racing_appends_keep_every_line_in_commit_order(gateway_token, run):
    url = f"/api/agent/runs/{run.public_id}"

    def append(index):
        client = agent(gateway_token)
        codes = []
        for line in range(25):
            response = client.patch(
                url,
                {"appendLog": {"level": "info", "message": f"t{index}-{line}"}},
                format="json",
                HTTP_PREFER="return=minimal",
            )
            codes.append(response.status_code)
        return codes

    results = in_threads(16, append)
    assert all(code == 200 for codes in results for code in codes)
    lines = list(LogLine.objects.filter(run=run).order_by("seq").values_list("seq", "message"))
    assert [seq for seq, _ in lines] == list(range(1, 401))
    for index in range(16):
        mine = [int(m.split("-")[1]) for _, m in lines if m.startswith(f"t{index}-")]
        assert mine == list(range(25)), f"thread {index} lines out of order: {mine}"


def test_racing_appends_past_the_cap_keep_the_newest_500(gateway_token, run):
    url = f"/api/agent/runs/{run.public_id}"

    def append(index):
        client = agent(gateway_token)
        for line in range(65):
            client.patch(
                url,
                {"appendLog": {"level": "info", "message": f"{index}-{line}"}},
                format="json",
                HTTP_PREFER="return=minimal",
            )

    in_threads(8, append)
    run.refresh_from_db()
    assert run.log_seq == 520
    body = agent(gateway_token).get(url).json()
    assert len(body["logEntries"]) == 500
    newest = LogLine.objects.filter(run=run).order_by("-seq")[:500]
    assert [entry["message"] for entry in body["logEntries"]] == [
        line.message for line in reversed(newest)
    ]


def test_sixteen_claimers_of_one_run_give_exactly_one_winner(gateway_token, run):
    url = f"/api/agent/runs/{run.public_id}"

    def claim(_):
        return agent(gateway_token).patch(url, {"status": "running"}, format="json").status_code

    codes = Counter(in_threads(16, claim))
    assert codes == {200: 1, 409: 15}
    assert Run.objects.get(pk=run.pk).status == RunStatus.RUNNING


def test_two_hundred_queued_runs_claimed_by_eight_gateways_each_once(gateway, gateway_token):
    runs = [RunFactory(gateway=gateway) for _ in range(200)]

    def worker(_):
        client = agent(gateway_token)
        won = []
        for _attempt in range(100):
            queued = [
                item["id"]
                for item in client.get("/api/agent/runs").json()["data"]
                if item["status"] == "queued"
            ]
            if not queued:
                break
            for run_id in queued:
                response = client.patch(
                    f"/api/agent/runs/{run_id}",
                    {"status": "running"},
                    format="json",
                    HTTP_PREFER="return=minimal",
                )
                assert response.status_code in (200, 409)
                if response.status_code == 200:
                    won.append(run_id)
        return won

    winners = [run_id for won in in_threads(8, worker) for run_id in won]
    assert sorted(winners) == sorted(run.public_id for run in runs)
    assert Run.objects.filter(status=RunStatus.RUNNING).count() == 200
