"""Strict DRF fields: JSON types are taken as sent, never coerced.

DRF's stock fields accept ``"12"`` for an integer and ``12`` for a string; a runner that sends
either has a bug worth hearing about, so these refuse them.
"""

import math

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from common.time import InstantOutOfRange, NaiveInstant, parse_aware_instant

BIGINT_MAX = 2**63 - 1


class StrictIntegerField(serializers.IntegerField):
    default_error_messages = {"invalid": "Must be an integer (a JSON number without a fraction)."}

    def __init__(self, **kwargs):
        kwargs.setdefault("min_value", 0)
        kwargs.setdefault("max_value", BIGINT_MAX)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, float) and data.is_integer() and abs(data) <= BIGINT_MAX:
            data = int(data)
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictNumberField(serializers.FloatField):
    default_error_messages = {"invalid": "Must be a finite JSON number."}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        if isinstance(data, int):
            if abs(data) > BIGINT_MAX:
                self.fail("invalid")
            self.run_validators(data)
            if self.max_value is not None and data > self.max_value:
                self.fail("max_value", max_value=self.max_value)
            if self.min_value is not None and data < self.min_value:
                self.fail("min_value", min_value=self.min_value)
            return data
        if not math.isfinite(data):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictCharField(serializers.CharField):
    default_error_messages = {"invalid": "Must be a JSON string."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    default_error_messages = {"invalid": "Must be a JSON boolean (true or false)."}

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class StrictChoiceField(serializers.ChoiceField):
    """A string choice; ``aliases`` maps other accepted spellings to their canonical value."""

    def __init__(self, choices, aliases: dict[str, str] | None = None, **kwargs):
        self.aliases = aliases or {}
        super().__init__(choices, **kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid_choice", input=data)
        return super().to_internal_value(self.aliases.get(data, data))


class StrictDateTimeField(serializers.DateTimeField):
    """An aware ISO 8601 timestamp, normalised to UTC and range-checked before it is stored."""

    default_error_messages = {
        "invalid": "Must be an ISO 8601 timestamp with a timezone, e.g. 2025-03-27T02:00:00Z.",
        "naive": "Timestamp has no timezone; add Z or an offset such as +00:00.",
        "range": "Timestamp is out of range (years 1970 to 9999 in UTC).",
    }

    def to_internal_value(self, value):
        if not isinstance(value, str):
            self.fail("invalid")
        try:
            instant = parse_aware_instant(value)
        except NaiveInstant:
            self.fail("naive")
        except InstantOutOfRange:
            self.fail("range")
        except ValueError:
            self.fail("invalid")
        if instant.year < 1970:
            self.fail("range")
        return instant


class StrictSerializer(serializers.Serializer):
    """Refuses keys it does not know, so a misspelled field is an error, not a silent no-op."""

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError(
                {"non_field_errors": ["Must be a JSON object."]}, code="invalid"
            )
        unknown = sorted(set(data) - set(self._declared_fields))
        if unknown:
            raise serializers.ValidationError(
                {key: ["Unknown field."] for key in unknown}, code="unknown_field"
            )
        return super().to_internal_value(data)


class ScalarMapField(serializers.DictField):
    """A JSON object of scalar values (string, finite number, boolean or null)."""

    default_error_messages = {
        "not_a_dict": "Must be a JSON object.",
        "too_many": "At most {max_keys} keys are allowed.",
        "bad_key": "Keys must be 1 to 64 characters.",
        "bad_value": "Values must be strings (up to 1000 characters), finite numbers, "
        "booleans or null.",
    }

    def __init__(self, max_keys: int = 64, numeric_only: bool = False, **kwargs):
        self.max_keys = max_keys
        self.numeric_only = numeric_only
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            self.fail("not_a_dict", input_type=type(data).__name__)
        if len(data) > self.max_keys:
            self.fail("too_many", max_keys=self.max_keys)
        errors = {}
        for key, value in data.items():
            if not 1 <= len(key) <= 64:
                errors[key] = [self.error_messages["bad_key"]]
            elif not _is_scalar(value, numeric_only=self.numeric_only):
                errors[key] = [
                    "Must be a finite number."
                    if self.numeric_only
                    else self.error_messages["bad_value"]
                ]
        if errors:
            raise serializers.ValidationError(errors)
        return dict(data)


def _is_scalar(value, *, numeric_only: bool) -> bool:
    if isinstance(value, bool):
        return not numeric_only
    if isinstance(value, int):
        return abs(value) <= BIGINT_MAX
    if isinstance(value, float):
        return math.isfinite(value)
    if numeric_only:
        return False
    return value is None or (isinstance(value, str) and len(value) <= 1000)


LABELS_SCHEMA = {
    "type": "object",
    "description": "Labels: string keys (`[a-z0-9_.-]{1,63}`) to string values (at most 200 "
    "characters), at most 20 pairs.",
    "additionalProperties": {"type": "string", "maxLength": 200},
    "maxProperties": 20,
}


@extend_schema_field(LABELS_SCHEMA)
class LabelsField(serializers.Field):
    """A labels object, taken as sent: the services check it (``common.labels``), so every way
    labels arrive is refused with the same reasons."""

    def to_internal_value(self, data):
        return data

    def to_representation(self, value):
        return value
