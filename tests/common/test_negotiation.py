"""``FastContentNegotiation`` answers what DRF's own negotiation answers, for every request."""

import pytest
from drf_spectacular.renderers import OpenApiJsonRenderer, OpenApiYamlRenderer
from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from common.api.negotiation import FastContentNegotiation
from common.api.renderers import FastJSONRenderer

RENDERERS = [
    [FastJSONRenderer()],
    [JSONRenderer(), BrowsableAPIRenderer()],
    [BrowsableAPIRenderer(), JSONRenderer()],
    [OpenApiYamlRenderer(), OpenApiJsonRenderer()],
]
ACCEPTS = [
    None,
    "",
    "*/*",
    " */* ",
    "application/json",
    "application/json; indent=4",
    "text/html",
    "application/json, */*",
    "application/*",
    "text/plain",
]


def answer(negotiation, request, renderers, suffix):
    try:
        renderer, media_type = negotiation.select_renderer(request, renderers, suffix)
    except NotAcceptable:
        return "406"
    except Exception as exc:  # the format override's 404, whatever DRF raises
        return type(exc).__name__
    return type(renderer), media_type


@pytest.mark.parametrize(
    "renderers", RENDERERS, ids=lambda r: "+".join(type(x).__name__ for x in r)
)
@pytest.mark.parametrize("accept", ACCEPTS)
@pytest.mark.parametrize("query", ["", "?format=json", "?format=xml", "?x=1"])
@pytest.mark.parametrize("suffix", [None, "json"])
def test_the_same_renderer_and_media_type_as_drf(renderers, accept, query, suffix):
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    request = Request(APIRequestFactory().get("/api/runs" + query, **headers))
    ours = answer(FastContentNegotiation(), request, renderers, suffix)
    drfs = answer(DefaultContentNegotiation(), request, renderers, suffix)
    assert ours == drfs
