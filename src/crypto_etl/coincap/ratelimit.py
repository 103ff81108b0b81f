"""A client-side rate limiter that every API call of a process goes through.

CoinCap allows about 600 calls a minute. The limiter is a GCRA (a leaky
bucket written as one timestamp): calls are spaced evenly at the configured
rate, with a small burst allowance so that a short run is not slowed down.
Whatever the number of threads calling it, no span of ``T`` seconds lets
more than ``burst + T * rate`` calls pass. It is thread-safe, so one
instance is shared by everything in a process; ``pause`` (on a 429) holds
every caller, not just the one that was refused.
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
        self.burst = burst
        self._tolerance = (burst - 1) * self.interval
        self._tat = 0.0  # theoretical arrival time of the next call
        self._resume_at = 0.0  # no call passes before this (a pause)
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep

    def acquire(self) -> float:
        """Block until a call may go out; return the seconds waited.

        A caller already waiting when a ``pause`` begins waits for the pause
        too, and then for a fresh slot.
        """
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                tat = max(self._tat, now)
                wait = max(0.0, tat - now - self._tolerance)
                self._tat = tat + self.interval
            if wait > 0:
                self._sleep(wait)
                waited += wait
            with self._lock:
                held = self._resume_at - self._clock()
            if held <= 0:
                return waited

    def pause(self, seconds: float) -> None:
        """Let no call pass for ``seconds`` from now (a 429's ``Retry-After``).

        After the pause, calls resume at the steady rate, without a burst.
        A shorter pause than one already running changes nothing.
        """
        with self._lock:
            now = self._clock()
            self._resume_at = max(self._resume_at, now + seconds)
            # The next slot is the end of the pause, with the burst used up.
            self._tat = max(self._tat, self._resume_at + self._tolerance)
