"""Injectable faults: what the next matching requests get instead of data.

Faults are queued by the test (or drawn at random in chaos mode) and consumed
by requests whose path matches. A request takes at most one delay and at most
one answer fault (a status, a truncation, a reshaped answer), so "slow, then
500" is two calls.
"""

from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass

# short_body: the whole length announced, half sent, then a clean close;
# bad_json: half the body sent as a complete response; reset: half the body,
# then the connection reset (RST) instead of closed.
TRUNCATE_MODES = ("short_body", "bad_json", "reset")
# How a "drift" fault changes every row of the data: a field CoinCap added,
# one it stopped sending, a number that became null, a string that became a
# number. The fault's ``field`` names the row key (unused by new_field).
DRIFT_MODES = ("new_field", "missing_field", "null_number", "number_for_string")
# Answer faults: each replaces or reshapes what the request gets.
ANSWER_KINDS = ("status", "truncate", "drift", "pad", "content_type")

# Bodies of injected statuses when the test gives none: the documented JSON
# errors, an HTML page for gateway errors (as a proxy would send), else empty.
_GATEWAY_PAGE = b"<html><body><h1>%d Service Unavailable</h1></body></html>"
DEFAULT_BODIES: dict[int, bytes] = {
    400: b'{"error":"Invalid query parameters"}',
    500: b'{"error":"Internal server error"}',
    502: _GATEWAY_PAGE % 502,
    503: _GATEWAY_PAGE % 503,
    504: _GATEWAY_PAGE % 504,
}
_CHAOS_DELAY_SECONDS = 0.5
# Chaos mode draws from the original two truncations, so a seed gives the
# same sequence of faults as before "reset" existed.
_CHAOS_TRUNCATIONS = ("short_body", "bad_json")


@dataclass
class Fault:
    """One queued fault.

    ``kind`` is ``"delay"`` or one of ``ANSWER_KINDS``: ``"status"``,
    ``"truncate"`` (``mode`` in ``TRUNCATE_MODES``), ``"drift"`` (``mode`` in
    ``DRIFT_MODES``, on row key ``field``), ``"pad"`` (the JSON body grown
    with whitespace to ``size`` bytes: still valid, far larger than
    expected) or ``"content_type"`` (the data served as ``content_type``).
    ``remaining`` is how many requests it still hits (None: until cleared);
    ``path`` restricts it to request paths starting with that prefix (with or
    without ``/v3``).
    """

    kind: str
    remaining: int | None
    path: str | None
    status: int = 0
    retry_after: str | None = None
    body: bytes | None = None
    seconds: float = 0.0
    mode: str = "short_body"
    field: str = ""
    size: int = 0
    content_type: str = ""

    def matches(self, path: str) -> bool:
        """Tell whether this fault applies to a request for ``path``."""
        if self.path is None:
            return True
        relative = path[3:] if path.startswith("/v3/") else path
        return path.startswith(self.path) or relative.startswith(self.path)


@dataclass(frozen=True)
class Decision:
    """What to do to one request: sleep first, then answer normally or not."""

    delay_seconds: float = 0.0
    status: int | None = None
    retry_after: str | None = None
    body: bytes = b""
    truncate: str | None = None
    drift: tuple[str, str] | None = None
    pad_to: int = 0
    content_type: str | None = None


def drift_rows(data: object, mode: str, field: str) -> object:
    """Return ``data`` with every row (a dict in a list) changed as ``mode`` says.

    Anything that is not a list of objects (an error body) is left as it is.
    """
    if not isinstance(data, list):
        return data
    changed: list[object] = []
    for row in data:
        if isinstance(row, dict):
            row = dict(row)
            if mode == "new_field":
                row["launchedAt"] = "2031-01-01"
            elif mode == "missing_field":
                row.pop(field, None)
            elif mode == "null_number":
                row[field] = None
            else:
                row[field] = 12345
        changed.append(row)
    return changed


@dataclass(frozen=True)
class Latency:
    """A network delay added before every answer: ``low_ms`` to ``high_ms``.

    Equal bounds give a fixed delay; otherwise each call draws one,
    uniformly, so answers may come back out of order as on a real network.
    """

    low_ms: float = 0.0
    high_ms: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.low_ms <= self.high_ms < math.inf:
            raise ValueError("latency must be 0 <= low <= high milliseconds")

    @classmethod
    def parse(cls, text: str) -> Latency:
        """Read ``"250"`` (fixed) or ``"100-400"`` (a range), in milliseconds.

        Raises:
            ValueError: for anything else, or a range whose low end is higher.
        """
        low, sep, high = text.strip().partition("-")
        try:
            bounds = (float(low), float(high if sep else low))
        except ValueError:
            raise ValueError(
                f"latency must be milliseconds like 250 or 100-400, got {text!r}"
            ) from None
        return cls(*bounds)

    def draw(self, rng: random.Random) -> float:
        """Return one call's delay in seconds."""
        if self.high_ms == self.low_ms:
            return self.low_ms / 1000
        return rng.uniform(self.low_ms, self.high_ms) / 1000


class FaultPlan:
    """A thread-safe queue of faults plus the optional seeded chaos mode."""

    def __init__(self, *, fault_rate: float, seed: int) -> None:
        """``fault_rate`` is the chance that an otherwise healthy request fails."""
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._fault_rate = fault_rate
        # A seeded, repeatable fault sequence for tests: not security.
        self._rng = random.Random(seed)  # nosec B311

    def add(self, fault: Fault) -> None:
        """Queue ``fault``; raises ValueError for an unknown truncate or drift mode."""
        if fault.kind == "truncate" and fault.mode not in TRUNCATE_MODES:
            raise ValueError(f"truncate mode must be one of {TRUNCATE_MODES}")
        if fault.kind == "drift" and fault.mode not in DRIFT_MODES:
            raise ValueError(f"drift mode must be one of {DRIFT_MODES}")
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        """Drop every queued and permanent fault."""
        with self._lock:
            self._faults.clear()

    def take(self, path: str) -> Decision:
        """Consume the faults that apply to one request for ``path``."""
        with self._lock:
            delay = self._consume(path, kinds=("delay",))
            answer = self._consume(path, kinds=ANSWER_KINDS)
            if delay is None and answer is None and self._fault_rate > 0:
                return self._chaos()
        seconds = delay.seconds if delay else 0.0
        if answer is None:
            return Decision(delay_seconds=seconds)
        if answer.kind == "truncate":
            return Decision(delay_seconds=seconds, truncate=answer.mode)
        if answer.kind == "drift":
            return Decision(seconds, drift=(answer.mode, answer.field))
        if answer.kind == "pad":
            return Decision(seconds, pad_to=answer.size)
        if answer.kind == "content_type":
            return Decision(seconds, content_type=answer.content_type)
        body = answer.body
        if body is None:
            body = DEFAULT_BODIES.get(answer.status, b"")
        return Decision(seconds, answer.status, answer.retry_after, body)

    def _consume(self, path: str, kinds: tuple[str, ...]) -> Fault | None:
        """Take one use of the first matching fault of ``kinds`` (lock held)."""
        for fault in self._faults:
            if fault.kind in kinds and fault.matches(path):
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                return fault
        return None

    def _chaos(self) -> Decision:
        """Draw a random fault with probability ``fault_rate`` (lock held)."""
        rng = self._rng
        if rng.random() >= self._fault_rate:
            return Decision()
        kind = rng.choice(("429", "500", "slow", "truncated"))
        if kind == "429":
            return Decision(status=429, retry_after=rng.choice((None, "1")))
        if kind == "500":
            return Decision(status=500, body=DEFAULT_BODIES[500])
        if kind == "slow":
            return Decision(delay_seconds=_CHAOS_DELAY_SECONDS)
        return Decision(truncate=rng.choice(_CHAOS_TRUNCATIONS))
