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


# The machine routes' credential-free 401 (``BearerOnlyApiView``): a copy of DRF's own answer.

METHODS = ["get", "head", "options", "post", "put", "patch", "delete"]


def bearer_only_urls(run) -> list[str]:
    return ["/api/agent/runs", f"/api/agent/runs/{run.public_id}", "/api/agent/runs/run_nonesuch"]


def exchange(client, method: str, url: str, **extra):
    """One request with a body (ignored by a refusal), as status, body and every header."""
    response = client.generic(
        method.upper(), url, b'{"appendLog": 1}', content_type="application/json", **extra
    )
    return response.status_code, response.content, dict(response.headers.items())


@pytest.mark.django_db
@pytest.mark.parametrize("method", METHODS)
def test_a_replayed_credential_free_refusal_is_drfs_answer_byte_for_byte(client, run, method):
    from unittest import mock

    from common.api import views

    for url in bearer_only_urls(run):
        views._forget_replays()
        with mock.patch.object(views, "replays_credential_free_refusal", return_value=False):
            through_drf = exchange(client, method, url)
        first = exchange(client, method, url)  # through DRF, kept
        with mock.patch.object(APIView, "dispatch", side_effect=AssertionError("not replayed")):
            replayed = exchange(client, method, url)
            with_plain_accept = exchange(client, method, url, HTTP_ACCEPT="application/json")
        assert through_drf[0] == 401, through_drf
        assert through_drf[2]["WWW-Authenticate"] == 'Bearer realm="gateway"'
        assert method == "head" or b"not_authenticated" in through_drf[1]  # HEAD: no body
        assert first == through_drf
        assert replayed == through_drf, (url, method)
        assert with_plain_accept == through_drf


@pytest.mark.django_db
def test_a_request_carrying_anything_else_goes_through_drf(client, run, agent_client):
    from unittest import mock

    url = f"/api/agent/runs/{run.public_id}"
    assert client.get(url).status_code == 401  # a refusal is kept for replays
    real_dispatch = APIView.dispatch
    with mock.patch.object(APIView, "dispatch", autospec=True, side_effect=real_dispatch) as drf:
        cases = [
            (client.get(url, HTTP_AUTHORIZATION="Basic dXNlcjpwdw=="), 401, "not_authenticated"),
            (client.get(url, HTTP_AUTHORIZATION="Bearer nonesuch"), 401, "authentication_failed"),
            (client.get(url, HTTP_ACCEPT="text/html"), 406, "not_acceptable"),
            (client.get(url, HTTP_ACCEPT=""), 406, "not_acceptable"),
            (client.get(url + "?format=xml"), 404, "not_found"),
            (client.get(url + "?x=1"), 401, "not_authenticated"),
            (agent_client.get(url), 200, None),
        ]
    assert drf.call_count == len(cases)
    for response, status, code in cases:
        assert response.status_code == status, response.content
        if code is not None:
            assert response.json()["code"] == code


def test_a_view_reading_more_than_the_authorization_header_cannot_replay():
    from rest_framework.authentication import SessionAuthentication

    from common.api.views import BearerOnlyApiView

    class WithSession(BearerOnlyApiView):
        authentication_classes = [SessionAuthentication]

    with pytest.raises(TypeError, match="SessionAuthentication"):
        WithSession.as_view()


def test_message_storage_is_set_up_for_pages_only(rf):
    from django.contrib.sessions.middleware import SessionMiddleware
    from django.http import HttpResponse

    from config.middleware import PageMessageMiddleware

    seen = {}

    def view(request):
        seen[request.path] = hasattr(request, "_messages")
        return HttpResponse()

    stack = SessionMiddleware(PageMessageMiddleware(view))
    for path in ["/api/agent/runs", "/api/runs", "/runs", "/"]:
        assert stack(rf.get(path)).status_code == 200
    assert seen == {"/api/agent/runs": False, "/api/runs": False, "/runs": True, "/": True}
