"""Every table and pipeline, declared once.

A ``Pipeline`` names a CoinCap route, the keyed table it loads (record type,
natural key, the column that tells how new its data is) and how stale that
data may get before it is a problem. The snapshot runner, the backfill,
``crypto-etl status``, the dashboards' freshness and the docs all read these
declarations; nothing else spells a table's name or key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from crypto_etl.records.rows import Asset, Exchange, HistoryPoint, Market, Rate
from crypto_etl.warehouse.loader import Table


@dataclass(frozen=True)
class Freshness:
    """How old a table's newest row may be: a warning, then an error."""

    warn_after: timedelta
    error_after: timedelta


# The snapshot pipelines run every few minutes: a snapshot older than 15
# minutes means a missed run, older than an hour a broken schedule. The
# backfill runs daily. transform/models/sources.yml states the same limits
# for dbt (a test keeps them equal).
SNAPSHOT_FRESHNESS = Freshness(timedelta(minutes=15), timedelta(hours=1))
HISTORY_FRESHNESS = Freshness(timedelta(hours=26), timedelta(hours=50))


@dataclass(frozen=True)
class Pipeline:
    """A CoinCap route loaded into one keyed table.

    ``paged`` routes are read with limit/offset until a short page; others
    (``/rates``, one asset's history window) answer in one call.
    """

    name: str
    path: str
    table: Table
    freshness: Freshness = SNAPSHOT_FRESHNESS
    paged: bool = True


def _coincap(name: str, record_type: type[Any], *key: str, newest: str) -> Table:
    return Table("coincap", name, record_type, key, newest)


EXCHANGES = Pipeline(
    "exchanges",
    "/exchanges",
    _coincap(
        "exchanges", Exchange, "exchange_id", "updated_unix_ms", newest="updated_at"
    ),
)
ASSETS = Pipeline(
    "assets",
    "/assets",
    _coincap("assets", Asset, "asset_id", "snapshot_at", newest="snapshot_at"),
)
MARKETS = Pipeline(
    "markets",
    "/markets",
    _coincap(
        "markets",
        Market,
        "exchange_id",
        "base_id",
        "quote_id",
        "updated_unix_ms",
        newest="updated_at",
    ),
)
# /rates takes no limit or offset: it answers every rate in one call.
RATES = Pipeline(
    "rates",
    "/rates",
    _coincap("rates", Rate, "rate_id", "snapshot_at", newest="snapshot_at"),
    paged=False,
)
# One call per (asset, window): the path's {asset_id} is filled per window.
BACKFILL = Pipeline(
    "backfill",
    "/assets/{asset_id}/history",
    _coincap(
        "asset_history", HistoryPoint, "asset_id", "interval", "time", newest="time"
    ),
    freshness=HISTORY_FRESHNESS,
    paged=False,
)

# What `crypto-etl run` can run, by name (`run all` runs them in this order).
PIPELINES: dict[str, Pipeline] = {
    p.name: p for p in (EXCHANGES, ASSETS, MARKETS, RATES)
}
# Every pipeline, the backfill too: what status and freshness report on.
ALL_PIPELINES: dict[str, Pipeline] = {**PIPELINES, BACKFILL.name: BACKFILL}
