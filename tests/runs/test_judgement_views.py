"""Pipeline pages, badges and ETAs on the Runs page and run detail, and the compare page."""

import re
from datetime import datetime, timedelta

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.utils import timezone

from common.actors import Actor
from common.models import AuditEvent
from runs.models import Run, RunStatus
from tests.factories import GatewayFactory, PipelineFactory, RunFactory, UserFactory
from tests.runs.judgement import T0, iso, node, report_run

pytestmark = pytest.mark.django_db


def usual_then_slow(agent_client, pipeline, *, start=T0):
    for index in range(5):
        report_run(
            agent_client,
            pipeline,
            start=start + timedelta(hours=index),
            seconds=100,
            rows=1000,
            size=10_000,
        )
    return report_run(
        agent_client,
        pipeline,
        start=start + timedelta(hours=6),
        seconds=250,
        rows=400,
        size=34_000,
    )


def row_of(html: str, run: Run) -> str:
    match = re.search(rf'<tr id="run-{run.public_id}".*?</tr>', html, re.S)
    assert match, f"no row for {run.public_id}"
    return match.group(0)


def test_runs_page_rows_carry_badges(analyst_client, agent_client, pipeline):
    slow = usual_then_slow(agent_client, pipeline)
    usual = Run.objects.filter(pipeline=pipeline).exclude(pk=slow.pk).first()

    html = analyst_client.get("/runs/").content.decode()

    slow_row = row_of(html, slow)
    assert "2.5x slower than usual" in slow_row
    assert "rows -60%" in slow_row
    assert "bytes +3.4x" in slow_row
    assert "jbadge" not in row_of(html, usual)


def test_runs_page_filters_out_of_baseline(analyst_client, key_client, agent_client, pipeline):
    slow = usual_then_slow(agent_client, pipeline)
    quiet = PipelineFactory(name="quiet", default_gateway=pipeline.default_gateway)
    for index in range(6):
        report_run(agent_client, quiet, start=T0 + timedelta(minutes=index), seconds=30)
    for index in range(3):
        report_run(
            agent_client,
            quiet,
            start=T0 + timedelta(hours=1, minutes=index),
            seconds=5,
            status="failed",
        )
    streak_third = Run.objects.filter(pipeline=quiet).order_by("-created_at").first()

    html = analyst_client.get("/runs/?baseline=out").content.decode()
    api = key_client.get("/api/runs", {"baseline": "out"}).json()["data"]

    shown = re.findall(r'<tr id="run-(run_[^"]+)"', html)
    assert shown == [slow.public_id, streak_third.public_id]
    assert [item["id"] for item in api] == shown
    assert "failed 3 times in a row" in row_of(html, streak_third)
    assert 'name="baseline" value="out" id="f-baseline" checked' in html


def test_an_older_outlier_outside_the_newest_runs_is_found_by_the_filter(
    key_client, agent_client, pipeline
):
    slow = usual_then_slow(agent_client, pipeline)
    for index in range(25):
        report_run(agent_client, pipeline, start=T0 + timedelta(days=1, minutes=index), seconds=100)

    listed = key_client.get("/api/runs", {"baseline": "out"}).json()["data"]
    detail = key_client.get(f"/api/runs/{slow.public_id}").json()

    assert [item["id"] for item in listed] == [slow.public_id]
    assert detail["badges"][0] == "2.5x slower than usual"


def test_bad_baseline_filter_value_is_refused(analyst_client, key_client):
    assert analyst_client.get("/runs/?baseline=maybe").status_code == 400
    response = key_client.get("/api/runs", {"baseline": "maybe"})
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["baseline"]


def test_run_detail_shows_badges_baseline_and_a_compare_link(
    analyst_client, agent_client, pipeline
):
    slow = usual_then_slow(agent_client, pipeline)

    html = analyst_client.get(f"/runs/{slow.public_id}/").content.decode()

    assert "2.5x slower than usual" in html
    assert "Usually 100 s (p50)" in html
    assert f'href="/runs/{slow.public_id}/compare/"' in html


def test_running_rows_show_eta_from_progress_and_overdue(analyst_client, agent_client, pipeline):
    for index in range(5):
        report_run(agent_client, pipeline, start=T0 + timedelta(hours=index), seconds=600)
    now = timezone.now()
    on_time = RunFactory(pipeline=pipeline, created_at=now - timedelta(minutes=2))
    late = RunFactory(pipeline=pipeline, created_at=now - timedelta(minutes=16))
    for run, started, body in (
        (on_time, now - timedelta(minutes=2), {"telemetrySummary": {"progress": 40}}),
        (late, now - timedelta(minutes=16), {}),
    ):
        response = agent_client.patch(
            f"/api/agent/runs/{run.public_id}",
            {"status": "running", "startedAt": iso(started), **body},
            format="json",
        )
        assert response.status_code == 200

    html = analyst_client.get("/runs/").content.decode()

    # 40% in 2 minutes: 5 minutes in all, 3 more (a little less as the test runs).
    label = re.search(r"ETA (\d) min \(~(\d\d:\d\d)\)", row_of(html, on_time))
    assert label and label.group(1) == "3"
    shown = datetime.strptime(label.group(2), "%H:%M").time()
    expected = now + timedelta(minutes=3)
    assert shown in {
        (expected + timedelta(seconds=delta)).time().replace(second=0, microsecond=0)
        for delta in (-30, 0, 30)
    }
    assert 'data-eta-basis="progress"' in row_of(html, on_time)
    # The baseline says 10 minutes; 16 have passed.
    assert "overdue by 6 min" in row_of(html, late)
    assert 'data-eta-basis="baseline"' in row_of(html, late)


def test_runs_page_with_badges_runs_constant_queries(
    analyst_client, agent_client, django_assert_max_num_queries
):
    gateway = GatewayFactory(name="edge-q")
    for index in range(3):
        pipeline = PipelineFactory(default_gateway=gateway)
        usual_then_slow(agent_client_for(gateway), pipeline, start=T0 + timedelta(days=index))
    # session, user, the viewer's permissions, time zone and last view, dashboard groups,
    # running now, median, page, the bounded match count (only when an older page follows),
    # sparklines, baselines, failure streaks, pipelines, gateways, the saved views beside the
    # filters
    with django_assert_max_num_queries(16) as small_queries:
        small = analyst_client.get("/runs/")
    for index in range(20):
        pipeline = PipelineFactory(default_gateway=gateway)
        usual_then_slow(agent_client_for(gateway), pipeline, start=T0 + timedelta(days=10 + index))
        report_run(
            agent_client_for(gateway),
            pipeline,
            start=T0 + timedelta(days=10 + index, hours=8),
            seconds=1,
            status="failed",
        )
    with django_assert_max_num_queries(16) as full_queries:
        full = analyst_client.get("/runs/")
    assert full.content.decode().count("jbadge") > small.content.decode().count("jbadge")
    # The failure-streak query runs once there are failed runs on the page, whatever their number,
    # and the bounded match count once an older page follows the first.
    assert len(full_queries.captured_queries) <= len(small_queries.captured_queries) + 2


def agent_client_for(gateway):
    from rest_framework.test import APIClient

    from gateways.services import gateway_token_issue

    if not hasattr(gateway, "_client"):
        _, token = gateway_token_issue(actor=Actor.system(), gateway=gateway)
        gateway._client = APIClient()
        gateway._client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return gateway._client


# /pipelines/


def test_pipeline_list_shows_figures_and_links(analyst_client, agent_client, pipeline):
    now = timezone.now()
    for index, seconds in enumerate([60, 120, 180, 240]):
        report_run(
            agent_client,
            pipeline,
            start=now - timedelta(days=10, hours=index),
            seconds=seconds,
            rows=100 * (index + 1),
        )
    report_run(agent_client, pipeline, start=now - timedelta(days=1), seconds=5, status="failed")
    PipelineFactory(name="never_ran", default_gateway=None)

    html = analyst_client.get("/pipelines/").content.decode()

    row = re.search(rf'<tr id="pipeline-{pipeline.public_id}".*?</tr>', html, re.S).group(0)
    cells = dict(re.findall(r'<td class="num c-(\w+)"[^>]*>([^<]*)</td>', row))
    assert cells == {
        "runs7": "1",
        "rate7": "0%",
        "runs30": "5",
        "rate30": "80%",
        "p50": "2m 30s",
        "p90": "3m 42s",
        "rows": "250",
    }
    assert "Failed" in row
    assert f'href="/pipelines/{pipeline.public_id}/"' in row
    assert f'href="/runs/?pipelineId={pipeline.public_id}"' in row
    assert "never ran" in html


def test_pipeline_list_sorts_and_filters_by_gateway(analyst_client, agent_client, pipeline):
    other_gateway = GatewayFactory(name="edge-2")
    busy = PipelineFactory(name="aaa_busy", default_gateway=other_gateway)
    now = timezone.now()
    for index in range(3):
        report_run(
            agent_client_for(other_gateway), busy, start=now - timedelta(hours=index), seconds=9
        )
    report_run(agent_client, pipeline, start=now - timedelta(hours=1), seconds=9)

    by_name = analyst_client.get("/pipelines/").content.decode()
    by_runs = analyst_client.get("/pipelines/?sort=-runs7").content.decode()
    by_runs_up = analyst_client.get("/pipelines/?sort=runs7").content.decode()
    on_edge2 = analyst_client.get(
        f"/pipelines/?gatewayId={other_gateway.public_id}"
    ).content.decode()
    fragment = analyst_client.get("/pipelines/?sort=-runs7", HTTP_HX_REQUEST="true")

    order = lambda html: re.findall(r'<tr id="pipeline-(pl_[^"]+)"', html)  # noqa: E731
    assert order(by_name) == [busy.public_id, pipeline.public_id]
    assert order(by_runs) == [busy.public_id, pipeline.public_id]
    assert order(by_runs_up) == [pipeline.public_id, busy.public_id]
    assert order(on_edge2) == [busy.public_id]
    assert fragment.content.decode().startswith('\n<div id="pipeline-table"') or (
        '<div id="pipeline-table"' in fragment.content.decode()
        and "<html" not in fragment.content.decode()
    )
    assert analyst_client.get("/pipelines/?sort=bogus").status_code == 400
    assert analyst_client.get("/pipelines/?gatewayId=gw_nope").status_code == 400


def test_pipeline_list_filters_by_default_labels(analyst_client, pipeline):
    finance = PipelineFactory(name="ledger", labels={"team": "finance", "env": "prod"})
    PipelineFactory(name="ledger-dev", labels={"team": "finance", "env": "dev"})
    order = lambda html: re.findall(r'<tr id="pipeline-(pl_[^"]+)"', html)  # noqa: E731

    both = analyst_client.get("/pipelines/?label=team:finance&label=env:prod")
    assert both.status_code == 200
    html = both.content.decode()
    assert order(html) == [finance.public_id]
    # The filters stay as removable chips; each row shows its labels, a click adds the filter.
    assert 'name="label" value="team:finance"' in html
    assert '<span class="label-key">env</span>:<span class="label-value">prod</span>' in html
    assert len(order(analyst_client.get("/pipelines/?label=team:finance").content.decode())) == 2
    assert order(analyst_client.get("/pipelines/?label=team:ops").content.decode()) == []

    refused = analyst_client.get("/pipelines/?label=Team")
    assert refused.status_code == 400
    assert "Use key:value" in refused.content.decode()


def test_a_refused_label_is_answered_beside_the_label_box(analyst_client, pipeline):
    too_long = "team:" + "x" * 201
    page = analyst_client.get("/pipelines/", {"label": ["env:prod", too_long]})
    assert page.status_code == 400
    html = page.content.decode()
    # The refused pair back in the text box, its reason beside it; the good one stays a chip.
    assert f'id="p-label" value="{too_long}"' in html and 'aria-invalid="true"' in html
    assert html.count('id="p-label-error"') == 1
    assert 'role="alert">A label value is at most 200 characters.</p>' in html
    assert 'name="label" value="env:prod"' in html
    assert "<code>label</code>" not in html  # not said twice, above the table as well

    fragment = analyst_client.get("/pipelines/", {"label": too_long}, HTTP_HX_REQUEST="true")
    assert fragment.status_code == 400
    body = fragment.content.decode()
    assert "<html" not in body
    assert 'hx-swap-oob="true">A label value is at most 200 characters.</p>' in body
    # A good answer clears it.
    fine = analyst_client.get("/pipelines/", HTTP_HX_REQUEST="true").content.decode()
    assert 'id="p-label-error" class="field-error" role="alert" hx-swap-oob="true" hidden>' in fine


def test_pipeline_list_runs_constant_queries(
    analyst_client, agent_client, django_assert_max_num_queries
):
    gateway = GatewayFactory(name="edge-q")
    PipelineFactory(default_gateway=gateway)
    # session, user, pipelines, 7-day built days and counts, 30-day built days and figures,
    # last runs' ids, last runs, recent succeeded, gateways
    with django_assert_max_num_queries(13):  # with the viewer's permissions and time zone
        analyst_client.get("/pipelines/")
    for index in range(30):
        pipeline = PipelineFactory(default_gateway=gateway)
        report_run(
            agent_client_for(gateway),
            pipeline,
            start=timezone.now() - timedelta(hours=index),
            seconds=3,
        )
    with django_assert_max_num_queries(13):  # with the viewer's permissions and time zone
        response = analyst_client.get("/pipelines/")
    assert response.content.decode().count('class="pipeline-row"') == 31


def test_pipelines_need_sign_in(client, pipeline):
    assert client.get("/pipelines/").status_code == 302
    assert client.get(f"/pipelines/{pipeline.public_id}/").status_code == 302


# /pipelines/{id}/


def test_pipeline_detail_draws_a_point_per_run_and_the_band(analyst_client, agent_client, pipeline):
    now = timezone.now()
    runs = [
        report_run(
            agent_client, pipeline, start=now - timedelta(days=index + 1), seconds=60 + 10 * index
        )
        for index in range(6)
    ]
    failed = report_run(
        agent_client, pipeline, start=now - timedelta(hours=3), seconds=5, status="failed"
    )
    report_run(agent_client, pipeline, start=now - timedelta(days=40), seconds=60)  # outside

    html = analyst_client.get(f"/pipelines/{pipeline.public_id}/").content.decode()

    points = re.findall(
        r'<a href="/runs/(run_[^/]+)/" class="pt-link"><circle class="pt pt-(\w+)"', html
    )
    assert sorted(points) == sorted(
        [(run.public_id, "succeeded") for run in runs] + [(failed.public_id, "failed")]
    )
    assert '<rect class="band"' in html
    # 60, 70 ... 110 s: p50 85 s, p90 105 s.
    assert "p50-p90 of succeeded runs: 85 s to 105 s" in html
    assert 'id="fig-runs">7<' in html
    assert "Success rate by day" in html


def test_pipeline_detail_takes_a_dragged_window(analyst_client, agent_client, pipeline):
    now = timezone.now()
    inside = report_run(agent_client, pipeline, start=now - timedelta(days=3), seconds=60)
    outside = report_run(agent_client, pipeline, start=now - timedelta(days=9), seconds=60)
    start, end = now - timedelta(days=4), now - timedelta(days=2)

    html = analyst_client.get(
        f"/pipelines/{pipeline.public_id}/", {"start": iso(start), "end": iso(end)}
    ).content.decode()

    assert inside.public_id in html.split('id="recent-runs"')[0]
    assert outside.public_id not in html.split('id="recent-runs"')[0]


@pytest.mark.parametrize(
    "query",
    ["window=5y", "start=yesterday", "start=2026-01-02T00:00Z&end=2026-01-01T00:00Z"],
)
def test_pipeline_detail_refuses_a_bad_window(analyst_client, pipeline, query):
    response = analyst_client.get(f"/pipelines/{pipeline.public_id}/?{query}")

    assert response.status_code == 400
    assert "That window is not valid" in response.content.decode()


def test_pipeline_detail_of_an_unknown_pipeline_is_404(analyst_client):
    assert analyst_client.get("/pipelines/pl_nope/").status_code == 404


def test_pipeline_detail_runs_constant_queries(
    analyst_client, agent_client, pipeline, django_assert_max_num_queries
):
    report_run(agent_client, pipeline, start=timezone.now() - timedelta(days=1), seconds=5)
    # session, user, pipeline, window runs, window counts, window figures, recent runs' ids,
    # recent runs, baselines, failure streaks, baseline, its nodes, the user's and groups'
    # permissions
    with django_assert_max_num_queries(15):  # with the viewer's permissions and time zone
        analyst_client.get(f"/pipelines/{pipeline.public_id}/")
    now = timezone.now()
    for index in range(40):
        report_run(
            agent_client,
            pipeline,
            start=now - timedelta(hours=index + 2),
            seconds=50 + index,
            status="failed" if index % 4 == 0 else "succeeded",
            nodes=[node("extract", now - timedelta(hours=index + 2), 10)],
        )
    with django_assert_max_num_queries(15):  # with the viewer's permissions and time zone
        response = analyst_client.get(f"/pipelines/{pipeline.public_id}/")
    assert response.content.decode().count('class="pt-link"') == 41


def test_run_now_queues_a_run_for_operators_only(analyst_client, pipeline):
    operator = UserFactory(username="operator")
    operator.groups.add(Group.objects.get(name="operator"))
    operator_client = Client()
    operator_client.force_login(operator)
    refused = analyst_client.post(f"/pipelines/{pipeline.public_id}/run/")
    assert refused.status_code == 403
    assert Run.objects.count() == 0
    assert "Run now" not in analyst_client.get(f"/pipelines/{pipeline.public_id}/").content.decode()

    page = operator_client.get(f"/pipelines/{pipeline.public_id}/").content.decode()
    response = operator_client.post(f"/pipelines/{pipeline.public_id}/run/")

    assert "Run now" in page
    run = Run.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/runs/{run.public_id}/"
    assert run.status == RunStatus.QUEUED
    assert run.gateway == pipeline.default_gateway
    assert run.trigger_type == "manual"
    assert AuditEvent.objects.filter(action="run.created", target_id=run.public_id).count() == 1


def test_run_now_needs_post(operator_client, pipeline):
    assert operator_client.get(f"/pipelines/{pipeline.public_id}/run/").status_code == 405
    assert Run.objects.count() == 0


# compare page


def test_compare_page_shows_new_missing_and_slower_nodes(analyst_client, agent_client, pipeline):
    before = report_run(
        agent_client,
        pipeline,
        start=T0,
        seconds=100,
        rows=1000,
        nodes=[node("extract", T0, 40), node("load", T0, 50), node("old", T0, 5)],
    )
    start = T0 + timedelta(hours=1)
    run = report_run(
        agent_client,
        pipeline,
        start=start,
        seconds=250,
        rows=500,
        status="failed",
        error="Snowflake: warehouse is suspended",
        nodes=[node("extract", start, 40), node("load", start, 150), node("new", start, 9)],
    )

    html = analyst_client.get(f"/runs/{run.public_id}/compare/").content.decode()

    assert before.public_id in html
    assert 'id="ratio-duration">2.50x<' in html
    assert 'id="ratio-rows">0.50x<' in html
    assert re.search(r'class="node-row node-new" data-node="new"', html)
    assert re.search(r'class="node-row node-missing" data-node="old"', html)
    assert re.search(r'class="node-row node-slower" data-node="load"', html)
    assert re.search(r'class="node-row" data-node="extract"', html)
    assert "Snowflake: warehouse is suspended" in html
    assert "compare-warning" not in html


def test_compare_page_with_another_pipeline_warns_and_unknown_is_404(
    analyst_client, agent_client, pipeline
):
    other = report_run(
        agent_client,
        PipelineFactory(name="billing", default_gateway=pipeline.default_gateway),
        start=T0,
        seconds=10,
    )
    run = report_run(agent_client, pipeline, start=T0 + timedelta(hours=1), seconds=10)

    warned = analyst_client.get(f"/runs/{run.public_id}/compare/?with={other.public_id}")
    unknown = analyst_client.get(f"/runs/{run.public_id}/compare/?with=run_nope")
    nothing_before = analyst_client.get(f"/runs/{run.public_id}/compare/")

    assert 'id="compare-warning"' in warned.content.decode()
    assert unknown.status_code == 404
    assert "No run run_nope to compare with" in unknown.content.decode()
    assert nothing_before.status_code == 200
    assert "no succeeded run before this one" in nothing_before.content.decode()
    assert analyst_client.get("/runs/run_nope/compare/").status_code == 404
