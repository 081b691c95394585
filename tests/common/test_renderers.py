"""The API's JSON renderer (orjson) writes what DRF's JSONRenderer writes."""

import datetime
import decimal
import json
import uuid

from django.utils.translation import gettext_lazy
from rest_framework.exceptions import ErrorDetail
from rest_framework.renderers import JSONRenderer

from common.api.renderers import FastJSONRenderer


def test_the_same_json_as_drf_for_every_kind_of_value():
    data = {
        "instant": datetime.datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=datetime.UTC),
        "day": datetime.date(2026, 1, 2),
        "amount": decimal.Decimal("1.5"),
        "lazy": gettext_lazy("text"),
        "error": ErrorDetail("bad", code="invalid"),
        "id": uuid.UUID(int=7),
        "pair": (1, 2),
        "none": None,
        "unicode": "é ✓",
        3: "a non-string key",
    }
    for value in (data, {**data, "huge": 2**80}):  # orjson refuses the latter: DRF renders it
        fast = FastJSONRenderer().render(value)
        assert json.loads(fast) == json.loads(JSONRenderer().render(value))
    assert b"\\u" not in FastJSONRenderer().render({"unicode": "é ✓"})


def test_nothing_renders_as_an_empty_body():
    assert FastJSONRenderer().render(None) == b""
