"""What the simulator served: request counts, body bytes and a request log.

Tests read these to prove a client made no call, that its credit
accounting matches the bytes actually served, or that it kept to the rate
limit (arrival times). The API key never reaches the
log: the server drops ``apiKey`` from the query before recording.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from dataclasses import dataclass

# CoinCap's rule, written here on its own so that a test comparing the
# client's accounting with the simulator's checks the product's copy.
CREDIT_BYTES = 2500


def charge(body_bytes: int) -> int:
    """Credits one answer of ``body_bytes`` costs: 1 per started 2,500 bytes."""
    return max(1, math.ceil(body_bytes / CREDIT_BYTES))


@dataclass(frozen=True)
class RequestRecord:
    """One served request: ``params`` is the query without ``apiKey``;
    ``body_bytes`` counts the body bytes actually written (half of the body
    for a truncated answer); ``received_at`` is when the request arrived and
    ``answered_at`` when its answer began (``time.monotonic()``, latency
    included), so a test can count the calls of any time span as the API
    would, and see which calls the server held at once."""

    method: str
    path: str
    params: dict[str, str]
    status: int
    body_bytes: int
    received_at: float
    answered_at: float


class Stats:
    """Thread-safe counters and log of served requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_route: Counter[str] = Counter()
        self._bytes = 0
        self._credits = 0
        self._log: list[RequestRecord] = []

    def record(self, route: str, request: RequestRecord) -> None:
        """Count ``request`` under ``route`` (e.g. ``/assets/{slug}``)."""
        with self._lock:
            self._by_route[route] += 1
            self._bytes += request.body_bytes
            self._credits += charge(request.body_bytes)
            self._log.append(request)

    def reset(self) -> None:
        """Forget every request served so far."""
        with self._lock:
            self._by_route.clear()
            self._bytes = 0
            self._credits = 0
            self._log.clear()

    @property
    def calls(self) -> int:
        """Number of requests served."""
        with self._lock:
            return len(self._log)

    @property
    def calls_by_route(self) -> dict[str, int]:
        """Requests served per route name."""
        with self._lock:
            return dict(self._by_route)

    @property
    def bytes_sent(self) -> int:
        """Total response body bytes written."""
        with self._lock:
            return self._bytes

    @property
    def credits(self) -> int:
        """Credits the served requests cost by CoinCap's rule."""
        with self._lock:
            return self._credits

    @property
    def request_log(self) -> list[RequestRecord]:
        """A copy of the request log, oldest first."""
        with self._lock:
            return list(self._log)
