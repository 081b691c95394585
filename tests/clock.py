"""Rate-limit windows are aligned to the clock (``common.api.throttling``): a test whose counts
must all fall inside one window waits for the next window when the current one is about to end."""

import time


def inside_one_window(duration: int, *, margin: float) -> None:
    """Return at once, or after waiting for the next window when this one ends within ``margin``
    seconds."""
    left = duration - time.time() % duration
    if left < margin:
        time.sleep(left + 0.1)
