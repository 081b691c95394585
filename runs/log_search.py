"""Search across every kept log: the lines whose message contains a text, in the runs a
``RunFilter`` selects, newest run first and, within a run, newest line first.

On PostgreSQL the match is ``message ILIKE '%text%'``, served by the trigram index of migration
0008 (``gin_trgm_ops``); on SQLite it is the same ``LIKE`` by a plain scan, with the same results
for ASCII text. A trigram index needs three characters in a row to look anything up: shorter text
would read the whole index, so it is refused on both databases (the API says why).

Pages are keyset-paged on (run created_at, run id, line seq), the order the run list already
uses, so a page is one index range whatever its depth and lines appended meanwhile never shift
it. Only the lines a run still keeps (the newest ``RUN_LOG_CAP``) are found, also before the
physical trimming has caught up.
"""

import re
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import connection
from django.db.models import F, Lookup, Q, QuerySet
from django.http import QueryDict

from common.api.pagination import InvalidCursor, read_cursor, sign_cursor
from common.api.params import parse_limit
from common.errors import InvalidInput
from runs.filters import run_filter_checked
from runs.models import LogLine, Run

MIN_TEXT_CHARS = 3
MAX_TEXT_CHARS = 200
CURSOR_SALT = "runs.log-search-cursor"
WORD_RUN = re.compile(rf"\w{{{MIN_TEXT_CHARS}}}")
TOO_SHORT = (
    f"Search for at least {MIN_TEXT_CHARS} letters or digits in a row: the trigram index "
    "that serves log search cannot look up shorter text."
)


class ILike(Lookup):
    """``lhs ILIKE rhs`` (PostgreSQL). Django's ``icontains`` compares ``UPPER(message)``, an
    expression the trigram index on ``message`` does not cover."""

    lookup_name = "ilike"

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return f"{lhs} ILIKE {rhs}", [*lhs_params, *rhs_params]


def message_contains(text: str) -> Q | ILike:
    if connection.vendor == "postgresql":
        return ILike(F("message"), f"%{connection.ops.prep_for_like_query(text)}%")
    return Q(message__icontains=text)


@dataclass(frozen=True)
class LogPosition:
    created_at: datetime
    run_pk: int
    seq: int


@dataclass(frozen=True)
class LogSearchQuery:
    text: str
    runs: QuerySet[Run]
    position: LogPosition | None
    limit: int


@dataclass
class LogSearchPage:
    hits: list[LogLine]
    older: LogPosition | None


def encode_log_cursor(position: LogPosition) -> str:
    payload = [position.created_at.isoformat(), position.run_pk, position.seq]
    return sign_cursor(payload, salt=CURSOR_SALT)


def decode_log_cursor(cursor: str) -> LogPosition:
    try:
        stamp, run_pk, seq = read_cursor(cursor, salt=CURSOR_SALT, length=3)
        return LogPosition(datetime.fromisoformat(stamp), int(run_pk), int(seq))
    except (InvalidCursor, ValueError, TypeError, OverflowError):
        raise InvalidInput(errors={"cursor": ["Invalid or tampered cursor."]}) from None


def clean_search_text(raw: str | None) -> str:
    """The text to look for, or the reason it cannot be looked up (``InvalidInput`` on ``q``)."""
    text = (raw or "").strip()
    if not text:
        reason = "Give the text to look for in log messages."
    elif "\x00" in text:
        reason = "NUL characters are not allowed."
    elif len(text) > MAX_TEXT_CHARS:
        reason = f"Too long (at most {MAX_TEXT_CHARS} characters)."
    elif not WORD_RUN.search(text):
        reason = TOO_SHORT
    else:
        return text
    raise InvalidInput(errors={"q": [reason]})


def run_filter_params(params: QueryDict) -> QueryDict:
    """The run list filters of a search request: its own ``q`` is the log text, not the run
    search of the Runs page."""
    data = params.copy()
    data.pop("q", None)
    data.pop("cursor", None)
    return data


def parse_log_search(params: QueryDict, *, limit_default: int | None = None) -> LogSearchQuery:
    """Every parameter checked at once; ``InvalidInput`` names each one at fault."""
    errors: dict[str, list[str]] = {}
    text = ""
    try:
        text = clean_search_text(params.get("q"))
    except InvalidInput as error:
        errors.update(error.errors)
    limit = parse_limit(params, errors) if limit_default is None else limit_default
    position = None
    if params.get("cursor"):
        try:
            position = decode_log_cursor(params["cursor"])
        except InvalidInput as error:
            errors.update(error.errors)
    filterset = run_filter_checked(
        run_filter_params(params), queryset=Run.objects.all(), errors=errors
    )
    if errors:
        raise InvalidInput(errors=errors)
    return LogSearchQuery(text=text, runs=filterset.qs, position=position, limit=limit)


def log_search(*, query: LogSearchQuery) -> LogSearchPage:
    """One page of hits (``limit`` lines), each with its run and pipeline loaded; one query."""
    lines = (
        LogLine.objects.filter(run__in=query.runs.order_by().values("pk"))
        .filter(message_contains(query.text))
        .filter(seq__gt=F("run__log_seq") - settings.RUN_LOG_CAP)
        .select_related("run__pipeline", "run__gateway")
        .order_by("-run__created_at", "-run_id", "-seq")
    )
    position = query.position
    if position is not None:
        lines = lines.filter(
            Q(run__created_at__lt=position.created_at)
            | Q(run__created_at=position.created_at, run_id__lt=position.run_pk)
            | Q(run__created_at=position.created_at, run_id=position.run_pk, seq__lt=position.seq),
            run__created_at__lte=position.created_at,
        )
    rows = list(lines[: query.limit + 1])
    hits = rows[: query.limit]
    older = None
    if len(rows) > query.limit:
        last = hits[-1]
        older = LogPosition(last.run.created_at, last.run_id, last.seq)
    return LogSearchPage(hits=hits, older=older)
