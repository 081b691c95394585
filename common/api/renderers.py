"""JSON out through orjson, a C encoder: on a runner's full answer (500 log lines, 2000 samples)
``json.dumps`` was a large share of the request (bench/RESULTS.md).

The output is what DRF's ``JSONRenderer`` writes for the same data (UTF-8, compact), and
anything orjson does not know (a Decimal, a lazy translation) goes through DRF's own encoder,
and what it refuses (an integer beyond 64 bits) through DRF's renderer, so every value a view
returns today keeps its shape.
"""

import json
from typing import Any

import orjson
from rest_framework.renderers import JSONRenderer
from rest_framework.utils.encoders import JSONEncoder

from common.sql import RawJSON

_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME


class _Encoder(JSONEncoder):
    """DRF's encoder, which also reads the JSON text the database wrote (``RawJSON``)."""

    def default(self, obj: Any) -> Any:
        if isinstance(obj, RawJSON):
            return json.loads(obj.text)
        return super().default(obj)


_fallback = _Encoder()


def _default(value: Any) -> Any:
    if isinstance(value, RawJSON):
        return orjson.Fragment(value.text)  # embedded as written, never decoded
    return _fallback.default(value)


def dumps(data: Any) -> bytes:
    return orjson.dumps(data, default=_default, option=_OPTIONS)


class FastJSONRenderer(JSONRenderer):
    encoder_class = _Encoder

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        if data is None:
            return b""
        try:
            return dumps(data)
        except orjson.JSONEncodeError:
            # What orjson refuses and ``json`` writes: integers beyond 64 bits (a runner's
            # metric may be one).
            return super().render(data, accepted_media_type, renderer_context)
