"""Opaque, prefixed, time-ordered public ids: ``run_01j8k2m4q9...`` (prefix + 26 base32 chars).

The 26 characters are a ULID (48-bit millisecond time, 80 random bits) in lower-case Crockford
base32, so ids sort roughly by creation and reveal nothing about row counts.
"""

import secrets
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def new_public_id(prefix: str, *, at_ms: int | None = None) -> str:
    value = ((at_ms if at_ms is not None else time.time_ns() // 1_000_000) << 80) | (
        secrets.randbits(80)
    )
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return f"{prefix}_{''.join(reversed(chars))}"


def run_id() -> str:
    return new_public_id("run")


def pipeline_id() -> str:
    return new_public_id("pl")


def gateway_id() -> str:
    return new_public_id("gw")


def webhook_endpoint_id() -> str:
    return new_public_id("whe")


def webhook_event_id() -> str:
    return new_public_id("msg")


def saved_view_id() -> str:
    return new_public_id("view")


def bulk_job_id() -> str:
    return new_public_id("bulk")


def is_plausible_public_id(value: str) -> bool:
    """False for values no id can have: too long, or with a NUL (PostgreSQL refuses NUL in text)
    — such lookups are answered "not found" without asking the database."""
    return len(value) <= 40 and "\x00" not in value
