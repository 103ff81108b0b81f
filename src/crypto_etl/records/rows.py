"""The typed records that flow between the stages.

Each CoinCap record type is a frozen dataclass whose fields are the columns
of its warehouse table and whose field metadata says where each value comes
from: a key of the raw row (``source``) or the request's context, such as
the envelope's timestamp (``context``), and how to parse it (see
``records.parse``). ``CallStats`` is what a run spent at the API and
``RunRecord`` what it did, as stored in ``coincap.etl_runs``.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar

from crypto_etl.coincap.credits import credits_for


def source(key: str, kind: str, *, required: bool = False) -> Any:
    """Declare a field read from the raw row's ``key`` and parsed as ``kind``."""
    return dataclasses.field(metadata={"key": key, "kind": kind, "required": required})


def context(key: str, kind: str = "text") -> Any:
    """Declare a field taken from the request context (not from the row)."""
    return dataclasses.field(metadata={"context": key, "kind": kind, "required": True})


@dataclass(frozen=True)
class Exchange:
    """One exchange as CoinCap last reported it."""

    exchange_id: str = source("exchangeId", "text", required=True)
    name: str | None = source("name", "text")
    rank: int | None = source("rank", "int")
    percent_total_volume: Decimal | None = source("percentTotalVolume", "decimal")
    volume_usd: Decimal | None = source("volumeUsd", "decimal")
    trading_pairs: int | None = source("tradingPairs", "int")
    socket: bool | None = source("socket", "bool")
    exchange_url: str | None = source("exchangeUrl", "text")
    updated_unix_ms: int = source("updated", "unix_ms", required=True)
    updated_at: datetime | None = source("updated", "utc", required=True)


@dataclass(frozen=True)
class Asset:
    """One asset in a snapshot; ``snapshot_at`` is the envelope's timestamp."""

    asset_id: str = source("id", "text", required=True)
    snapshot_at: datetime = context("snapshot_at", "utc")
    rank: int | None = source("rank", "int")
    symbol: str | None = source("symbol", "text")
    name: str | None = source("name", "text")
    supply: Decimal | None = source("supply", "decimal")
    max_supply: Decimal | None = source("maxSupply", "decimal")
    market_cap_usd: Decimal | None = source("marketCapUsd", "decimal")
    volume_usd_24hr: Decimal | None = source("volumeUsd24Hr", "decimal")
    price_usd: Decimal | None = source("priceUsd", "decimal")
    change_percent_24hr: Decimal | None = source("changePercent24Hr", "decimal")
    vwap_24hr: Decimal | None = source("vwap24Hr", "decimal")
    explorer: str | None = source("explorer", "text")


@dataclass(frozen=True)
class Market:
    """One trading pair on one exchange, keyed by its ``updated`` time."""

    exchange_id: str = source("exchangeId", "text", required=True)
    base_id: str = source("baseId", "text", required=True)
    quote_id: str = source("quoteId", "text", required=True)
    updated_unix_ms: int = source("updated", "unix_ms", required=True)
    updated_at: datetime | None = source("updated", "utc", required=True)
    base_symbol: str | None = source("baseSymbol", "text")
    quote_symbol: str | None = source("quoteSymbol", "text")
    rank: int | None = source("rank", "int")
    price_quote: Decimal | None = source("priceQuote", "decimal")
    price_usd: Decimal | None = source("priceUsd", "decimal")
    volume_usd_24hr: Decimal | None = source("volumeUsd24Hr", "decimal")
    percent_exchange_volume: Decimal | None = source("percentExchangeVolume", "decimal")
    trades_count_24hr: int | None = source("tradesCount24Hr", "int")


@dataclass(frozen=True)
class Rate:
    """One conversion rate in a snapshot (``rateUsd`` may be a string or a number)."""

    rate_id: str = source("id", "text", required=True)
    snapshot_at: datetime = context("snapshot_at", "utc")
    symbol: str | None = source("symbol", "text")
    currency_symbol: str | None = source("currencySymbol", "text")
    type: str | None = source("type", "text")
    rate_usd: Decimal = source("rateUsd", "decimal", required=True)


@dataclass(frozen=True)
class HistoryPoint:
    """One price point of an asset at one interval."""

    asset_id: str = context("asset_id")
    interval: str = context("interval")
    time: datetime = source("time", "utc", required=True)
    price_usd: Decimal = source("priceUsd", "decimal", required=True)


R = TypeVar("R")


@dataclass(frozen=True)
class Rejected:
    """A raw row that could not be parsed, and why."""

    raw: Any
    reason: str


@dataclass(frozen=True)
class Parsed(Generic[R]):
    """The outcome of parsing a batch: good records and quarantined rows."""

    records: list[R]
    rejects: list[Rejected]


def column_names(record_type: type[Any]) -> list[str]:
    """Return the field names of a record type, in order (the table's columns)."""
    return [f.name for f in dataclasses.fields(record_type)]


@dataclass
class CallStats:
    """What a client spent: HTTP calls made, body bytes received, credits.

    Thread-safe: the workers of a concurrent run add to one instance, and
    every call is counted exactly once.
    """

    calls: int = 0
    bytes: int = 0
    credits: int = 0
    _lock: threading.Lock = field(
        default_factory=threading.Lock, repr=False, compare=False
    )

    def add(self, body_bytes: int) -> None:
        """Count one call that received ``body_bytes`` bytes."""
        credits = credits_for(body_bytes)
        with self._lock:
            self.calls += 1
            self.bytes += body_bytes
            self.credits += credits

    def since(self, earlier: CallStats) -> CallStats:
        """Return what was spent after the ``earlier`` copy was taken."""
        now = self.copy()
        return CallStats(
            now.calls - earlier.calls,
            now.bytes - earlier.bytes,
            now.credits - earlier.credits,
        )

    def copy(self) -> CallStats:
        """Return a consistent snapshot to compare against later with ``since``."""
        with self._lock:
            return CallStats(self.calls, self.bytes, self.credits)


@dataclass
class RunRecord:
    """What one run did, as stored in ``coincap.etl_runs``."""

    pipeline: str
    started_at: datetime
    status: str = "succeeded"
    finished_at: datetime | None = None
    rows_fetched: int = 0
    rows_inserted: int = 0
    rows_rejected: int = 0
    rows_deleted: int = 0
    spent: CallStats = field(default_factory=CallStats)
    error_message: str | None = None
    run_id: int | None = None
    scope: str | None = None
