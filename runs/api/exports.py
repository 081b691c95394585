"""Downloads: every run a filter matches (``GET /api/runs/export``) and a run's whole kept log
(``GET /api/runs/{id}/logs?format=``), streamed; and the bounded total of a list's ``meta``.

An export reads the runs in keyset chunks of ``EXPORT_CHUNK`` rows (``keyset_iterate``), one
query per chunk and no server-side cursor held open across them, and writes each row as it
goes: memory stays flat whether the filter matches ten runs or a million. Rows are plain dicts
built here from ``.values()`` rows, not models through DRF serializers: building a run, its
pipeline and its gateway as model instances cost several times the query per row.
"""

import csv
import io
import json
from collections.abc import Iterable, Iterator
from typing import Any

import orjson
from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone

from common.api.pagination import BoundedCount, Ordering, Page, bounded_count, keyset_iterate
from common.time import iso
from runs import selectors
from runs.models import Run, duration_seconds_of
from runs.representations import RunRow

EXPORT_FORMATS = ("csv", "ndjson")
LOG_DOWNLOAD_FORMATS = ("text", "ndjson")
EXPORT_CHUNK = 2000
# meta.total is exact up to this many matching runs; beyond, meta.totalAtLeast says so.
TOTAL_CAP = 10_000
CSV_COLUMNS = [
    "id",
    "pipelineId",
    "pipelineName",
    "gatewayId",
    "status",
    "trigger",
    "createdAt",
    "startedAt",
    "finishedAt",
    "durationSeconds",
    "rowsLoaded",
    "bytesLoaded",
    "labels",
]
# A spreadsheet runs a cell that starts with one of these as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def total_meta(
    counted: QuerySet[Run] | BoundedCount, *, first_page: Page | None = None
) -> dict[str, int]:
    """``{"total": n}`` up to the cap of matching runs, else ``{"totalAtLeast": cap}``: one count
    over a ``LIMIT cap + 1`` subquery, whatever the number of runs. The cap is ``TOTAL_CAP``
    for a queryset, the count's own for a ``BoundedCount`` compiled already. The ``first_page``
    of the list (no cursor), when no older page follows it, holds every match: its length is
    the total, uncounted."""
    cap = counted.cap if isinstance(counted, BoundedCount) else TOTAL_CAP
    if first_page is not None and first_page.older is None:
        total = len(first_page.items)
    elif isinstance(counted, BoundedCount):
        total = counted.count()
    else:
        total = bounded_count(counted, cap=cap)
    return {"total": total} if total <= cap else {"totalAtLeast": cap}


EXPORT_VALUES = (
    "id",
    "public_id",
    "pipeline__public_id",
    "pipeline__name",
    "gateway__public_id",
    "status",
    "trigger_type",
    "created_at",
    "started_at",
    "finished_at",
    "rows_loaded",
    "bytes_loaded",
    "labels",
)


def _duration_seconds(row: dict[str, Any], now) -> int | None:
    return duration_seconds_of(
        status=row["status"], started_at=row["started_at"], finished_at=row["finished_at"], now=now
    )


def export_row(row: dict[str, Any], *, now=None) -> RunRow:
    """A run (a row of ``EXPORT_VALUES``) as the export writes it and a list item of
    ``GET /api/runs`` starts: ``runs.representations.RunRow``."""
    return {
        "id": row["public_id"],
        "pipelineId": row["pipeline__public_id"],
        "pipelineName": row["pipeline__name"],
        "gatewayId": row["gateway__public_id"],
        "status": row["status"],
        "trigger": row["trigger_type"],
        "createdAt": iso(row["created_at"]),
        "startedAt": iso(row["started_at"]),
        "finishedAt": iso(row["finished_at"]),
        "durationSeconds": _duration_seconds(row, now or timezone.now()),
        "rowsLoaded": row["rows_loaded"],
        "bytesLoaded": row["bytes_loaded"],
        "labels": row["labels"],
    }


def _defused(text: str) -> str:
    """Text a spreadsheet would run as a formula, quoted so that it reads as text."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _csv_record(row: dict[str, Any], now) -> list[Any]:
    """A run (a row of ``EXPORT_VALUES``) as one CSV record, in ``CSV_COLUMNS`` order, written
    straight from the row: only the pipeline's name is text a person wrote (ids, statuses and
    triggers are the app's own; labels are written as a JSON object, which starts with ``{``)."""
    duration = _duration_seconds(row, now)
    rows, size = row["rows_loaded"], row["bytes_loaded"]
    return [
        row["public_id"],
        row["pipeline__public_id"],
        _defused(row["pipeline__name"]),
        row["gateway__public_id"] or "",
        row["status"],
        row["trigger_type"],
        iso(row["created_at"]),
        iso(row["started_at"]) or "",
        iso(row["finished_at"]) or "",
        "" if duration is None else duration,
        "" if rows is None else rows,
        "" if size is None else size,
        orjson.dumps(row["labels"] or {}, option=orjson.OPT_SORT_KEYS).decode(),
    ]


def _csv_lines(rows: Iterable[dict[str, Any]], *, now) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    batch: list[list[Any]] = []
    for row in rows:
        batch.append(_csv_record(row, now))
        if len(batch) == 500:
            writer.writerows(batch)
            batch = []
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    writer.writerows(batch)
    yield buffer.getvalue()


def _ndjson_lines(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    batch: list[str] = []
    for row in rows:
        batch.append(orjson.dumps(row).decode())
        if len(batch) == 500:
            yield "\n".join(batch) + "\n"
            batch = []
    if batch:
        yield "\n".join(batch) + "\n"


def _attachment(lines: Iterator[str], *, content_type: str, filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse((chunk.encode() for chunk in lines), content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "no-store"
    return response


def export_response(
    queryset: QuerySet[Run], *, ordering: Ordering, fmt: str
) -> StreamingHttpResponse:
    values = queryset.values(*EXPORT_VALUES)
    now = timezone.now()
    rows = keyset_iterate(values, ordering=ordering, chunk=EXPORT_CHUNK)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    if fmt == "csv":
        return _attachment(
            _csv_lines(rows, now=now),
            content_type="text/csv; charset=utf-8",
            filename=f"runs-{stamp}.csv",
        )
    return _attachment(
        _ndjson_lines(export_row(row, now=now) for row in rows),
        content_type="application/x-ndjson; charset=utf-8",
        filename=f"runs-{stamp}.ndjson",
    )


def _log_text_lines(run: Run) -> Iterator[str]:
    for line in selectors.run_log_lines(run=run).iterator(chunk_size=500):
        node = f" [{line.node_id}]" if line.node_id else ""
        # One entry per line: a message's own line breaks are written as \n.
        message = line.message.replace("\r", "\\r").replace("\n", "\\n")
        yield f"{iso(line.at)} {line.level.upper()}{node} {message}\n"


def _log_ndjson_lines(run: Run) -> Iterator[str]:
    for line in selectors.run_log_lines(run=run).iterator(chunk_size=500):
        entry = {"ts": iso(line.at), "level": line.level, "nodeId": line.node_id or None}
        entry["message"] = line.message
        yield json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n"


def log_download_response(run: Run, *, fmt: str) -> StreamingHttpResponse:
    """The run's whole kept log (the newest ``RUN_LOG_CAP`` lines), oldest first."""
    if fmt == "text":
        return _attachment(
            _log_text_lines(run),
            content_type="text/plain; charset=utf-8",
            filename=f"{run.public_id}-log.txt",
        )
    return _attachment(
        _log_ndjson_lines(run),
        content_type="application/x-ndjson; charset=utf-8",
        filename=f"{run.public_id}-log.ndjson",
    )
