"""The one keyset paginator, both directions, under orders with NULLs and ties."""

import pytest

from common.api.pagination import (
    BoundedCount,
    FirstPage,
    bounded_count,
    decode_cursor,
    encode_cursor,
    keyset_iterate,
    keyset_page,
)
from runs.filters import RUN_SORTS
from runs.models import Run
from tests.runs.test_sets_api import expected_order, make_sortable_runs

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("sort", list(RUN_SORTS))
def test_older_then_newer_pages_walk_the_same_order_both_ways(pipeline, sort):
    ordering = RUN_SORTS[sort]
    runs = make_sortable_runs(pipeline, 17)
    expected = expected_order(runs, sort)
    queryset = Run.objects.all()

    pages, position = [], None
    while True:
        page = keyset_page(queryset, position=position, limit=3, ordering=ordering)
        pages.append([run.public_id for run in page.items])
        if page.older is None:
            break
        # Through the signed cursor, as the page's links carry it.
        position = decode_cursor(encode_cursor(page.older, ordering=ordering), ordering=ordering)
    assert [run_id for chunk in pages for run_id in chunk] == expected

    # Back from the last page with the "newer" cursors: the same pages, in reverse.
    back = [pages[-1]]
    newer = page.newer
    while newer is not None:
        page = keyset_page(queryset, position=newer, limit=3, ordering=ordering)
        back.append([run.public_id for run in page.items])
        newer = page.newer
    assert list(reversed(back)) == pages
    assert [run_id for chunk in reversed(back) for run_id in chunk] == expected


@pytest.mark.parametrize("sort", ["-durationSeconds", "durationSeconds", "-startedAt"])
def test_iterating_in_chunks_yields_every_row_once_in_order(pipeline, sort):
    runs = make_sortable_runs(pipeline, 13)

    rows = list(keyset_iterate(Run.objects.all(), ordering=RUN_SORTS[sort], chunk=4))
    values = list(
        keyset_iterate(Run.objects.values("id", "public_id"), ordering=RUN_SORTS[sort], chunk=5)
    )

    assert [run.public_id for run in rows] == expected_order(runs, sort)
    assert [row["public_id"] for row in values] == expected_order(runs, sort)


def test_the_bounded_count_counts_to_its_cap_and_a_filter_no_row_matches_is_zero(pipeline):
    runs = make_sortable_runs(pipeline, 7)
    assert bounded_count(Run.objects.all(), cap=10) == 7
    assert bounded_count(Run.objects.all(), cap=5) == 6  # the cap and one more: "at least 5"
    assert bounded_count(Run.objects.filter(pk__in=[runs[0].pk, runs[1].pk]), cap=5) == 2
    assert bounded_count(Run.objects.filter(pk__in=[]), cap=5) == 0
    assert bounded_count(Run.objects.none(), cap=5) == 0
    assert bounded_count(Run.objects.order_by("-created_at").filter(status="nope"), cap=5) == 0


@pytest.mark.parametrize("sort", [name for name, o in RUN_SORTS.items() if not o.nullable])
def test_a_compiled_first_page_reads_what_the_table_holds_each_time(pipeline, sort):
    ordering = RUN_SORTS[sort]
    runs = make_sortable_runs(pipeline, 7)
    values = Run.objects.values("id", "public_id")
    first_page = FirstPage.of(values, limit=3, ordering=ordering)
    counted = BoundedCount.of(Run.objects.all(), cap=8)
    assert first_page is not None

    def as_read(page):
        return [row["public_id"] for row in page.items], page.older, page.newer

    expected = keyset_page(values, position=None, limit=3, ordering=ordering)
    assert as_read(first_page.read()) == as_read(expected)
    assert expected.older is not None and expected.newer is None
    assert counted.count() == 7

    # Compiled before these runs existed, the same statements read them.
    runs += make_sortable_runs(pipeline, 4, offset=7)
    page = first_page.read()
    assert [row["public_id"] for row in page.items] == expected_order(runs, sort)[:3]
    assert as_read(page) == as_read(keyset_page(values, position=None, limit=3, ordering=ordering))
    assert counted.count() == 9  # the cap and one more


def test_an_order_read_in_two_segments_has_no_compiled_first_page(pipeline):
    nullable = [ordering for ordering in RUN_SORTS.values() if ordering.nullable]
    assert nullable
    for ordering in nullable:
        assert FirstPage.of(Run.objects.values("id"), limit=3, ordering=ordering) is None


def test_a_compiled_count_of_a_filter_no_row_matches_is_zero_without_a_statement(
    pipeline, django_assert_num_queries
):
    make_sortable_runs(pipeline, 3)
    counted = BoundedCount.of(Run.objects.filter(pk__in=[]), cap=5)
    assert counted.sql is None
    with django_assert_num_queries(0):
        assert counted.count() == 0
