"""Baselines, badges, ETAs and comparison through the API, from runs with exact durations."""

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from runs import stats
from runs.models import Run
from tests.factories import PipelineFactory, RunFactory
from tests.runs.judgement import T0, iso, node, report_run

pytestmark = pytest.mark.django_db


def five_usual_runs(agent_client, pipeline, *, rows=1000, size=10_000):
    return [
        report_run(
            agent_client,
            pipeline,
            start=T0 + timedelta(hours=index),
            seconds=100,
            rows=rows,
            size=size,
        )
        for index in range(5)
    ]


def test_a_run_of_250s_after_five_of_100s_reads_2_5x_slower(key_client, agent_client, pipeline):
    five_usual_runs(agent_client, pipeline)
    slow = report_run(
        agent_client, pipeline, start=T0 + timedelta(hours=6), seconds=250, rows=400, size=34_000
    )

    body = key_client.get(f"/api/runs/{slow.public_id}").json()

    assert body["baseline"] == {
        "durationP50Seconds": 100.0,
        "durationP90Seconds": 100.0,
        "rowsLoadedMedian": 1000.0,
        "bytesLoadedMedian": 10000.0,
        "durationRatio": 2.5,
        "rowsRatio": 0.4,
        "bytesRatio": 3.4,
        "sampleSize": 5,
        "nodeDurationMediansSeconds": {},
        "badges": ["2.5x slower than usual", "rows -60%", "bytes +3.4x"],
    }
    assert body["badges"] == ["2.5x slower than usual", "rows -60%", "bytes +3.4x"]
    assert body["eta"] is None


def test_usual_runs_carry_no_badge_and_are_judged_without_themselves(
    key_client, agent_client, pipeline
):
    usual = five_usual_runs(agent_client, pipeline)
    report_run(agent_client, pipeline, start=T0 + timedelta(hours=6), seconds=250)

    body = key_client.get(f"/api/runs/{usual[0].public_id}").json()

    # The other four 100 s runs and the 250 s one: p90 interpolates between the last two ranks.
    assert body["baseline"]["sampleSize"] == 5
    assert body["baseline"]["durationP50Seconds"] == 100.0
    assert body["baseline"]["durationP90Seconds"] == pytest.approx(190.0)
    assert body["badges"] == []


def test_fewer_than_five_succeeded_runs_make_no_baseline(key_client, agent_client, pipeline):
    for index in range(4):
        report_run(agent_client, pipeline, start=T0 + timedelta(hours=index), seconds=100)
    slow = report_run(agent_client, pipeline, start=T0 + timedelta(hours=5), seconds=900)

    body = key_client.get(f"/api/runs/{slow.public_id}").json()

    assert body["baseline"] is None
    assert body["badges"] == []


def test_the_baseline_is_the_newest_twenty_succeeded_runs(key_client, agent_client, pipeline):
    for index in range(5):  # old and slow: outside the newest twenty
        report_run(agent_client, pipeline, start=T0 + timedelta(minutes=index), seconds=1000)
    for index in range(20):
        report_run(agent_client, pipeline, start=T0 + timedelta(hours=1, minutes=index), seconds=60)
    report_run(agent_client, pipeline, start=T0 + timedelta(hours=2), seconds=5, status="failed")

    body = key_client.get(f"/api/pipelines/{pipeline.public_id}").json()
    latest = Run.objects.filter(pipeline=pipeline).order_by("-created_at").first()
    detail = key_client.get(f"/api/runs/{latest.public_id}").json()

    assert detail["baseline"]["sampleSize"] == 20
    assert detail["baseline"]["durationP90Seconds"] == 60.0
    assert body["id"] == pipeline.public_id


def test_three_failures_in_a_row_are_badged(key_client, agent_client, pipeline):
    report_run(agent_client, pipeline, start=T0, seconds=10)
    failed = [
        report_run(
            agent_client,
            pipeline,
            start=T0 + timedelta(hours=index + 1),
            seconds=10,
            status="failed",
            error="boom",
        )
        for index in range(3)
    ]

    second = key_client.get(f"/api/runs/{failed[1].public_id}").json()
    third = key_client.get(f"/api/runs/{failed[2].public_id}").json()

    assert second["badges"] == []
    assert third["badges"] == ["failed 3 times in a row"]


def running_with(agent_client, pipeline, *, started_ago: float, progress=None):
    run = RunFactory(pipeline=pipeline, created_at=timezone.now() - timedelta(seconds=started_ago))
    started = timezone.now() - timedelta(seconds=started_ago)
    body = {"status": "running", "startedAt": iso(started)}
    if progress is not None:
        body["telemetrySummary"] = {"progress": progress}
    response = agent_client.patch(f"/api/agent/runs/{run.public_id}", body, format="json")
    assert response.status_code == 200
    return run, started


def test_eta_from_the_progress_rate(key_client, agent_client, pipeline):
    five_usual_runs(agent_client, pipeline)
    run, started = running_with(agent_client, pipeline, started_ago=120, progress=25)

    before = timezone.now()
    detail = key_client.get(f"/api/runs/{run.public_id}").json()
    listed = key_client.get("/api/runs", {"status": "running"}).json()["data"]
    after = timezone.now()

    # 25% done after the elapsed time: the whole run takes four times that, whatever the
    # baseline says (480 s, plus four times the moments the requests took).
    earliest = started + 4 * (before - started)
    latest = started + 4 * (after - started)
    assert detail["eta"]["basis"] == "progress"
    assert earliest <= _parse(detail["eta"]["at"]) <= latest
    assert earliest - started >= timedelta(seconds=480)
    assert listed[0]["id"] == run.public_id
    assert listed[0]["eta"]["basis"] == "progress"
    assert earliest <= _parse(listed[0]["eta"]["at"]) <= latest


def test_eta_from_the_baseline_without_progress(key_client, agent_client, pipeline):
    five_usual_runs(agent_client, pipeline)
    run, started = running_with(agent_client, pipeline, started_ago=30)

    detail = key_client.get(f"/api/runs/{run.public_id}").json()

    assert detail["eta"]["basis"] == "baseline"
    assert abs(_parse(detail["eta"]["at"]) - (started + timedelta(seconds=100))) < timedelta(
        seconds=1
    )
    finished = key_client.get("/api/runs", {"status": "succeeded"}).json()["data"]
    assert {item["eta"] for item in finished} == {None}


def test_no_eta_without_baseline_or_progress(key_client, agent_client, pipeline):
    run, _ = running_with(agent_client, pipeline, started_ago=30)

    assert key_client.get(f"/api/runs/{run.public_id}").json()["eta"] is None


def test_the_list_gives_each_running_run_the_eta_of_its_judgement(
    key_client, agent_client, pipeline, gateway
):
    five_usual_runs(agent_client, pipeline)
    on_progress, _ = running_with(agent_client, pipeline, started_ago=120, progress=25)
    on_baseline, _ = running_with(agent_client, pipeline, started_ago=30)
    new = PipelineFactory(name="new_pipeline", default_gateway=gateway)
    unjudged, _ = running_with(agent_client, new, started_ago=30)
    now = timezone.now()
    running = list(Run.objects.filter(status="running"))

    etas = stats.running_etas(
        [stats.Running(run.pk, run.pipeline_id, run.started_at, run.progress) for run in running],
        now=now,
    )
    listed = key_client.get("/api/runs", {"status": "running"}).json()["data"]

    judged = stats.judge_runs(running, now=now)
    assert etas == {run.pk: judged[run.pk].eta for run in running}
    assert etas[on_progress.pk].basis == "progress"
    assert etas[on_baseline.pk].basis == "baseline"
    assert etas[unjudged.pk] is None
    bases = {item["id"]: item["eta"] and item["eta"]["basis"] for item in listed}
    assert bases == {
        on_progress.public_id: "progress",
        on_baseline.public_id: "baseline",
        unjudged.public_id: None,
    }


def test_a_run_that_succeeded_since_it_was_read_is_left_out_of_its_own_baseline(
    agent_client, pipeline
):
    usual = five_usual_runs(agent_client, pipeline)
    started = timezone.now() - timedelta(seconds=30)
    outside = Run.objects.filter(status="succeeded").exclude(pk=usual[0].pk).first()

    etas = stats.running_etas(
        [
            # Read while running, succeeded since: with itself left out, four runs are too
            # few for a baseline. Another run of the pipeline still has one.
            stats.Running(usual[0].pk, pipeline.pk, started, None),
            stats.Running(outside.pk + 1000, pipeline.pk, started, None),
        ]
    )

    assert etas[usual[0].pk] is None
    assert etas[outside.pk + 1000].basis == "baseline"


def _parse(value: str):
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# Pipeline stats


def test_pipeline_stats_over_the_window(key_client, agent_client, pipeline):
    now = timezone.now()
    durations = [60, 120, 180, 240]
    for index, seconds in enumerate(durations):
        report_run(
            agent_client,
            pipeline,
            start=now - timedelta(days=2, hours=index),
            seconds=seconds,
            rows=100 * (index + 1),
            size=1000 * (index + 1),
        )
    report_run(agent_client, pipeline, start=now - timedelta(days=1), seconds=5, status="failed")
    report_run(agent_client, pipeline, start=now - timedelta(days=20), seconds=9000)
    newest = report_run(
        agent_client, pipeline, start=now - timedelta(hours=1), seconds=5, status="canceled"
    )

    week = key_client.get(f"/api/pipelines/{pipeline.public_id}", {"window": "7d"}).json()
    month = key_client.get(f"/api/pipelines/{pipeline.public_id}").json()

    assert week["stats"] == {
        "window": "7d",
        "runs": 6,
        "succeeded": 4,
        "failed": 1,
        "canceled": 1,
        "successRate": 0.8,
        "durationP50Seconds": 150.0,
        # percentile_cont: 180 + 0.7 * (240 - 180)
        "durationP90Seconds": pytest.approx(222.0),
        "rowsLoadedMedian": 250.0,
        "bytesLoadedMedian": 2500.0,
        "lastRun": {
            "id": newest.public_id,
            "status": "canceled",
            "finishedAt": week["stats"]["lastRun"]["finishedAt"],
        },
    }
    assert _parse(week["stats"]["lastRun"]["finishedAt"]) == newest.finished_at
    assert month["stats"]["window"] == "30d"
    assert month["stats"]["runs"] == 7
    assert month["stats"]["succeeded"] == 5
    assert month["stats"]["durationP50Seconds"] == 180.0


@pytest.mark.parametrize("window", ["24h", "1d", "90d", "", "30D"])
def test_other_stats_windows_are_refused(key_client, pipeline, window):
    response = key_client.get(f"/api/pipelines/{pipeline.public_id}", {"window": window})

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["window"]
    assert "7d, 30d" in response.json()["errors"]["window"][0]


def test_a_pipeline_without_runs_has_empty_stats(key_client, pipeline):
    stats = key_client.get(f"/api/pipelines/{pipeline.public_id}").json()["stats"]

    assert stats["runs"] == 0
    assert stats["successRate"] is None
    assert stats["durationP50Seconds"] is None
    assert stats["lastRun"] is None


# Comparison


def test_compare_with_the_previous_succeeded_run_by_default(key_client, agent_client, pipeline):
    before = report_run(
        agent_client,
        pipeline,
        start=T0,
        seconds=100,
        rows=1000,
        size=5000,
        nodes=[node("extract", T0, 40, rows=1000), node("load", T0, 50), node("old", T0, 5)],
    )
    report_run(agent_client, pipeline, start=T0 + timedelta(hours=1), seconds=20, status="failed")
    start = T0 + timedelta(hours=2)
    run = report_run(
        agent_client,
        pipeline,
        start=start,
        seconds=250,
        rows=500,
        size=5000,
        status="failed",
        error="Snowflake: warehouse is suspended\nretry later",
        nodes=[
            node("extract", start, 40, rows=500),
            node("load", start, 150),
            node("new", start, 9),
        ],
    )

    body = key_client.get(f"/api/runs/{run.public_id}/compare").json()

    assert body["basis"] == "previous-succeeded"
    assert body["with"]["id"] == before.public_id
    assert body["samePipeline"] is True
    assert body["warning"] is None
    assert body["statusChanged"] is True
    assert body["ratios"] == {"durationRatio": 2.5, "rowsRatio": 0.5, "bytesRatio": 1.0}
    assert body["run"]["firstError"] == "Snowflake: warehouse is suspended"
    assert body["with"]["firstError"] is None
    nodes = {item["nodeId"]: item for item in body["nodes"]}
    assert [item["nodeId"] for item in body["nodes"]] == ["extract", "load", "new", "old"]
    assert nodes["extract"]["change"] is None
    assert nodes["extract"]["run"]["rowsLoaded"] == 500
    assert nodes["extract"]["with"]["rowsLoaded"] == 1000
    assert nodes["load"]["change"] == "slower"
    assert nodes["load"]["durationRatio"] == 3.0
    assert nodes["new"]["change"] == "new"
    assert nodes["new"]["with"] is None
    assert nodes["old"]["change"] == "missing"
    assert nodes["old"]["run"] is None


def test_compare_with_a_picked_run_of_another_pipeline_says_so(key_client, agent_client, pipeline):
    other_pipeline = PipelineFactory(name="billing", default_gateway=pipeline.default_gateway)
    other = report_run(agent_client, other_pipeline, start=T0, seconds=50)
    run = report_run(agent_client, pipeline, start=T0 + timedelta(hours=1), seconds=100)

    body = key_client.get(f"/api/runs/{run.public_id}/compare", {"with": other.public_id}).json()

    assert body["basis"] == "picked"
    assert body["samePipeline"] is False
    assert "different pipelines" in body["warning"]
    assert body["ratios"]["durationRatio"] == 2.0


def test_compare_telemetry_curves_of_both_runs(key_client, agent_client, pipeline):
    before = report_run(agent_client, pipeline, start=T0, seconds=100)
    run = report_run(agent_client, pipeline, start=T0 + timedelta(hours=1), seconds=100)
    for item, start, scale in ((before, T0, 1), (run, T0 + timedelta(hours=1), 2)):
        samples = [
            {"at": iso(start + timedelta(seconds=10 * step)), "rowsLoaded": step * scale}
            for step in range(1, 4)
        ]
        response = agent_client.patch(
            f"/api/agent/runs/{item.public_id}", {"telemetrySamples": samples}, format="json"
        )
        assert response.status_code == 200

    body = key_client.get(f"/api/runs/{run.public_id}/compare").json()

    assert body["run"]["telemetry"] == [[10.0, 2.0], [20.0, 4.0], [30.0, 6.0]]
    assert body["with"]["telemetry"] == [[10.0, 1.0], [20.0, 2.0], [30.0, 3.0]]


@pytest.mark.parametrize("with_id", ["run_doesnotexist0000000000", "nope", "pl_123"])
def test_compare_with_an_unknown_run_is_404(key_client, agent_client, pipeline, with_id):
    run = report_run(agent_client, pipeline, start=T0, seconds=100)

    response = key_client.get(f"/api/runs/{run.public_id}/compare", {"with": with_id})

    assert response.status_code == 404
    assert "`with`" in response.json()["detail"]


def test_compare_without_an_earlier_succeeded_run_is_404(key_client, agent_client, pipeline):
    run = report_run(agent_client, pipeline, start=T0, seconds=100)

    response = key_client.get(f"/api/runs/{run.public_id}/compare")

    assert response.status_code == 404
    assert response.json()["detail"] == (
        "This pipeline has no succeeded run before this one; pass `with` to pick one."
    )


def test_compare_of_an_unknown_run_is_404(key_client):
    assert key_client.get("/api/runs/run_nothere/compare").status_code == 404


def test_compare_needs_authentication(client, agent_client, pipeline):
    run = report_run(agent_client, pipeline, start=T0, seconds=100)

    response = client.get(f"/api/runs/{run.public_id}/compare")

    assert response.status_code == 401
