"""CoinCap's credit rule: what one call costs."""

from __future__ import annotations

BYTES_PER_CREDIT = 2500


def credits_for(body_bytes: int) -> int:
    """Return the credits one call costs: 1, plus 1 per extra 2,500 bytes."""
    return 1 + max(0, body_bytes - 1) // BYTES_PER_CREDIT
