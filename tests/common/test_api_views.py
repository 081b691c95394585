"""Every API view shares one base (``common.api.views``), so the checks it makes for every route
(a NUL character in a query parameter: 400) cannot be forgotten by a new view."""

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.views import APIView

from common.api.views import ApiViewMixin

THIRD_PARTY = (SpectacularAPIView, SpectacularSwaggerView)


def drf_views(patterns=None, prefix=""):
    for entry in patterns if patterns is not None else get_resolver().url_patterns:
        if isinstance(entry, URLResolver):
            yield from drf_views(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            cls = getattr(entry.callback, "cls", None)
            if cls is not None and issubclass(cls, APIView):
                yield prefix + str(entry.pattern), cls


def test_every_api_view_shares_the_base():
    views = [(route, cls) for route, cls in drf_views() if not issubclass(cls, THIRD_PARTY)]
    assert len(views) >= 10
    outside = [route for route, cls in views if not issubclass(cls, ApiViewMixin)]
    assert outside == []


@pytest.mark.django_db
def test_a_nul_in_a_query_parameter_of_any_route_is_a_400(agent_client, run, key_client):
    for client, url in [
        (agent_client, f"/api/agent/runs/{run.public_id}?x=a%00b"),
        (key_client, f"/api/runs/{run.public_id}/nodes?n%00=1"),
        (key_client, "/api/runs?status=fai%00led"),
    ]:
        response = client.get(url)
        assert response.status_code == 400, (url, response.content)
        assert response.json()["errors"], response.json()
        assert "NUL" in str(response.json()["errors"])
