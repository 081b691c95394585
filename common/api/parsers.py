"""A JSON parser that refuses what the database or the services would choke on.

Every refusal names the problem: bodies over the size limit (413), bytes that are not UTF-8,
NaN/Infinity, nesting deeper than MAX_DEPTH, and NUL characters or lone surrogates in any key or
string (PostgreSQL refuses NUL in text and jsonb; surrogates cannot be encoded).
"""

import json
from typing import Any

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError, ValidationError
from rest_framework.parsers import BaseParser

MAX_DEPTH = 32


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body is too large."
    default_code = "payload_too_large"


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _bad_string(value: str) -> str | None:
    if "\x00" in value:
        return "NUL characters are not allowed."
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "Lone surrogate characters are not allowed."
    return None


def check_json_value(data: Any) -> None:
    """Walk parsed JSON iteratively; raise ValidationError naming the first bad path."""
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ParseError(f"JSON is nested deeper than {MAX_DEPTH} levels.")
        if isinstance(value, str):
            if problem := _bad_string(value):
                raise ValidationError({path or "body": [problem]})
        elif isinstance(value, dict):
            for key, item in value.items():
                child = f"{path}.{key}" if path else key
                if problem := _bad_string(key):
                    raise ValidationError({path or "body": [f"Key: {problem}"]})
                stack.append((item, child, depth + 1))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                stack.append((item, f"{path}[{index}]", depth + 1))


def _check_depth(data: dict | list) -> None:
    """``check_json_value`` for a body whose strings are known to be clean: containers only."""
    level: list[dict | list] = [data]
    for _ in range(MAX_DEPTH):
        level = [
            item
            for value in level
            for item in (value.values() if type(value) is dict else value)
            if type(item) is dict or type(item) is list
        ]
        if not level:
            return
    # Containers at the limit: their items, whatever they are, sit deeper than it.
    if any(level):
        raise ParseError(f"JSON is nested deeper than {MAX_DEPTH} levels.")


def _strings_are_clean(text: str) -> bool:
    """No key or string in the JSON ``text`` can hold a NUL or a lone surrogate.

    The parser refuses raw control characters in strings, and ``text`` was decoded as strict
    UTF-8, which holds no surrogates: both can only come from ``\\u`` escapes. A body with no
    ``\\u0000`` and no ``\\uD...`` escape (nearly every body) needs no string checked.
    """
    return "\\u0000" not in text and "\\ud" not in text and "\\uD" not in text


class StrictJSONParser(BaseParser):
    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.API_MAX_BODY_BYTES
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise PayloadTooLarge(f"Request body is larger than {limit} bytes.")
        if not raw.strip():
            raise ParseError("Request body is empty; send a JSON object.")
        try:
            text = raw.decode("utf-8")
            data = json.loads(text, parse_constant=_refuse_constant)
        except UnicodeDecodeError:
            raise ParseError("Request body is not valid UTF-8.") from None
        except RecursionError:
            raise ParseError(f"JSON is nested deeper than {MAX_DEPTH} levels.") from None
        except ValueError as exc:
            raise ParseError(f"Request body is not valid JSON: {exc}") from None
        if not _strings_are_clean(text):
            check_json_value(data)
        elif isinstance(data, dict | list):
            _check_depth(data)
        return data
