"""The pipeline page's chart (click a point, drag a window) and the compare view, in Chromium."""

import re
from datetime import datetime, timedelta
from urllib.parse import unquote

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from common.actors import Actor
from runs import services
from runs.models import RunStatus
from tests.browser.conftest import sign_in
from tests.factories import GatewayFactory, PipelineFactory, RunFactory

pytestmark = pytest.mark.browser


def node(node_id: str, started: datetime, seconds: float) -> dict:
    return {
        "nodeId": node_id,
        "type": "task",
        "status": "succeeded",
        "startedAt": started,
        "finishedAt": started + timedelta(seconds=seconds),
    }


@pytest.fixture
def history(transactional_db):
    """A pipeline with a run a day for ten days (every third failed), each with nodes and
    samples, and one slow run today."""
    gateway = GatewayFactory(name="edge-eu-1")
    pipeline = PipelineFactory(name="crm_to_warehouse", default_gateway=gateway)
    now = timezone.now()
    runs = []
    for index in range(10):
        started = now - timedelta(days=10 - index, hours=1)
        status = RunStatus.FAILED if index % 3 == 2 else RunStatus.SUCCEEDED
        seconds = 100 + 5 * index if index < 9 else 400
        run = RunFactory(
            pipeline=pipeline,
            status=status,
            created_at=started,
            started_at=started,
            finished_at=started + timedelta(seconds=seconds),
            rows_loaded=1000 + index,
            bytes_loaded=50_000,
            error_summary="Snowflake: warehouse is suspended" if status == "failed" else "",
        )
        load_seconds = seconds - 40
        nodes = [
            node("extract_v2" if index == 9 else "extract", started, 40),
            node("load", started, load_seconds),
        ]
        samples = [
            {"at": started + timedelta(seconds=10 * step), "rowsLoaded": 100 * step * (index + 1)}
            for step in range(1, 11)
        ]
        services.run_update(
            actor=Actor.system(), run=run, changes={"nodes": nodes, "telemetry_samples": samples}
        )
        runs.append(run)
    return {"pipeline": pipeline, "runs": runs}


def test_clicking_a_point_of_the_duration_chart_opens_its_run(
    page, live_server, history, operator, screenshot
):
    pipeline, runs = history["pipeline"], history["runs"]
    sign_in(page, live_server, "operator", path=f"/pipelines/{pipeline.public_id}/")
    points = page.locator(".pchart-duration circle.pt")
    expect(points).to_have_count(10)
    expect(page.locator(".pchart-duration rect.band")).to_have_count(1)
    expect(page.locator("#run-now")).to_be_visible()
    screenshot(page, "pipeline-detail", full_page=True)

    slow = runs[-1]
    page.locator(f'.pchart-duration circle[data-run="{slow.public_id}"]').click()

    expect(page).to_have_url(re.compile(rf"/runs/{slow.public_id}/$"))
    expect(page.locator(".run-head")).to_contain_text("slower than usual")


def test_dragging_across_the_chart_sets_the_window(page, live_server, history, operator):
    pipeline, runs = history["pipeline"], history["runs"]
    sign_in(page, live_server, "operator", path=f"/pipelines/{pipeline.public_id}/")
    chart = page.locator(".pchart-duration")
    expect(chart.locator("circle.pt")).to_have_count(10)
    box = chart.bounding_box()
    # From a third to two thirds of the chart's width, on the plot area.
    y = box["y"] + box["height"] * 0.5
    page.mouse.move(box["x"] + box["width"] * 0.35, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, y, steps=5)
    expect(chart.locator("rect.drag-window")).to_have_count(1)
    page.mouse.move(box["x"] + box["width"] * 0.7, y, steps=5)
    page.mouse.up()

    page.wait_for_url(re.compile(r"start=.*end="))
    query = dict(part.split("=", 1) for part in page.url.split("?", 1)[1].split("&"))
    start = datetime.fromisoformat(unquote(query["start"]).replace("Z", "+00:00"))
    end = datetime.fromisoformat(unquote(query["end"]).replace("Z", "+00:00"))
    inside = [run for run in runs if start <= run.created_at <= end]
    assert 0 < len(inside) < len(runs)
    expect(page.locator(".pchart-duration circle.pt")).to_have_count(len(inside))
    expect(page.locator("#fig-runs")).to_have_text(str(len(inside)))


def test_compare_view_from_run_detail(page, live_server, history, operator, screenshot):
    pipeline, runs = history["pipeline"], history["runs"]
    slow = runs[-1]
    sign_in(page, live_server, "operator", path=f"/runs/{slow.public_id}/")
    page.get_by_role("link", name="Compare with another run").click()

    expect(page).to_have_url(re.compile(rf"/runs/{slow.public_id}/compare/$"))
    # The previous succeeded run is the eighth (the ninth failed).
    table = page.locator("#compare-table")
    expect(table).to_contain_text(runs[7].public_id)
    expect(page.locator("#ratio-duration")).to_have_text(f"{400 / 135:.2f}x")
    expect(page.locator('tr[data-node="extract_v2"]')).to_have_class(re.compile("node-new"))
    expect(page.locator('tr[data-node="extract"]')).to_have_class(re.compile("node-missing"))
    expect(page.locator('tr[data-node="load"]')).to_have_class(re.compile("node-slower"))
    expect(page.locator("#compare-curves polyline.curve")).to_have_count(2)
    screenshot(page, "run-compare", full_page=True)

    page.select_option("#c-with", runs[8].public_id)
    page.locator("form.compare-picker").first.get_by_role("button", name="Compare").click()

    expect(page).to_have_url(re.compile(rf"with={runs[8].public_id}"))
    expect(table).to_contain_text(runs[8].public_id)
    expect(page.locator("#compare-table tr.is-changed")).to_contain_text("Failed")
    expect(page.locator("#compare-table")).to_contain_text("Snowflake: warehouse is suspended")
    assert pipeline.name in page.content()


def test_pipelines_list_sorts_in_place_and_links_to_runs(
    page, live_server, history, operator, screenshot
):
    pipeline = history["pipeline"]
    idle = PipelineFactory(name="aaa_idle", default_gateway=pipeline.default_gateway)
    sign_in(page, live_server, "operator", path="/pipelines/")
    rows = page.locator("tbody#pipeline-rows tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_have_id(f"pipeline-{idle.public_id}")
    expect(rows.nth(1).locator(".c-runs30")).to_have_text("10")
    expect(rows.nth(1).locator(".c-rate30")).to_have_text("70%")
    screenshot(page, "pipelines-list")

    page.locator('th a[data-sort="runs30"]').click()
    expect(page).to_have_url(re.compile(r"sort=runs30"))
    page.locator('th a[data-sort="runs30"]').click()
    expect(page).to_have_url(re.compile(r"sort=-runs30"))
    expect(rows.first).to_have_id(f"pipeline-{pipeline.public_id}")

    rows.first.get_by_role("link", name="Runs →").click()
    expect(page).to_have_url(re.compile(rf"/runs/\?pipelineId={pipeline.public_id}$"))
    expect(page.locator("tbody#run-rows tr")).to_have_count(10)
