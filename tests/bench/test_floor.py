"""The benchmark's reference endpoints: off unless ``BENCH_ENDPOINTS`` is set, and each does what
the floor of ``bench.cost`` says it does (one UPDATE of the run's ``updated_at``)."""

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import Resolver404, resolve
from rest_framework.test import APIClient

from runs.models import Run


def test_the_reference_endpoints_are_not_mounted_by_default():
    assert settings.BENCH_ENDPOINTS is False
    for path in ("/bench/floor/run_x", "/bench/bare/run_x", "/bench/noop"):
        with pytest.raises(Resolver404):
            resolve(path)


@pytest.mark.django_db
@pytest.mark.urls("config.bench_urls")
@pytest.mark.parametrize("route", ["floor", "bare"])
def test_the_floor_is_one_indexed_update(route, run):
    before = Run.objects.get(pk=run.pk).updated_at
    with CaptureQueriesContext(connection) as statements:
        response = APIClient().patch(
            f"/bench/{route}/{run.public_id}", {"appendLog": {"level": "info"}}, format="json"
        )
    assert response.status_code == 200
    assert response.json()["updated"] == 1
    [update] = [query["sql"] for query in statements.captured_queries]
    assert update.startswith("UPDATE ")
    assert Run.objects.get(pk=run.pk).updated_at > before


@pytest.mark.django_db
@pytest.mark.urls("config.bench_urls")
def test_the_noop_view_touches_nothing(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        assert client.get("/bench/noop").status_code == 200
