"""Deterministic price paths: any price at any time, without storing a series.

A price is ``base * exp(sum of noise layers)``. Each layer is value noise on a
time lattice (one pseudo-random node every ``scale`` ms, linear in between)
whose amplitude grows like ``sqrt(scale)``, so the sum wanders like a random
walk at every time scale while staying a pure function of (seed, key, time).
The same query therefore always gets the same answer, and a backfill of a
million points costs nothing to keep: each window is computed on demand.

History points of an interval leave out the layers finer than the interval, as
an average over the bucket would; the live price uses every layer.
"""

from __future__ import annotations

import functools
import math
import time
import zlib

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS

INTERVAL_MS: dict[str, int] = {
    "m1": MINUTE_MS,
    "m5": 5 * MINUTE_MS,
    "m15": 15 * MINUTE_MS,
    "m30": 30 * MINUTE_MS,
    "h1": HOUR_MS,
    "h2": 2 * HOUR_MS,
    "h6": 6 * HOUR_MS,
    "h12": 12 * HOUR_MS,
    "d1": DAY_MS,
}

# The longest start..end range /history accepts per interval; longer is a 400.
MAX_HISTORY_WINDOW_MS: dict[str, int] = {
    "m1": 1 * DAY_MS,
    "m5": 5 * DAY_MS,
    "m15": 14 * DAY_MS,
    "m30": 30 * DAY_MS,
    "h1": 60 * DAY_MS,
    "h2": 120 * DAY_MS,
    "h6": 365 * DAY_MS,
    "h12": 730 * DAY_MS,
    "d1": 3650 * DAY_MS,
}

_SCALES_MS = (
    MINUTE_MS,
    5 * MINUTE_MS,
    15 * MINUTE_MS,
    HOUR_MS,
    6 * HOUR_MS,
    DAY_MS,
    7 * DAY_MS,
    30 * DAY_MS,
    365 * DAY_MS,
)
_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_NODE_STRIDE = 0xD1B54A32D192ED03


def _mix(x: int) -> int:
    """SplitMix64 finaliser: a well-spread 64-bit hash of the 64-bit ``x``."""
    x = (x + _GOLDEN) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


@functools.lru_cache(maxsize=1 << 16)
def _node(stream: int, k: int) -> float:
    """The lattice value of node ``k`` of a layer: uniform in [-1, 1).

    Memoised: the coarse layers' nodes are shared by every nearby time.
    """
    return _mix(stream ^ ((k * _NODE_STRIDE) & _MASK)) / 2.0**63 - 1.0


class PriceCurve:
    """A price as a deterministic function of time.

    Takes the run ``seed``, a ``key`` naming the series (an asset or currency
    id), the ``base`` price level and the ``daily_vol`` (standard scale of the
    daily log move; 0 gives a constant price).
    """

    def __init__(self, seed: int, key: str, base: float, daily_vol: float) -> None:
        root = _mix((seed & _MASK) ^ (zlib.crc32(key.encode()) << 32))
        self._base = base
        self._layers = [
            (
                _mix((root + i * _GOLDEN) & _MASK),
                scale,
                daily_vol * (scale / DAY_MS) ** 0.5,
            )
            for i, scale in enumerate(_SCALES_MS)
        ]

    def at(self, t_ms: int) -> float:
        """Return the price at ``t_ms`` (unix ms), every layer included."""
        total = 0.0
        for stream, scale, amp in self._layers:
            k, rest = divmod(t_ms, scale)
            left = _node(stream, k)
            if rest:
                left += (_node(stream, k + 1) - left) * rest / scale
            total += amp * left
        return self._base * math.exp(total)

    def series(
        self, start_ms: int, end_ms: int, step_ms: int
    ) -> list[tuple[int, float]]:
        """Return ``(time, price)`` on the ``step_ms`` grid in ``[start_ms, end_ms)``.

        Grid points are multiples of ``step_ms`` since the epoch (UTC midnight
        for a day). Layers finer than the step are left out.
        """
        first = -(-start_ms // step_ms) * step_ms
        times = range(first, end_ms, step_ms)
        if not times:
            return []
        logs = [0.0] * len(times)
        for stream, scale, amp in self._layers:
            if scale < step_ms:
                continue
            k0 = times[0] // scale
            nodes = [_node(stream, k) for k in range(k0, times[-1] // scale + 2)]
            for i, t in enumerate(times):
                k, rest = divmod(t, scale)
                left = nodes[k - k0]
                if rest:
                    left += (nodes[k - k0 + 1] - left) * rest / scale
                logs[i] += amp * left
        return [(t, self._base * math.exp(v)) for t, v in zip(times, logs)]


def iso_ms(t_ms: int) -> str:
    """Format unix ms as CoinCap does: ``"2024-09-09T21:00:00.000Z"``."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t_ms // 1000)) + (
        f".{t_ms % 1000:03d}Z"
    )
