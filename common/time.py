"""Instants in and out: every accepted timestamp becomes UTC, every written one says ``Z``.

PostgreSQL refuses UTC offsets beyond +-15:59 ("time zone displacement out of range") while
Python accepts up to +-23:59:59.999999, and an instant near year 1 or 9999 can leave Python's
range once shifted to UTC. So nothing aware reaches a query or a column before ``to_utc`` has
normalised it and checked that it is still a year 1-9999 instant in UTC.
"""

from datetime import UTC, date, datetime, time, timedelta


class InstantOutOfRange(ValueError):
    """An instant that has no UTC representation between years 1 and 9999."""


class NaiveInstant(ValueError):
    """A timestamp without a timezone: which instant it names is unknown."""


def to_utc(value: datetime) -> datetime:
    """The same instant in UTC (offset +00:00); ``InstantOutOfRange`` if it has none."""
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise InstantOutOfRange("Timestamp is out of range (years 1 to 9999 in UTC).") from None


def day_start(day: date, *, days_later: int = 0) -> datetime:
    """Midnight UTC at the start of ``day`` (or ``days_later`` days after it)."""
    try:
        return datetime.combine(day + timedelta(days=days_later), time.min, tzinfo=UTC)
    except OverflowError:
        raise InstantOutOfRange("Date is out of range (years 1 to 9999).") from None


def parse_aware_instant(text: str, *, from_query_string: bool = False) -> datetime:
    """An ISO 8601 timestamp with a timezone, as a UTC datetime.

    Raises ``ValueError`` for text that is not one: ``NaiveInstant`` without a timezone,
    ``InstantOutOfRange`` outside years 1-9999 in UTC. A ``+`` sent unencoded in a query
    string arrives as a space, so there a space is read as ``+``.
    """
    parsed = datetime.fromisoformat(text.replace(" ", "+") if from_query_string else text)
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise NaiveInstant("Timestamp has no timezone; add Z or an offset such as +00:00.")
    return to_utc(parsed)


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
