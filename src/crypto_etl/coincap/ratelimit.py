"""A client-side rate limiter that every API call of a process goes through.

CoinCap allows about 600 calls a minute. The limiter is a GCRA (a leaky
bucket written as one timestamp): calls are spaced evenly at the configured
rate, with a small burst allowance so that a short run is not slowed down.
It is thread-safe, so one instance can be shared by everything in a process.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

DEFAULT_CALLS_PER_MINUTE = 600


class RateLimiter:
    """Hold callers so that no more than ``calls_per_minute`` pass on average.

    Args:
        calls_per_minute: the sustained rate; must be positive.
        burst: how many calls may pass back to back before spacing starts.
        clock, sleep: injectable time sources (monotonic seconds, blocking sleep).

    Raises:
        ValueError: for a rate or burst below 1.
    """

    def __init__(
        self,
        calls_per_minute: float = DEFAULT_CALLS_PER_MINUTE,
        *,
        burst: int = 5,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if calls_per_minute <= 0 or burst < 1:
            raise ValueError("calls_per_minute must be > 0 and burst >= 1")
        self.interval = 60.0 / calls_per_minute
        self._tolerance = (burst - 1) * self.interval
        self._tat = 0.0  # theoretical arrival time of the next call
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep

    def acquire(self) -> float:
        """Block until a call may go out; return the seconds waited."""
        with self._lock:
            now = self._clock()
            tat = max(self._tat, now)
            wait = max(0.0, tat - now - self._tolerance)
            self._tat = tat + self.interval
        if wait > 0:
            self._sleep(wait)
        return wait
