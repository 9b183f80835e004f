"""The daemon's one source of time.

Scheduling decisions (which frame to score, the cadence a budget allows, stats intervals) and
frame timestamps all read the clock through this object, so a test can run the daemon on a
simulated clock and get the same decisions however busy the machine is.
"""

from __future__ import annotations

import threading
import time


class SystemClock:
    """Wall time and real waits."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def perf_counter(self) -> float:
        return time.perf_counter()

    def sleep(self, seconds: float, stop: threading.Event) -> bool:
        """Sleep, or return early (True) when ``stop`` is set."""
        return stop.wait(seconds)

    def wait(self, event: threading.Event, timeout: float) -> bool:
        """Wait for ``event`` (another thread's news) up to ``timeout``."""
        return event.wait(timeout)


SYSTEM_CLOCK = SystemClock()
