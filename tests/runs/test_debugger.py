"""Run detail as a debugger: the node timeline, the first error with context, line anchors,
structured log filters and the /logs/ search page, through the HTTP client."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from runs.models import LogLine, RunNode, RunStatus
from runs.timeline import Span, critical_path, timeline_svg
from tests.factories import RunFactory
from tests.runs.conftest import report

pytestmark = pytest.mark.django_db


def shown_seqs(body: str) -> list[int]:
    return [int(seq) for seq in re.findall(r'<li class="log-line[^"]*" id="L(\d+)"', body)]


@pytest.fixture
def failed_run(pipeline):
    """A finished run: 60 lines on three nodes, errors at lines 30 and 45, four nodes."""
    start = timezone.now() - timedelta(minutes=30)
    run = RunFactory(
        pipeline=pipeline,
        status=RunStatus.FAILED,
        created_at=start,
        started_at=start + timedelta(seconds=40),
        finished_at=start + timedelta(minutes=10),
        error_summary="Snowflake: warehouse is suspended",
    )
    entries = []
    for seq in range(1, 61):
        node = ["n_extract", "n_load", "n_check"][seq % 3]
        level = "error" if seq in (30, 45) else ("warn" if seq % 7 == 0 else "info")
        entries.append({"level": level, "message": f"message {seq} on {node}", "nodeId": node})
    report(run, log_entries=entries)
    t = run.started_at
    report(
        run,
        nodes=[
            {
                "nodeId": "n_extract",
                "type": "source",
                "status": "succeeded",
                "startedAt": t.isoformat(),
                "finishedAt": (t + timedelta(minutes=3)).isoformat(),
                "metrics": {"rowsOut": 1200},
            },
            {
                "nodeId": "n_side",
                "type": "audit",
                "status": "succeeded",
                "startedAt": (t + timedelta(seconds=10)).isoformat(),
                "finishedAt": (t + timedelta(minutes=1)).isoformat(),
            },
            {
                "nodeId": "n_load",
                "type": "sink",
                "status": "failed",
                "startedAt": (t + timedelta(minutes=3)).isoformat(),
                "finishedAt": (t + timedelta(minutes=9)).isoformat(),
                "retries": 2,
                "metrics": {"rowsIn": 900},
            },
            {"nodeId": "n_check", "type": "test", "status": "skipped"},
        ],
    )
    run.refresh_from_db()
    return run


# --- node timeline -------------------------------------------------------------------------


def test_timeline_draws_a_bar_per_started_node_coloured_by_status(analyst_client, failed_run):
    body = analyst_client.get(f"/runs/{failed_run.public_id}/").content.decode()
    svg = re.search(r'<svg class="timeline".*?</svg>', body, re.S).group(0)
    nodes = re.findall(r'<a class="(tl-node [^"]*)" href="([^"]+)" data-node-id="([^"]+)"', svg)
    assert [node_id for _, _, node_id in nodes] == ["n_extract", "n_side", "n_load", "n_check"]
    classes = {node_id: cls for cls, _, node_id in nodes}
    assert "tl-succeeded" in classes["n_extract"] and "tl-failed" in classes["n_load"]
    assert svg.count('class="tl-bar"') == 3  # n_check never started: a row, no bar
    assert "↻2" in svg and "2 retries" in svg
    assert "900 rows" in svg and "1,200 rows" in svg
    assert "run (queued 40s)" in svg
    hrefs = {node_id: href for _, href, node_id in nodes}
    assert hrefs["n_load"] == f"/runs/{failed_run.public_id}/?nodeId=n_load#log-panel"


def test_the_critical_path_is_the_chain_that_set_the_runs_length(analyst_client, failed_run):
    body = analyst_client.get(f"/runs/{failed_run.public_id}/").content.decode()
    assert 'data-critical="n_extract n_load"' in body
    critical = re.findall(r'class="tl-node [^"]*is-critical[^"]*"[^>]*data-node-id="([^"]+)"', body)
    assert critical == ["n_extract", "n_load"]
    assert "tl-critical-line" in body


def test_critical_path_follows_the_latest_predecessor(pipeline):
    run = RunFactory(pipeline=pipeline)
    t = timezone.now()

    def span(name, start, end):
        return Span(
            RunNode(node_id=name), t + timedelta(seconds=start), t + timedelta(seconds=end), False
        )

    spans = [
        span("a", 0, 10),
        span("b", 0, 30),  # the longer parallel branch
        span("c", 31, 40),
        span("d", 12, 20),
        span("e", 41, 90),
    ]
    assert [s.node.node_id for s in critical_path(spans)] == ["b", "c", "e"]
    assert critical_path([]) == []
    assert timeline_svg(run, []) == ""


def test_a_running_node_reaches_now_and_redraws_on_the_live_poll(analyst_client, pipeline):
    start = timezone.now() - timedelta(minutes=5)
    run = RunFactory(pipeline=pipeline, created_at=start)
    report(run, status=RunStatus.RUNNING)
    report(run, nodes=[{"nodeId": "n1", "status": "running", "startedAt": start.isoformat()}])
    run.refresh_from_db()
    live = analyst_client.get(f"/runs/{run.public_id}/live/").content.decode()
    assert 'class="tl-node tl-running is-critical is-open"' in live
    assert "so far" in live
    report(
        run, nodes=[{"nodeId": "n2", "status": "running", "startedAt": timezone.now().isoformat()}]
    )
    live = analyst_client.get(f"/runs/{run.public_id}/live/").content.decode()
    assert 'data-node-id="n2"' in live


def test_a_selected_node_filters_the_log_and_highlights_its_row(analyst_client, failed_run):
    body = analyst_client.get(f"/runs/{failed_run.public_id}/?nodeId=n_load").content.decode()
    lines = LogLine.objects.filter(run=failed_run, node_id="n_load").order_by("seq")
    assert shown_seqs(body) == [line.seq for line in lines]
    assert '<tr data-node-id="n_load" class="is-selected" aria-current="true">' in body
    assert '<option value="n_load" selected>n_load</option>' in body


def test_run_detail_queries_do_not_grow_with_nodes_or_lines(
    analyst_client, pipeline, django_assert_max_num_queries
):
    small = RunFactory(pipeline=pipeline, status=RunStatus.FAILED)
    report(small, append_log={"level": "error", "message": "boom"})
    report(small, nodes=[{"nodeId": "n0", "status": "failed"}])
    big = RunFactory(pipeline=pipeline, status=RunStatus.FAILED)
    report(big, log_entries=[{"level": "info", "message": f"line {i}"} for i in range(500)])
    report(big, append_log={"level": "error", "message": "boom", "nodeId": "n7"})
    t = timezone.now()
    report(
        big,
        nodes=[
            {
                "nodeId": f"n{i}",
                "status": "succeeded",
                "startedAt": (t + timedelta(seconds=i)).isoformat(),
                "finishedAt": (t + timedelta(seconds=i + 5)).isoformat(),
                "retries": i % 3,
            }
            for i in range(50)
        ],
    )
    analyst_client.get(f"/runs/{small.public_id}/")
    for url in (f"/runs/{small.public_id}/", f"/runs/{big.public_id}/"):
        for query in ("", "?errors=1", "?around=400", "?nodeId=n7&level=error&logq=boom"):
            # 1 of them: the run's audit events; 2: the viewer's permissions; 1: the baseline
            with django_assert_max_num_queries(12):
                assert analyst_client.get(url + query).status_code == 200


# --- first error and context -----------------------------------------------------------------


def test_the_error_panel_and_a_button_lead_to_the_first_error(analyst_client, failed_run):
    body = analyst_client.get(f"/runs/{failed_run.public_id}/").content.decode()
    error_panel = re.search(r'<section class="panel panel-error".*?</section>', body, re.S).group(0)
    assert f'href="/runs/{failed_run.public_id}/?around=30#L30"' in error_panel
    assert "line 30" in error_panel and "n_extract" in error_panel
    button = re.search(r"<a [^>]*data-first-error[^>]*>First error</a>", body).group(0)
    assert f'href="/runs/{failed_run.public_id}/?around=30#L30"' in button


def test_around_shows_the_line_with_context_whatever_the_level_filter(analyst_client, failed_run):
    url = f"/runs/{failed_run.public_id}/"
    body = analyst_client.get(url, {"around": 30, "level": "error"}).content.decode()
    assert shown_seqs(body) == list(range(20, 41))
    assert re.search(r'<li class="log-line lvl-error is-focus" id="L30"', body)
    # Context lines the level filter would hide are shown dimmed; the other error is not near.
    assert re.search(r'<li class="log-line lvl-info is-context" id="L29"', body)
    narrow = analyst_client.get(url, {"around": 30, "context": 3}).content.decode()
    assert shown_seqs(narrow) == list(range(27, 34))
    edge = analyst_client.get(url, {"around": 58}).content.decode()
    assert shown_seqs(edge) == list(range(48, 61))
    assert "every 2s" not in body  # a window of context does not tail


def test_errors_with_context_is_combinable_with_node_and_text(analyst_client, failed_run):
    url = f"/runs/{failed_run.public_id}/"
    body = analyst_client.get(url, {"errors": 1, "context": 2}).content.decode()
    assert shown_seqs(body) == [28, 29, 30, 31, 32, 43, 44, 45, 46, 47]
    assert "2 error lines with 2 lines of context" in body
    only_45 = analyst_client.get(url, {"errors": 1, "context": 1, "logq": "message 45"})
    assert shown_seqs(only_45.content.decode()) == [44, 45, 46]
    on_node = analyst_client.get(url, {"errors": 1, "context": 0, "nodeId": "n_extract"})
    assert shown_seqs(on_node.content.decode()) == [30, 45]
    none = analyst_client.get(url, {"errors": 1, "nodeId": "n_check"}).content.decode()
    assert shown_seqs(none) == [] and "No lines match the filter." in none


def test_level_node_and_text_filters_combine(analyst_client, failed_run):
    url = f"/runs/{failed_run.public_id}/"
    body = analyst_client.get(
        url, {"level": ["warn", "error"], "nodeId": "n_extract", "logq": "MESSAGE"}
    ).content.decode()
    expected = LogLine.objects.filter(
        run=failed_run, level__in=["warn", "error"], node_id="n_extract"
    ).values_list("seq", flat=True)
    assert shown_seqs(body) == sorted(expected) and expected


def test_a_run_without_errors_has_no_first_error_button(analyst_client, pipeline):
    run = RunFactory(pipeline=pipeline, status=RunStatus.SUCCEEDED)
    report(run, append_log={"level": "warn", "message": "slow"})
    body = analyst_client.get(f"/runs/{run.public_id}/").content.decode()
    assert "data-first-error" not in body


# --- anchors ---------------------------------------------------------------------------------


def test_every_line_has_a_stable_anchor_and_a_number(analyst_client, failed_run):
    body = analyst_client.get(f"/runs/{failed_run.public_id}/").content.decode()
    assert shown_seqs(body) == list(range(1, 61))
    assert '<a class="ln" href="#L42" aria-label="Line 42">42</a>' in body
    assert "data-log-copy" in body
    assert 'data-log-first="1" data-log-last="60" data-log-cap="500"' in body


def test_an_anchor_to_a_trimmed_line_says_it_is_no_longer_kept(analyst_client, pipeline, settings):
    settings.RUN_LOG_CAP = 10
    run = RunFactory(pipeline=pipeline, status=RunStatus.SUCCEEDED)
    for index in range(25):
        report(run, append_log={"level": "info", "message": f"l{index}"})
    run.refresh_from_db()
    body = analyst_client.get(f"/runs/{run.public_id}/", {"around": 3}).content.decode()
    assert "Line 3: this line is no longer kept (the newest 10 are)" in body
    assert shown_seqs(body) == []
    page = analyst_client.get(f"/runs/{run.public_id}/").content.decode()
    assert shown_seqs(page) == list(range(16, 26))
    assert 'data-log-first="16" data-log-last="25" data-log-cap="10"' in page
    ahead = analyst_client.get(f"/runs/{run.public_id}/", {"around": 99}).content.decode()
    assert "Line 99 does not exist" in ahead


def test_wrap_and_timestamp_toggles_live_in_the_url(analyst_client, failed_run):
    url = f"/runs/{failed_run.public_id}/"
    body = analyst_client.get(url, {"level": "warn"}).content.decode()
    assert 'class="log-box" id="log-box"' in body
    assert f'href="{url}?level=warn&amp;wrap=0#log-panel"' in body
    assert f'href="{url}?level=warn&amp;ts=0#log-panel"' in body
    off = analyst_client.get(url, {"level": "warn", "wrap": 0, "ts": 0}).content.decode()
    assert 'class="log-box log-nowrap log-no-ts"' in off
    assert '<input type="hidden" name="wrap" value="0">' in off
    assert f'href="{url}?level=warn&amp;ts=0#log-panel"' in off  # wrap back on, keeps ts=0


@pytest.mark.parametrize(
    "query",
    ["around=abc", "around=-4", "context=9999", "context=x", "nodeId=" + "x" * 300, "level=nope"],
)
def test_nonsense_log_parameters_still_answer_the_page(analyst_client, failed_run, query):
    response = analyst_client.get(f"/runs/{failed_run.public_id}/?{query}")
    assert response.status_code == 200
    assert shown_seqs(response.content.decode()) == list(range(1, 61))


def test_the_log_tail_keeps_the_node_filter(analyst_client, pipeline):
    run = RunFactory(pipeline=pipeline)
    report(run, status=RunStatus.RUNNING)
    report(run, append_log={"level": "info", "message": "one", "nodeId": "a"})
    run.refresh_from_db()
    body = analyst_client.get(f"/runs/{run.public_id}/", {"nodeId": "a"}).content.decode()
    tail = re.search(r'<div id="log-tail"[^>]*>', body).group(0)
    assert f"after={run.log_seq}&amp;nodeId=a" in tail
    report(run, append_log={"level": "info", "message": "on b", "nodeId": "b"})
    report(run, append_log={"level": "info", "message": "on a", "nodeId": "a"})
    appended = analyst_client.get(
        f"/runs/{run.public_id}/log/", {"after": run.log_seq, "nodeId": "a"}
    ).content.decode()
    assert "on a" in appended and "on b" not in appended


# --- /logs/ ----------------------------------------------------------------------------------


def test_the_search_page_lists_hits_that_open_the_run_at_the_line(analyst_client, failed_run):
    response = analyst_client.get("/logs/", {"q": "message 45"})
    body = response.content.decode()
    assert response.status_code == 200
    assert f'href="/runs/{failed_run.public_id}/#L45"' in body
    assert "<mark>message 45</mark> on n_extract" in body


def test_the_search_page_refuses_short_text_and_says_why(analyst_client, failed_run):
    response = analyst_client.get("/logs/", {"q": "ab"})
    assert response.status_code == 400
    assert "at least 3 letters" in response.content.decode()
    intro = analyst_client.get("/logs/")
    assert intro.status_code == 200 and "Type at least three letters" in intro.content.decode()


def test_the_search_page_pages_and_keeps_its_filters(analyst_client, pipeline):
    for _ in range(3):
        run = RunFactory(pipeline=pipeline, status=RunStatus.FAILED)
        report(run, log_entries=[{"level": "error", "message": f"oops {i}"} for i in range(30)])
    first = analyst_client.get("/logs/", {"q": "oops", "status": "failed"}).content.decode()
    assert first.count("<mark>oops</mark>") == 50
    older = re.search(r'href="(/logs/\?[^"]+cursor=[^"]+)"', first).group(1).replace("&amp;", "&")
    assert "status=failed" in older
    second = analyst_client.get(older).content.decode()
    assert second.count("<mark>oops</mark>") == 40


def test_the_search_page_and_fragment_keep_a_constant_query_count(
    analyst_client, pipeline, django_assert_max_num_queries
):
    for index in range(60):
        run = RunFactory(pipeline=pipeline)
        report(run, append_log={"level": "info", "message": f"needle {index}"})
    # 2 of each: the viewer's permissions
    with django_assert_max_num_queries(8):
        analyst_client.get("/logs/", {"q": "needle"})
    with django_assert_max_num_queries(5):
        analyst_client.get("/logs/", {"q": "needle"}, HTTP_HX_REQUEST="true")


def test_the_search_page_needs_a_signed_in_user(client):
    response = client.get("/logs/?q=abc")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_log_lines_are_escaped(analyst_client, pipeline):
    run = RunFactory(pipeline=pipeline, status=RunStatus.RUNNING)
    report(
        run,
        append_log={
            "level": "error",
            "message": '<script>alert("x")</script> & <b>bold</b>',
            "nodeId": '"><img src=x onerror=alert(1)>',
        },
    )
    report(
        run,
        nodes=[
            {
                "nodeId": '"><img src=x onerror=alert(1)>',
                "status": "running",
                "startedAt": timezone.now().isoformat(),
            }
        ],
    )
    run.refresh_from_db()
    detail = analyst_client.get(f"/runs/{run.public_id}/").content.decode()
    assert 'class="timeline"' in detail and "&quot;&gt;&lt;img src=x" in detail
    for url in (f"/runs/{run.public_id}/", f"/runs/{run.public_id}/log/?after=0"):
        body = analyst_client.get(url).content.decode()
        assert "<script>alert" not in body and "<img src=x" not in body
        assert (
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;"
            in body
        )
    svg_body = analyst_client.get("/logs/?q=script").content.decode()
    assert "<script>alert" not in svg_body and "&lt;<mark>script</mark>&gt;" in svg_body
