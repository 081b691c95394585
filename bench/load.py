"""HTTP measurement on loopback: sequential server time, and concurrent request rates.

Plain ``http.client`` keeps the client's own cost per request small (tens of microseconds), so
on a two-core machine most of the CPU goes to the server being measured. Every loop is bounded
in time and in count.
"""

import http.client
import json
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

MAX_REQUESTS_PER_CASE = 200_000


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None


class Connection:
    """One keep-alive connection (gunicorn's sync workers close it; it reopens transparently)."""

    def __init__(self, port: int, timeout: float = 30.0):
        self.port = port
        self.timeout = timeout
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def send(self, request: Request) -> tuple[int, bytes, dict[str, str], float]:
        began = time.perf_counter()
        try:
            self.conn.request(
                request.method, request.path, body=request.body, headers=request.headers
            )
            response = self.conn.getresponse()
            body = response.read()
        except (http.client.HTTPException, ConnectionError):
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            self.conn.request(
                request.method, request.path, body=request.body, headers=request.headers
            )
            response = self.conn.getresponse()
            body = response.read()
        elapsed = time.perf_counter() - began
        if response.getheader("Connection", "").lower() == "close":
            self.conn.close()
        return response.status, body, dict(response.getheaders()), elapsed

    def close(self) -> None:
        self.conn.close()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def server_time(
    port: int, request: Request, *, iterations: int = 20, warmup: int = 3
) -> dict[str, Any]:
    """Time to the full response, one request at a time: p50 of ``iterations`` after a warm-up."""
    conn = Connection(port)
    times, statuses, size = [], set(), 0
    try:
        for attempt in range(warmup + iterations):
            status, body, _, elapsed = conn.send(request)
            if attempt >= warmup:
                times.append(elapsed * 1000)
                statuses.add(status)
                size = len(body)
    finally:
        conn.close()
    return {
        "p50_ms": round(statistics.median(times), 2),
        "min_ms": round(min(times), 2),
        "max_ms": round(max(times), 2),
        "statuses": sorted(statuses),
        "bytes": size,
    }


@dataclass
class CaseResult:
    count: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)

    def add(self, other: "CaseResult") -> None:
        self.count += other.count
        self.errors += other.errors
        self.seconds += other.seconds
        self.latencies_ms += other.latencies_ms
        for status, n in other.statuses.items():
            self.statuses[status] = self.statuses.get(status, 0) + n

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.count,
            "errors": self.errors,
            "seconds": round(self.seconds, 2),
            "rate": round(self.count / self.seconds, 1) if self.seconds else 0.0,
            "p50_ms": round(percentile(self.latencies_ms, 0.50), 2),
            "p99_ms": round(percentile(self.latencies_ms, 0.99), 2),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
        }


def concurrent(
    port: int,
    request_streams: list[Iterator[Request]],
    *,
    seconds: float,
    ok: Callable[[int], bool] = lambda status: status < 400,
) -> CaseResult:
    """One thread per stream, each sending its stream's requests back to back for ``seconds``.

    The rate is completed requests over the wall time from the first start to the last finish.
    """
    results = [CaseResult() for _ in request_streams]
    barrier = threading.Barrier(len(request_streams) + 1)
    deadline_box: list[float] = []

    def worker(index: int, stream: Iterator[Request]) -> None:
        conn = Connection(port)
        result = results[index]
        barrier.wait()
        deadline = deadline_box[0]
        try:
            for _ in range(MAX_REQUESTS_PER_CASE):
                if time.perf_counter() >= deadline:
                    break
                request = next(stream)
                status, _, _, elapsed = conn.send(request)
                result.count += 1
                result.latencies_ms.append(elapsed * 1000)
                result.statuses[status] = result.statuses.get(status, 0) + 1
                if not ok(status):
                    result.errors += 1
        finally:
            conn.close()

    threads = [
        threading.Thread(target=worker, args=(index, stream), daemon=True)
        for index, stream in enumerate(request_streams)
    ]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    deadline_box.append(began + seconds)
    barrier.wait()
    for thread in threads:
        thread.join(timeout=seconds + 60)
    total = CaseResult(seconds=time.perf_counter() - began)
    for result in results:
        total.count += result.count
        total.errors += result.errors
        total.latencies_ms += result.latencies_ms
        for status, n in result.statuses.items():
            total.statuses[status] = total.statuses.get(status, 0) + n
    return total


def json_body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()
