"""Labels: a small map of string keys to string values on pipelines and runs
(``{"team": "finance", "env": "prod"}``), checked in one place for every way they arrive.

A run's labels start as its pipeline's defaults, overlaid with the caller's; a runner's PATCH
merges into them, ``null`` removing a key. The list filters match ``key:value`` pairs.
"""

import re
from typing import Any

from common.errors import InvalidInput

MAX_LABELS = 20
MAX_VALUE_CHARS = 200
KEY_PATTERN = re.compile(r"[a-z0-9_.-]{1,63}")
KEY_RULE = "keys are 1 to 63 characters of a-z, 0-9, '_', '.' and '-'"


def _refuse(message: str, field: str) -> InvalidInput:
    return InvalidInput(errors={field: [message]})


def labels_checked(value: Any, *, field: str = "labels", allow_null_values: bool = False) -> dict:
    """``value`` as a labels map, or an ``InvalidInput`` naming ``field`` and the reason. With
    ``allow_null_values`` (a PATCH), a ``None`` value stands for "remove this key"."""
    if not isinstance(value, dict):
        raise _refuse("Must be a JSON object of string keys to string values.", field)
    for key, item in value.items():
        if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
            raise _refuse(f"Invalid label key {str(key)[:70]!r}: {KEY_RULE}.", field)
        if item is None and allow_null_values:
            continue
        if not isinstance(item, str):
            raise _refuse(f"The value of {key!r} must be a string.", field)
        if len(item) > MAX_VALUE_CHARS:
            raise _refuse(
                f"The value of {key!r} is longer than {MAX_VALUE_CHARS} characters.", field
            )
        if "\x00" in item:
            raise _refuse(f"The value of {key!r} contains a NUL character.", field)
    if not allow_null_values and len(value) > MAX_LABELS:
        raise _refuse(f"At most {MAX_LABELS} labels; got {len(value)}.", field)
    return dict(value)


def labels_merged(current: dict, changes: dict, *, field: str = "labels") -> dict:
    """``current`` with ``changes`` applied (``None`` removes a key), refused when the result
    holds more than ``MAX_LABELS`` pairs."""
    merged = dict(current)
    for key, item in labels_checked(changes, field=field, allow_null_values=True).items():
        if item is None:
            merged.pop(key, None)
        else:
            merged[key] = item
    if len(merged) > MAX_LABELS:
        raise _refuse(f"At most {MAX_LABELS} labels; this change would leave {len(merged)}.", field)
    return merged


def label_pair_parsed(raw: str) -> tuple[str, str]:
    """``key:value`` (the value may hold colons) as a pair, or ``ValueError`` saying why."""
    key, sep, value = raw.partition(":")
    key = key.strip()
    if not sep:
        raise ValueError(f"Use key:value (e.g. team:finance); got {raw[:80]!r}.")
    if not KEY_PATTERN.fullmatch(key):
        raise ValueError(f"Invalid label key {key[:70]!r}: {KEY_RULE}.")
    if len(value) > MAX_VALUE_CHARS:
        raise ValueError(f"A label value is at most {MAX_VALUE_CHARS} characters.")
    if "\x00" in value:
        raise ValueError("A label value cannot contain a NUL character.")
    return key, value
