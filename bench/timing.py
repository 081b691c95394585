"""Timing one URL in-process through Django's test client, shared by the in-process benchmarks."""

import statistics
import time
from typing import Any


def timed_get(client: Any, url: str, repeat: int) -> tuple[dict[str, float], Any]:
    """Three warm-up requests (each must answer 200), then ``repeat`` timed ones: their p50 and
    p90 in milliseconds, and the last response."""
    for _ in range(3):
        response = client.get(url)
        assert response.status_code == 200, response.content[:500]
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - began) * 1000)
    times.sort()
    summary = {
        "p50_ms": round(statistics.median(times), 2),
        "p90_ms": round(times[max(0, int(len(times) * 0.9) - 1)], 2),
    }
    return summary, response
