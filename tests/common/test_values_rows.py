"""``common.sql.values_rows``: the rows a ``.values()`` queryset gives, with an unfiltered
statement planned once per connection on PostgreSQL."""

from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import F
from django.utils import timezone

from common.sql import values_rows
from runs.api.read_views import LIST_VALUES
from runs.models import Run
from tests.factories import GatewayFactory, PipelineFactory, RunFactory


@pytest.fixture
def runs(pipeline):
    now = timezone.now()
    other = PipelineFactory(name="billing_to_lake", default_gateway=GatewayFactory())
    made = [
        RunFactory(
            pipeline=pipeline if index % 2 else other,
            created_at=now - timedelta(minutes=index),
            labels={"team": f"t{index}", "env": "prod"} if index % 3 else {},
            status="succeeded" if index % 2 else "queued",
            rows_loaded=index * 1000 if index % 2 else None,
        )
        for index in range(7)
    ]
    # A run targeted at no gateway: its gateway's columns are NULL in the outer join.
    made.append(RunFactory(pipeline=other, gateway=None, created_at=now - timedelta(hours=1)))
    return made


def page(**filters):
    return (
        Run.objects.filter(**filters)
        .values(*LIST_VALUES)
        .annotate(keyset_value=F("created_at"))
        .order_by("-keyset_value", "-pk")[:5]
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    "filters",
    [
        {},
        {"status": "queued"},
        {"pipeline__name": "billing_to_lake", "rows_loaded__isnull": True},
        {"pk__in": []},
    ],
)
def test_the_rows_are_those_the_queryset_gives(runs, filters):
    expected = list(page(**filters))

    rows = values_rows(page(**filters))

    assert rows == expected
    assert (rows == []) == ("pk__in" in filters)
    if not filters:
        assert len(rows) == 5
        assert {type(row["labels"]) for row in rows} == {dict}
        assert all(row["created_at"].tzinfo is not None for row in rows)


@pytest.mark.django_db
def test_a_queryset_of_models_is_refused(runs):
    with pytest.raises(TypeError):
        values_rows(Run.objects.all())


def prepared_statements() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [statement for (statement,) in cursor.fetchall()]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("prepare", [True, False])
def test_only_a_statement_with_nothing_to_bind_is_prepared(runs, settings, prepare):
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's")
    settings.PREPARE_HOT_STATEMENTS = prepare
    connection.close()  # a session of its own: nothing prepared yet

    for _ in range(3):
        unfiltered = values_rows(page())
        filtered = values_rows(page(status="queued"))

    assert unfiltered == list(page())
    assert filtered == list(page(status="queued"))
    prepared = prepared_statements()
    if not prepare:
        assert prepared == []
        return
    # The unfiltered page once, however often it ran; the filtered one never (its plan is
    # made for each request's values).
    assert len(prepared) == 1
    assert prepared[0].startswith('SELECT "runs_run"."id"')
    assert "WHERE" not in prepared[0]
