"""Placeholder replaced by the scrubbing module."""

REDACTED = "[REDACTED]"


def scrub(text: str) -> str:
    return text
