"""The one keyset paginator, both directions, under orders with NULLs and ties."""

import pytest

from common.api.pagination import (
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
