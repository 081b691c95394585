"""The Runs page, its partials and run detail, through the HTTP client."""

import re
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from common.actors import Actor, Source
from common.models import AuditEvent
from runs import services
from runs.models import Run, RunStatus, TriggerType
from runs.sparklines import DETAIL_POINTS, ROW_POINTS
from runs.templatetags.runs_ui import duration, human_bytes, human_count
from runs.views import PAGE_SIZE
from tests.factories import GatewayFactory, PipelineFactory, RunFactory
from tests.runs.conftest import report

LIST = "/runs/"
RUN_ID = re.compile(r'id="run-(run_[0-9a-z]+)"')


def listed(response) -> list[str]:
    return RUN_ID.findall(response.content.decode())


def listed_in(body: str) -> list[str]:
    return RUN_ID.findall(body)


def make_run(pipeline, *, status=RunStatus.SUCCEEDED, ago=timedelta(hours=1), **fields):
    created = timezone.now() - ago
    defaults = {
        "created_at": created,
        "updated_at": created,
        "started_at": created if status != RunStatus.QUEUED else None,
        "finished_at": created + timedelta(minutes=5)
        if status in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELED)
        else None,
    }
    return RunFactory(pipeline=pipeline, status=status, **{**defaults, **fields})


# --- sign-in -------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    [
        LIST,
        "/runs/live/?ids=run_x",
        "/runs/run_x/",
        "/runs/run_x/live/",
        "/runs/run_x/log/",
        "/runs/run_x/cancel/",
    ],
)
def test_every_page_needs_a_signed_in_user(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


@pytest.mark.django_db
def test_root_leads_to_the_runs_page(analyst_client):
    response = analyst_client.get("/?status=failed")
    assert response.status_code == 302
    assert response["Location"] == "/runs/?status=failed"


@pytest.mark.django_db
def test_sign_in_page_signs_in_and_lands_on_runs(client, analyst):
    page = client.get("/accounts/login/")
    assert page.status_code == 200
    assert b'name="username"' in page.content and b"Sign in" in page.content
    response = client.post(
        "/accounts/login/", {"username": "analyst", "password": "correct horse battery staple"}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("runs:list")


@pytest.mark.django_db
def test_wrong_password_is_refused_with_a_message(client, analyst):
    response = client.post("/accounts/login/", {"username": "analyst", "password": "nope"})
    assert response.status_code == 200
    assert b"alert-error" in response.content


@pytest.mark.django_db
def test_sign_out_is_a_post(analyst_client):
    response = analyst_client.post("/accounts/logout/")
    assert response.status_code == 302
    assert analyst_client.get(LIST).status_code == 302


# --- filters -------------------------------------------------------------------------------


@pytest.fixture
def catalogue(db):
    """Runs that differ in one property each, all inside the last 24 hours unless noted."""
    east, west = GatewayFactory(name="east"), GatewayFactory(name="west")
    crm = PipelineFactory(name="crm", default_gateway=east)
    billing = PipelineFactory(name="billing", default_gateway=west)
    runs = {
        "ok": make_run(crm, ago=timedelta(hours=1)),
        "failed": make_run(
            crm, status=RunStatus.FAILED, ago=timedelta(hours=2), error_summary="quota exceeded"
        ),
        "running": make_run(billing, status=RunStatus.RUNNING, ago=timedelta(minutes=5)),
        "queued": make_run(billing, status=RunStatus.QUEUED, ago=timedelta(minutes=1)),
        "manual": make_run(billing, ago=timedelta(hours=3), trigger_type=TriggerType.MANUAL),
        "old": make_run(crm, ago=timedelta(days=10)),
        "ancient": make_run(crm, status=RunStatus.FAILED, ago=timedelta(days=40)),
    }
    return {"runs": runs, "crm": crm, "billing": billing, "east": east, "west": west}


def ids(catalogue, *names):
    return {catalogue["runs"][name].public_id for name in names}


@pytest.mark.django_db
def test_no_filter_lists_every_run_newest_first(analyst_client, catalogue):
    response = analyst_client.get(LIST)
    assert response.status_code == 200
    shown = listed(response)
    assert set(shown) == ids(catalogue, *catalogue["runs"])
    created = [Run.objects.get(public_id=i).created_at for i in shown]
    assert created == sorted(created, reverse=True)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=failed", {"failed", "ancient"}),
        ("status=running&status=queued", {"running", "queued"}),
        ("status=running,queued", {"running", "queued"}),
        ("trigger=manual", {"manual"}),
        ("window=24h", {"ok", "failed", "running", "queued", "manual"}),
        ("window=30d", {"ok", "failed", "running", "queued", "manual", "old"}),
        ("q=quota", {"failed"}),
        ("q=QUOTA+EXCEEDED", {"failed"}),
        ("status=failed&window=7d", {"failed"}),
    ],
)
def test_each_filter_narrows_the_table(analyst_client, catalogue, query, expected):
    response = analyst_client.get(f"{LIST}?{query}")
    assert response.status_code == 200
    assert set(listed(response)) == ids(catalogue, *expected)


@pytest.mark.django_db
def test_pipeline_and_gateway_filters_use_public_ids(analyst_client, catalogue):
    by_pipeline = analyst_client.get(f"{LIST}?pipelineId={catalogue['billing'].public_id}")
    assert set(listed(by_pipeline)) == ids(catalogue, "running", "queued", "manual")
    by_gateway = analyst_client.get(f"{LIST}?gatewayId={catalogue['east'].public_id}")
    assert set(listed(by_gateway)) == ids(catalogue, "ok", "failed", "old", "ancient")


@pytest.mark.django_db
def test_custom_from_to_range_includes_the_to_day(analyst_client, catalogue):
    old = catalogue["runs"]["old"].created_at.date()
    response = analyst_client.get(f"{LIST}?from={old - timedelta(days=1)}&to={old}")
    assert set(listed(response)) == ids(catalogue, "old")
    ranged = analyst_client.get(f"{LIST}?dateRange={old}..{old}")
    assert set(listed(ranged)) == ids(catalogue, "old")


@pytest.mark.django_db
def test_search_by_run_id_prefix(analyst_client, catalogue):
    run = catalogue["runs"]["manual"]
    response = analyst_client.get(f"{LIST}?q={run.public_id}")
    assert listed(response) == [run.public_id]


@pytest.mark.django_db
def test_the_form_shows_the_chosen_filters(analyst_client, catalogue):
    pipeline = catalogue["crm"].public_id
    body = analyst_client.get(
        f"{LIST}?status=failed&status=running&pipelineId={pipeline}&q=quota"
    ).content.decode()
    assert re.search(r'value="failed"\s+checked', body)
    assert re.search(r'value="running"\s+checked', body)
    assert not re.search(r'value="succeeded"\s+checked', body)
    assert f'<option value="{pipeline}" selected>' in body
    assert 'value="quota"' in body


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query", ["status=exploded", "window=2y", "from=yesterday", "pipelineId=pl_missing"]
)
def test_a_bad_filter_is_a_400_that_names_the_parameter(analyst_client, catalogue, query):
    response = analyst_client.get(f"{LIST}?{query}")
    assert response.status_code == 400
    assert b"Check the filters" in response.content
    assert f"<code>{query.split('=')[0]}</code>".encode() in response.content
    assert listed(response) == []


# --- full page or fragment -----------------------------------------------------------------


@pytest.mark.django_db
def test_htmx_gets_only_the_table_fragment(analyst_client, catalogue):
    response = analyst_client.get(f"{LIST}?status=failed", HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in body and 'id="filters"' not in body
    assert body.lstrip().startswith('<div id="run-table"')
    assert set(listed(response)) == ids(catalogue, "failed", "ancient")
    assert "HX-Request" in response["Vary"]


@pytest.mark.django_db
@pytest.mark.parametrize("header", ["HTTP_HX_BOOSTED", "HTTP_HX_HISTORY_RESTORE_REQUEST"])
def test_boosted_and_history_restore_requests_get_the_whole_page(analyst_client, header):
    response = analyst_client.get(LIST, HTTP_HX_REQUEST="true", **{header: "true"})
    assert b"<html" in response.content
    assert b'id="filters"' in response.content


@pytest.mark.django_db
def test_the_page_works_without_javascript(analyst_client, catalogue):
    body = analyst_client.get(LIST).content.decode()
    assert re.search(r'<form id="filters"[^>]*method="get" action="/runs/"', body)
    assert '<button type="submit" class="btn">Apply</button>' in body
    # Every hx-get link also has a real href.
    for tag in re.findall(r"<a [^>]*hx-get=[^>]*>", body):
        assert 'href="' in tag
    assert 'hx-headers=\'{"X-CSRFToken"' in body
    assert "/static/django_htmx/htmx-2.min.js" in body
    assert 'href="/gateways/"' in body


# --- pagination ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_keyset_pages_go_older_and_back_newer_without_overlap(analyst_client, pipeline):
    for minute in range(PAGE_SIZE + 7):
        make_run(pipeline, ago=timedelta(minutes=minute + 1))
    first = analyst_client.get(LIST)
    first_ids = listed(first)
    assert len(first_ids) == PAGE_SIZE
    older_href = re.search(r'rel="next" href="([^"]+)"', first.content.decode()).group(1)
    second = analyst_client.get(LIST + older_href.replace("&amp;", "&"))
    second_ids = listed(second)
    assert len(second_ids) == 7
    assert not set(first_ids) & set(second_ids)
    assert 'rel="next"' not in second.content.decode()
    newer_href = re.search(r'rel="prev" href="([^"]+)"', second.content.decode()).group(1)
    back = analyst_client.get(LIST + newer_href.replace("&amp;", "&"))
    assert listed(back) == first_ids


@pytest.mark.django_db
def test_a_tampered_cursor_shows_the_newest_runs_with_a_note(analyst_client, run):
    response = analyst_client.get(f"{LIST}?cursor=not-a-cursor")
    assert response.status_code == 200
    assert listed(response) == [run.public_id]
    assert b"no longer valid" in response.content


# --- query counts --------------------------------------------------------------------------


def _fill(pipeline, count: int, *, samples: int = 3):
    for index in range(count):
        run = make_run(
            pipeline,
            status=RunStatus.RUNNING if index % 3 == 0 else RunStatus.SUCCEEDED,
            ago=timedelta(minutes=index + 1),
        )
        for value in range(samples):
            report(run, append_telemetry_sample={"rowsLoaded": value * 10, "progress": value})


def live_url(body: str) -> str:
    poller = re.search(r'<div id="live-poller"[^>]*>', body).group(0)
    return re.search(r'hx-get="([^"]+)"', poller).group(1).replace("&amp;", "&")


@pytest.mark.django_db
def test_the_runs_page_runs_a_constant_number_of_queries(analyst_client, pipeline):
    _fill(pipeline, 2)
    with CaptureQueriesContext(connection) as small:
        assert analyst_client.get(LIST).status_code == 200
    _fill(pipeline, PAGE_SIZE + 5, samples=5)
    with CaptureQueriesContext(connection) as full:
        response = analyst_client.get(LIST)
    assert len(listed(response)) == PAGE_SIZE
    # One more than the small page: a first page holding every match needs no count.
    assert len(full) == len(small) + 1
    # session, user, the viewer's last view, the viewer's permissions (2), the viewer's time
    # zone, dashboard groups, running now, median, page, the bounded match count (only when an
    # older page follows), sparklines, baselines, pipelines, gateways, the saved views listed
    # beside the filters
    assert len(full) <= 16


@pytest.mark.django_db
def test_fragments_and_live_polls_run_constant_queries(
    analyst_client, pipeline, django_assert_max_num_queries
):
    _fill(pipeline, 3, samples=4)
    with CaptureQueriesContext(connection) as small:
        body = analyst_client.get(LIST, HTTP_HX_REQUEST="true").content.decode()
    small_poll = live_url(body)
    with CaptureQueriesContext(connection) as small_nothing_new:
        assert analyst_client.get(small_poll).status_code == 204
    _fill(pipeline, PAGE_SIZE + 5, samples=4)
    # One more than the small page: a first page holding every match needs no count.
    with django_assert_max_num_queries(len(small) + 1):
        body = analyst_client.get(LIST, HTTP_HX_REQUEST="true").content.decode()
    # The poll that finds nothing new: session, user, the viewer's permissions (2), the page's
    # versions, running now. It renders nothing, whatever the page holds.
    with django_assert_max_num_queries(6) as nothing_new:
        response = analyst_client.get(live_url(body))
    assert response.status_code == 204 and response.content == b""
    assert len(nothing_new) == len(small_nothing_new)
    # A poll that finds a change costs what the full fragment costs, plus the fingerprint.
    report(Run.objects.first(), telemetry_summary={"progress": 50})
    with django_assert_max_num_queries(len(small) + 1 + 2):
        assert analyst_client.get(live_url(body)).status_code == 200


# --- sparklines and live rows --------------------------------------------------------------


@pytest.mark.django_db
def test_rows_carry_a_server_drawn_sparkline_and_progress(analyst_client, pipeline):
    run = make_run(pipeline, status=RunStatus.RUNNING, ago=timedelta(minutes=3))
    for value in (10, 250, 900):
        report(run, append_telemetry_sample={"rowsLoaded": value})
    report(
        run,
        telemetry_summary={
            "rowsLoaded": 900,
            "bytesLoaded": 2_500_000,
            "progress": 42,
            "currentPhase": "load",
            "currentResource": "accounts",
        },
    )
    body = analyst_client.get(LIST).content.decode()
    row = re.search(rf'<tr id="run-{run.public_id}".*?</tr>', body, re.S).group(0)
    assert "<svg" in row and "<polyline" in row and "aria-label=" in row
    assert 'aria-valuenow="42"' in row
    assert "load · accounts" in row
    assert "2.5 MB" in row and "900" in row
    assert "data-live-since" in row


@pytest.mark.django_db
def test_sparklines_thin_long_series_to_a_fixed_number_of_points(analyst_client, pipeline):
    run = make_run(pipeline, status=RunStatus.RUNNING, ago=timedelta(minutes=3))
    report(run, telemetry_samples=[{"rowsLoaded": i, "progress": i / 3} for i in range(300)])
    body = analyst_client.get(LIST).content.decode()
    row = re.search(rf'<tr id="run-{run.public_id}".*?</tr>', body, re.S).group(0)
    points = re.search(r'<polyline class="spark-line" points="([^"]+)"', row).group(1)
    assert len(points.split()) == ROW_POINTS
    detail = analyst_client.get(f"/runs/{run.public_id}/").content.decode()
    charts = re.findall(r'<polyline class="spark-line" points="([^"]+)"', detail)
    assert [len(chart.split()) for chart in charts] == [DETAIL_POINTS, DETAIL_POINTS]
    # The newest sample is always drawn: the line ends at the top right (the maximum).
    assert points.split()[-1] == "94.5,1.5"


@pytest.mark.django_db
def test_every_page_polls_whatever_it_shows(analyst_client, pipeline):
    make_run(pipeline)
    for query in ("", "?status=failed", "?status=succeeded&window=7d", "?q=nothing-matches"):
        body = analyst_client.get(LIST + query).content.decode()
        poller = re.search(r'<div id="live-poller"[^>]*>', body).group(0)
        # Paused while the tab is hidden by static/js/app.js ([data-live]), not a trigger filter.
        assert 'hx-trigger="every 3s"' in poller and 'data-live="on"' in poller
        assert 'hx-target="#run-table"' in poller and "v=" in poller
    # A page with bad filters has nothing to refresh.
    body = analyst_client.get(LIST + "?status=bogus").content.decode()
    assert 'id="live-poller"' not in body


@pytest.mark.django_db
def test_live_poll_answers_204_when_nothing_changed(analyst_client, pipeline):
    make_run(pipeline, status=RunStatus.RUNNING, ago=timedelta(minutes=2))
    url = live_url(analyst_client.get(LIST).content.decode())
    assert analyst_client.get(url).status_code == 204
    assert analyst_client.get(url).status_code == 204
    # Without a fingerprint the poll cannot know what the page shows: it sends the table.
    assert analyst_client.get("/runs/live/").status_code == 200


@pytest.mark.django_db
def test_live_poll_sends_the_table_again_when_a_row_changed(analyst_client, pipeline):
    run = make_run(pipeline, status=RunStatus.RUNNING, ago=timedelta(minutes=2))
    make_run(pipeline, status=RunStatus.RUNNING, ago=timedelta(minutes=3))
    url = live_url(analyst_client.get(LIST).content.decode())
    report(run, telemetry_summary={"progress": 77, "rowsLoaded": 5})
    response = analyst_client.get(url)
    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith('<div id="run-table"')
    assert 'aria-valuenow="77"' in body
    # The new table holds a poller with the new fingerprint: the next poll is quiet again.
    assert analyst_client.get(live_url(body)).status_code == 204


@pytest.mark.django_db
def test_a_filtered_view_picks_up_a_run_that_starts_matching(analyst_client, pipeline):
    """A failure is usually an old run that just failed, not a new run: the poll compares what
    the filter matches now with what the page shows."""
    make_run(pipeline, status=RunStatus.FAILED, ago=timedelta(hours=2))
    running = make_run(pipeline, status=RunStatus.RUNNING, ago=timedelta(hours=1))
    body = analyst_client.get(f"{LIST}?status=failed").content.decode()
    assert len(listed_in(body)) == 1
    url = live_url(body)
    assert analyst_client.get(url).status_code == 204
    report(running, status=RunStatus.FAILED)
    response = analyst_client.get(url)
    assert response.status_code == 200
    assert listed(response)[0] == running.public_id and len(listed(response)) == 2
    assert "status=failed" in live_url(response.content.decode())


@pytest.mark.django_db
def test_live_poll_on_the_first_page_brings_new_matching_runs_and_a_fresh_strip(
    analyst_client, pipeline
):
    running = make_run(pipeline, status=RunStatus.RUNNING, ago=timedelta(minutes=5))
    body = analyst_client.get(f"{LIST}?status=running&status=queued").content.decode()
    url = live_url(body)
    assert "status=running" in url and "status=queued" in url
    assert analyst_client.get(url).status_code == 204

    fresh = make_run(pipeline, status=RunStatus.QUEUED, ago=timedelta(seconds=5))
    make_run(pipeline, status=RunStatus.SUCCEEDED, ago=timedelta(seconds=4))  # filtered out
    response = analyst_client.get(url)
    body = response.content.decode()
    assert response.status_code == 200
    assert listed(response) == [fresh.public_id, running.public_id]
    assert '<section id="board" class="board"' in body and "2 runs" in body
    assert analyst_client.get(live_url(body)).status_code == 204


@pytest.mark.django_db
def test_older_pages_say_how_many_newer_runs_arrived_instead_of_inserting(analyst_client, pipeline):
    for minute in range(PAGE_SIZE + 3):
        make_run(pipeline, ago=timedelta(minutes=minute + 1))
    first = analyst_client.get(LIST).content.decode()
    older_href = re.search(r'rel="next" href="([^"]+)"', first).group(1).replace("&amp;", "&")
    body = analyst_client.get(LIST + older_href).content.decode()
    shown = listed_in(body)
    assert len(shown) == 3 and "newer run" not in body
    url = live_url(body)
    assert "cursor=" in url and "top=" in url
    assert analyst_client.get(url).status_code == 204

    make_run(pipeline, ago=timedelta(seconds=3))
    make_run(pipeline, ago=timedelta(seconds=2))
    response = analyst_client.get(url)
    body = response.content.decode()
    assert response.status_code == 200
    assert listed(response) == shown  # the same older page, nothing inserted
    assert "2 newer runs since this page was opened" in body
    assert analyst_client.get(live_url(body)).status_code == 204


@pytest.mark.django_db
def test_empty_install_says_how_to_get_a_first_run(analyst_client):
    body = analyst_client.get(LIST).content.decode()
    assert "No runs yet" in body
    assert "create_gateway" in body and "/api/elt/runs" in body


@pytest.mark.django_db
def test_no_match_offers_to_clear_filters(analyst_client, run):
    body = analyst_client.get(f"{LIST}?status=failed").content.decode()
    assert "No runs match these filters" in body
    assert "clear every filter" in body


# --- run detail ----------------------------------------------------------------------------


@pytest.fixture
def busy_run(pipeline):
    run = make_run(pipeline, status=RunStatus.RUNNING, ago=timedelta(minutes=10))
    for level, message in [
        ("info", "Connecting to source"),
        ("warn", "Slow query on accounts"),
        ("error", "Lost connection; retrying"),
        ("info", "Loaded 500 rows"),
    ]:
        report(run, append_log={"level": level, "message": message, "nodeId": "n_source"})
    for value in (10, 40, 80):
        report(
            run,
            append_telemetry_sample={
                "rowsLoaded": value,
                "bytesLoaded": value * 9,
                "progress": value,
            },
        )
    report(
        run,
        telemetry_summary={"rowsLoaded": 80, "progress": 80, "currentPhase": "load"},
        nodes=[{"nodeId": "n_source", "type": "source.postgres", "status": "running"}],
    )
    run.refresh_from_db()
    return run


@pytest.mark.django_db
def test_run_detail_shows_timing_telemetry_charts_log_and_nodes(analyst_client, busy_run):
    response = analyst_client.get(f"/runs/{busy_run.public_id}/")
    body = response.content.decode()
    assert response.status_code == 200
    assert busy_run.public_id in body and busy_run.pipeline.name in body
    assert "Running" in body
    assert body.count("<polyline") == 3
    assert "currentPhase" in body
    assert "Slow query on accounts" in body and "Lost connection" in body
    assert "source.postgres" in body
    assert 'hx-get="/runs/' + busy_run.public_id + "/live/" in body
    assert "every 2s" in body  # the log tail


@pytest.mark.django_db
def test_run_detail_of_an_unknown_run_is_404(analyst_client):
    assert analyst_client.get("/runs/run_doesnotexist/").status_code == 404


@pytest.mark.django_db
def test_run_detail_query_count_does_not_grow_with_the_log(analyst_client, busy_run):
    with CaptureQueriesContext(connection) as before:
        analyst_client.get(f"/runs/{busy_run.public_id}/")
    for index in range(40):
        report(busy_run, append_log={"level": "info", "message": f"line {index}"})
    report(
        busy_run, nodes=[{"nodeId": f"n{i}", "type": "t", "status": "running"} for i in range(8)]
    )
    with CaptureQueriesContext(connection) as after:
        analyst_client.get(f"/runs/{busy_run.public_id}/")
    assert len(after) == len(before)


@pytest.mark.django_db
def test_log_filters_by_level_and_text(analyst_client, busy_run):
    url = f"/runs/{busy_run.public_id}/"
    errors = analyst_client.get(url, {"level": ["warn", "error"]}).content.decode()
    assert "Slow query" in errors and "Lost connection" in errors
    assert "Connecting to source" not in errors
    text = analyst_client.get(url, {"logq": "ROWS"}).content.decode()
    assert "Loaded 500 rows" in text and "Slow query" not in text
    fragment = analyst_client.get(
        url, {"level": "error"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="log-panel"
    ).content.decode()
    assert fragment.lstrip().startswith('<section id="log-panel"')
    assert "Lost connection" in fragment and "Slow query" not in fragment
    # The tail keeps the filter.
    assert "level=error" in fragment


@pytest.mark.django_db
def test_log_tail_returns_only_newer_lines(analyst_client, busy_run):
    url = f"/runs/{busy_run.public_id}/log/"
    assert analyst_client.get(url, {"after": busy_run.log_seq}).status_code == 204
    report(busy_run, append_log={"level": "info", "message": "fresh line"})
    response = analyst_client.get(url, {"after": busy_run.log_seq})
    body = response.content.decode()
    assert response.status_code == 200
    assert "fresh line" in body and "Slow query" not in body
    assert f"after={busy_run.log_seq + 1}" in body and 'hx-swap-oob="outerHTML"' in body
    filtered = analyst_client.get(url, {"after": busy_run.log_seq, "level": "error"})
    assert "fresh line" not in filtered.content.decode()


@pytest.mark.django_db
def test_log_tail_stops_when_the_run_has_finished(analyst_client, busy_run):
    report(busy_run, status=RunStatus.SUCCEEDED)
    busy_run.refresh_from_db()
    body = analyst_client.get(
        f"/runs/{busy_run.public_id}/log/", {"after": busy_run.log_seq}
    ).content.decode()
    tail = re.search(r'<div id="log-tail"[^>]*>', body).group(0)
    assert "hx-get" not in tail


@pytest.mark.django_db
def test_detail_live_is_204_until_the_run_changes(analyst_client, busy_run):
    url = f"/runs/{busy_run.public_id}/live/"
    assert analyst_client.get(url, {"since": busy_run.updated_at.isoformat()}).status_code == 204
    report(busy_run, telemetry_summary={"progress": 95})
    response = analyst_client.get(url, {"since": busy_run.updated_at.isoformat()})
    assert response.status_code == 200
    assert response.content.decode().lstrip().startswith('<div id="run-live"')
    assert "95%" in response.content.decode()


# --- actions and permissions ---------------------------------------------------------------


@pytest.mark.django_db
def test_read_only_users_see_disabled_actions_and_cannot_act(analyst_client, busy_run):
    body = analyst_client.get(f"/runs/{busy_run.public_id}/").content.decode()
    assert re.search(r'<button type="button" class="btn btn-danger" disabled[^>]*>Cancel run', body)
    assert "Canceling needs the operator role." in body
    assert re.search(r'<button type="submit" class="btn btn-primary" disabled', body)
    assert 'action="/runs/' + busy_run.public_id + '/cancel/"' not in body
    refused = analyst_client.post(f"/runs/{busy_run.public_id}/cancel/")
    assert refused.status_code == 403
    # The app's own page, naming the role.
    assert b"You can't do that here" in refused.content
    assert b"Cancelling a run needs the operator role." in refused.content
    assert b'class="topbar"' in refused.content
    assert analyst_client.get(f"/runs/{busy_run.public_id}/cancel/").status_code == 403
    assert analyst_client.post(f"/runs/{busy_run.public_id}/rerun/").status_code == 403
    busy_run.refresh_from_db()
    assert busy_run.status == RunStatus.RUNNING
    assert Run.objects.count() == 1


@pytest.mark.django_db
def test_cancel_asks_a_running_run_to_stop(operator_client, busy_run):
    body = operator_client.get(f"/runs/{busy_run.public_id}/").content.decode()
    assert "Cancel run" in body
    # Re-run waits for the run to finish.
    assert "Re-run is offered once the run has finished." in body
    confirm = operator_client.get(f"/runs/{busy_run.public_id}/cancel/")
    assert b"Yes, cancel the run" in confirm.content
    response = operator_client.post(f"/runs/{busy_run.public_id}/cancel/", follow=True)
    busy_run.refresh_from_db()
    assert busy_run.status == RunStatus.CANCEL_REQUESTED
    assert b"Cancel requested" in response.content
    # Nothing more to cancel: the button says why it is disabled, the lifecycle shows.
    assert b"Cancel already requested" in response.content
    assert b"Waiting for the runner's next report" in response.content
    assert b"data-countdown=" in response.content
    audit = AuditEvent.objects.get()
    assert (audit.action, audit.source, audit.target_id) == (
        "run.cancel_requested",
        "web",
        busy_run.public_id,
    )


@pytest.mark.django_db
def test_cancel_a_queued_run_at_once_and_refuse_a_final_one(operator_client, pipeline):
    queued = make_run(pipeline, status=RunStatus.QUEUED, ago=timedelta(minutes=1))
    operator_client.post(f"/runs/{queued.public_id}/cancel/")
    queued.refresh_from_db()
    assert queued.status == RunStatus.CANCELED
    done = make_run(pipeline)
    response = operator_client.post(f"/runs/{done.public_id}/cancel/", follow=True)
    done.refresh_from_db()
    assert done.status == RunStatus.SUCCEEDED
    assert b"nothing to cancel" in response.content


@pytest.mark.django_db
def test_rerun_queues_a_new_run_of_the_same_pipeline_and_gateway(
    operator_client, busy_run, operator
):
    refused = operator_client.post(f"/runs/{busy_run.public_id}/rerun/")
    assert refused.status_code == 302 and Run.objects.count() == 1  # not finished yet
    report(busy_run, status=RunStatus.SUCCEEDED)
    response = operator_client.post(f"/runs/{busy_run.public_id}/rerun/")
    new = Run.objects.exclude(pk=busy_run.pk).get()
    assert response.status_code == 302
    assert response["Location"] == f"/runs/{new.public_id}/"
    assert (new.pipeline, new.gateway, new.status) == (
        busy_run.pipeline,
        busy_run.gateway,
        RunStatus.QUEUED,
    )
    assert new.trigger_type == TriggerType.RERUN and new.rerun_of == busy_run
    assert new.created_by == operator
    audit = AuditEvent.objects.get(action="run.rerun")
    assert (audit.action, audit.actor, audit.details) == (
        "run.rerun",
        operator,
        {"newRunId": new.public_id},
    )
    assert operator_client.get(f"/runs/{busy_run.public_id}/rerun/").status_code == 405


# --- formatting ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "—"),
        (0, "0 B"),
        (999, "999 B"),
        (1000, "1.0 KB"),
        (2_500_000, "2.5 MB"),
        (7e12, "7.0 TB"),
    ],
)
def test_human_bytes(value, text):
    assert human_bytes(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, "—"), (12, "12"), (1234, "1.2k"), (5_600_000, "5.6M"), (250_000, "250k")],
)
def test_human_count(value, text):
    assert human_count(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, "—"), (5, "5s"), (192, "3m 12s"), (7500, "2h 05m"), (3 * 86400, "3d 00h")],
)
def test_duration(value, text):
    assert duration(value) == text


@pytest.mark.django_db
def test_queued_run_on_a_gateway_that_never_connected_says_so(operator_client, pipeline):
    stranded = make_run(pipeline, status=RunStatus.QUEUED, ago=timedelta(minutes=1))
    assert stranded.gateway.last_seen_at is None
    listing = operator_client.get("/runs/").content.decode()
    assert "gateway offline" in listing
    detail = operator_client.get(f"/runs/{stranded.public_id}/").content.decode()
    assert f"gateway {stranded.gateway.name} is offline" in detail
    stranded.gateway.last_seen_at = timezone.now()
    stranded.gateway.save()
    assert "gateway offline" not in operator_client.get("/runs/").content.decode()


# --- search, shared time filters, the strip's label -----------------------------------------


@pytest.mark.django_db
def test_search_finds_a_run_id_without_its_prefix_and_pipeline_names(analyst_client, catalogue):
    failed = catalogue["runs"]["failed"]
    bare = failed.public_id.removeprefix("run_")
    assert listed(analyst_client.get(LIST, {"q": bare})) == [failed.public_id]
    assert listed(analyst_client.get(LIST, {"q": bare[:12].upper()})) == [failed.public_id]
    by_pipeline = set(listed(analyst_client.get(LIST, {"q": "billing"})))
    assert by_pipeline == ids(catalogue, "running", "queued", "manual")
    # The API shares the FilterSet.
    api = analyst_client.get("/api/runs", {"q": bare})
    assert [run["id"] for run in api.json()["data"]] == [failed.public_id]


@pytest.mark.django_db
def test_the_form_carries_every_time_filter_of_a_shared_url(analyst_client, catalogue):
    body = analyst_client.get(
        LIST, {"dateRange": "2026-11-20..2026-11-21", "status": "failed"}
    ).content.decode()
    assert (
        '<input type="hidden" name="dateRange" id="f-date-range" value="2026-11-20..2026-11-21">'
        in body
    )
    body = analyst_client.get(
        LIST, {"from": "2026-11-20T10:00:00Z", "to": "2026-11-20T12:30:00+01:00"}
    ).content.decode()
    # Date-time inputs with the time of day (UTC; the page's script shows the viewer's zone)
    # and the URL's own value, sent back unchanged when the viewer does not touch the input.
    assert re.search(
        r'<input type="datetime-local" step="1" name="from" id="f-from" '
        r'value="2026-11-20T10:00:00" data-instant="2026-11-20T10:00:00Z">',
        body,
    )
    assert 'value="2026-11-20T11:30:00" data-instant="2026-11-20T12:30:00+01:00"' in body
    body = analyst_client.get(LIST, {"window": "7d"}).content.decode()
    assert '<option value="7d" selected>' in body


@pytest.mark.django_db
def test_a_date_time_input_without_a_zone_is_read_in_the_viewers_zone(
    analyst_client, analyst, pipeline
):
    """Without JavaScript the inputs send wall times; they mean the zone the page showed."""
    from common.preferences import user_preference_set

    inside = make_run(pipeline, ago=timedelta(hours=2))
    local = inside.created_at.astimezone(ZoneInfo("Asia/Tokyo"))
    window = {
        "from": (local - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M"),
        "to": (local + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M"),
    }
    assert listed(analyst_client.get(LIST, window)) == []  # read as UTC: nine hours off
    user_preference_set(actor=Actor.of_user(analyst, source=Source.WEB), time_zone="Asia/Tokyo")
    assert listed(analyst_client.get(LIST, window)) == [inside.public_id]
    # The API stays strict: a timestamp without a zone is a 400 there.
    api = analyst_client.get("/api/runs", {"from": window["from"] + ":00"})
    assert api.status_code == 400 and "from" in api.json()["errors"]


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["2026-13-45T10:00", "2026-02-30T25:61:00", "2026-11-20T10:00Q"])
def test_a_bad_date_time_from_the_form_is_a_400_naming_it(analyst_client, pipeline, value):
    make_run(pipeline)
    # The page says what is wrong; its poll has nothing to refresh.
    assert analyst_client.get(LIST, {"from": value}).status_code == 400
    assert analyst_client.get("/runs/live/", {"from": value}).status_code == 204
    body = analyst_client.get(LIST, {"from": value}).content.decode()
    assert "<code>from</code>" in body and "Check the filters" in body


@pytest.mark.django_db
def test_the_strip_names_its_range_and_what_running_means(analyst_client, catalogue):
    body = analyst_client.get(LIST).content.decode()
    assert '<h2 id="board-title">Last 24 hours</h2>' in body and "Running now" in body
    body = analyst_client.get(LIST, {"window": "7d"}).content.decode()
    assert '<h2 id="board-title">Last 7 days</h2>' in body
    body = analyst_client.get(
        LIST, {"from": "2026-11-20T10:00:00Z", "to": "2026-11-20T12:00:00Z"}
    ).content.decode()
    title = re.search(r'<h2 id="board-title">(.*?)</h2>', body).group(1)
    assert 'data-start="2026-11-20T10:00:00Z" data-end="2026-11-20T12:00:00Z"' in title
    year = "" if timezone.now().year == 2026 else ", 2026"
    assert (
        f'<time datetime="2026-11-20T10:00:00Z" data-range>Nov 20{year}, 10:00:00 UTC</time>'
        in title
    )
    assert (
        f'<time datetime="2026-11-20T12:00:00Z" data-range>Nov 20{year}, 12:00:00 UTC</time>'
        in title
    )
    # A range in the past does not claim what runs now: it counts its own runs still running.
    # (The strip only: "Running now" is also a built-in saved view's name.)
    board = re.search(r'<section id="board".*?</section>', body, re.S).group(0)
    assert "Still running" in board and "Running now" not in board


@pytest.mark.django_db
def test_running_now_of_a_past_range_counts_only_its_runs(analyst_client, pipeline):
    old = make_run(pipeline, status=RunStatus.RUNNING, ago=timedelta(days=3))
    make_run(pipeline, status=RunStatus.RUNNING, ago=timedelta(minutes=3))
    day = old.created_at.date()
    body = analyst_client.get(LIST, {"dateRange": f"{day}..{day}"}).content.decode()
    stat = re.search(r"Still running</dt><dd[^>]*>(\d+)</dd>", body)
    assert stat and stat.group(1) == "1"
    body = analyst_client.get(LIST).content.decode()
    assert re.search(r"Running now</dt><dd>(\d+)</dd>", body).group(1) == "2"


# --- the error view, times, heartbeat, progress colour, log states ---------------------------


@pytest.mark.django_db
def test_the_error_view_shows_no_pager_and_no_poll(analyst_client, catalogue):
    response = analyst_client.get(LIST, {"status": "bogus"})
    assert response.status_code == 400
    body = response.content.decode()
    assert "Check the filters" in body
    assert 'class="pager"' not in body and 'id="live-poller"' not in body


@pytest.mark.django_db
def test_every_time_is_a_time_element_in_one_format(analyst_client, busy_run):
    body = analyst_client.get(f"/runs/{busy_run.public_id}/").content.decode()
    times = re.findall(r'<time datetime="([^"]+)" data-format="(\w+)" title="([^"]+)">', body)
    assert len(times) >= 6
    for instant, _, title in times:
        assert instant.endswith("Z")
        assert re.fullmatch(r"[A-Z][a-z]{2} \d{1,2}(, \d{4})?, \d{2}:\d{2}:\d{2} UTC", title)
    assert {style for _, style, _ in times} >= {"datetime", "relative", "time"}
    assert "a.m." not in body and "p.m." not in body


@pytest.mark.django_db
def test_the_year_shows_when_it_is_not_this_one():
    from runs.templatetags.runs_ui import exact

    now = timezone.now()
    assert exact(now.replace(month=3, day=5, hour=7, minute=2, second=9)) == ("Mar 5, 07:02:09 UTC")
    assert exact(now.replace(year=now.year - 1, month=11, day=18, hour=12, minute=44)).startswith(
        f"Nov 18, {now.year - 1}, 12:44:"
    )


@pytest.mark.django_db
def test_heartbeat_warns_as_a_run_nears_its_gateways_lease(analyst_client, pipeline, gateway):
    gateway.lease_seconds = 600
    gateway.save()
    fresh = make_run(pipeline, status=RunStatus.RUNNING, ago=timedelta(minutes=20))
    late = make_run(pipeline, status=RunStatus.RUNNING, ago=timedelta(minutes=21))
    lost = make_run(pipeline, status=RunStatus.RUNNING, ago=timedelta(minutes=22))
    now = timezone.now()
    for run, silent in ((fresh, 12), (late, 400), (lost, 700)):
        Run.objects.filter(pk=run.pk).update(
            gateway=gateway, last_report_at=now - timedelta(seconds=silent)
        )
    body = analyst_client.get(LIST).content.decode()
    for run, state in ((fresh, "ok"), (late, "late"), (lost, "lost")):
        row = re.search(rf'<tr id="run-{run.public_id}".*?</tr>', body, re.S).group(0)
        beat = re.search(
            r'<span class="heartbeat is-(\w+)" data-heartbeat="[^"]+" data-lease="(\d+)"', row
        )
        assert beat and beat.groups() == (state, "600"), row
    # 12 s before the request, give or take the seconds a loaded machine takes to answer.
    assert re.search(r"last report 1[2-5]s ago", body)
    detail = analyst_client.get(f"/runs/{late.public_id}/").content.decode()
    assert 'class="heartbeat is-late"' in detail
    finished = make_run(pipeline)
    assert "heartbeat" not in analyst_client.get(f"/runs/{finished.public_id}/").content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "status", [RunStatus.FAILED, RunStatus.CANCELED, RunStatus.SUCCEEDED, RunStatus.RUNNING]
)
def test_the_progress_bar_takes_the_runs_status(analyst_client, pipeline, status):
    run = make_run(pipeline, status=status, progress=40.0)
    body = analyst_client.get(f"/runs/{run.public_id}/").content.decode()
    assert f'class="progress progress-lg progress-{status}' in body
    css = (settings.BASE_DIR / "static/css/app.css").read_text()
    assert ".progress.progress-failed > span { background: var(--h-failed); }" in css


@pytest.mark.django_db
def test_an_empty_log_says_whether_more_may_come(analyst_client, pipeline):
    running = make_run(pipeline, status=RunStatus.RUNNING, ago=timedelta(minutes=1))
    body = analyst_client.get(f"/runs/{running.public_id}/").content.decode()
    assert "No log lines yet" in body and "Live: new lines appear" in body
    assert "the log is complete" not in body
    report(running, status=RunStatus.SUCCEEDED)
    # The tail's last answer closes the footer and the empty state out of band.
    tail = analyst_client.get(f"/runs/{running.public_id}/log/?after=0").content.decode()
    assert re.search(r'<div class="log-foot" id="log-foot" hx-swap-oob="outerHTML">', tail)
    assert "the log is complete" in tail and "This run wrote no log lines." in tail
    body = analyst_client.get(f"/runs/{running.public_id}/").content.decode()
    assert "This run wrote no log lines." in body and "No log lines yet" not in body


@pytest.mark.django_db
def test_nodes_of_a_finished_run_do_not_tick(analyst_client, pipeline):
    run = make_run(pipeline, status=RunStatus.RUNNING, ago=timedelta(minutes=5))
    report(run, nodes=[{"nodeId": "src", "type": "source", "status": "running"}])
    assert "data-live-since" in analyst_client.get(f"/runs/{run.public_id}/live/").content.decode()
    report(run, status=RunStatus.FAILED)
    body = analyst_client.get(f"/runs/{run.public_id}/").content.decode()
    nodes = re.search(r'<table class="nodes">.*?</table>', body, re.S).group(0)
    assert "data-live-since" not in nodes


@pytest.mark.django_db
def test_the_cancel_lifecycle_shows_acknowledgement_deadline_and_the_system(
    operator_client, pipeline, settings
):
    settings.RUN_CANCEL_GRACE_SECONDS = 300
    run = make_run(pipeline, status=RunStatus.RUNNING, ago=timedelta(minutes=5))
    services.run_cancel(actor=Actor.system(), run=run)
    run.refresh_from_db()
    body = operator_client.get(f"/runs/{run.public_id}/").content.decode()
    deadline = run.cancel_requested_at + timedelta(seconds=300)
    assert f'data-countdown="{deadline.isoformat().replace("+00:00", "Z")}"' in body
    assert "Waiting for the runner's next report" in body
    report(run, append_log={"level": "info", "message": "stopping"})
    body = operator_client.get(f"/runs/{run.public_id}/").content.decode()
    assert "The runner reported again" in body
    Run.objects.filter(pk=run.pk).update(
        status=RunStatus.CANCELED, finished_by_system=True, finished_at=timezone.now()
    )
    body = operator_client.get(f"/runs/{run.public_id}/").content.decode()
    assert "Finished by the system" in body and "did not confirm within 5m 00s" in body
    assert "data-countdown" not in body
    # Lost while canceling: the reaper failed it, and the page says so rather than "canceled".
    Run.objects.filter(pk=run.pk).update(
        status=RunStatus.FAILED, error_summary="runner lost: no report for 11 minutes"
    )
    body = operator_client.get(f"/runs/{run.public_id}/").content.decode()
    assert "Failed by the system" in body and "runner lost: no report for 11 minutes" in body
    assert "did not confirm" not in body


# --- the viewer's time zone -----------------------------------------------------------------


@pytest.mark.django_db
def test_a_viewer_pins_a_time_zone_and_back_to_the_browsers(analyst_client, analyst):
    from common.models import UserPreference

    page = analyst_client.get("/preferences/")
    assert page.status_code == 200 and b'<option value="Europe/Berlin"' in page.content
    assert b'data-time-zone=""' in page.content
    response = analyst_client.post("/preferences/", {"timeZone": "Europe/Berlin"}, follow=True)
    assert b"Saved" in response.content
    assert b'data-time-zone="Europe/Berlin"' in analyst_client.get(LIST).content
    analyst_client.post("/preferences/", {"timeZone": ""})
    assert UserPreference.objects.get(user=analyst).time_zone == ""
    assert b'data-time-zone=""' in analyst_client.get(LIST).content


@pytest.mark.django_db
def test_an_unknown_time_zone_is_refused_and_changes_nothing(analyst_client, analyst):
    from common.models import UserPreference
    from common.preferences import user_preference_set

    user_preference_set(actor=Actor.of_user(analyst, source=Source.WEB), time_zone="UTC")
    before = list(UserPreference.objects.values_list("user_id", "time_zone", "updated_at"))
    response = analyst_client.post("/preferences/", {"timeZone": "Mars/Olympus_Mons"})
    assert response.status_code == 400
    assert b"timeZone" in response.content and b"Unknown time zone" in response.content
    assert list(UserPreference.objects.values_list("user_id", "time_zone", "updated_at")) == before


@pytest.mark.django_db
def test_fragments_and_polls_never_read_the_time_zone(
    analyst_client, pipeline, django_assert_max_num_queries
):
    make_run(pipeline)
    with CaptureQueriesContext(connection) as queries:
        body = analyst_client.get(LIST, HTTP_HX_REQUEST="true").content.decode()
        analyst_client.get(live_url(body))
    assert not [q for q in queries if "common_userpreference" in q["sql"]]


@pytest.mark.django_db
def test_the_benchmarks_poll_url_is_the_pages_own(analyst_client, pipeline):
    from runs.views import live_poll_url

    make_run(pipeline, status=RunStatus.RUNNING, ago=timedelta(minutes=1))
    assert analyst_client.get(live_poll_url()).status_code == 204
    assert analyst_client.get(live_poll_url("status=failed")).status_code == 204
