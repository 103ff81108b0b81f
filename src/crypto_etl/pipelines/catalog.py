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


def _coincap(
    name: str,
    record_type: type[Any],
    *key: str,
    newest: str,
    partition_column: str | None = None,
) -> Table:
    return Table("coincap", name, record_type, key, newest, partition_column)


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
    _coincap(
        "assets",
        Asset,
        "asset_id",
        "snapshot_at",
        newest="snapshot_at",
        partition_column="snapshot_at",
    ),
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
        "asset_history",
        HistoryPoint,
        "asset_id",
        "interval",
        "time",
        newest="time",
        partition_column="time",
    ),
    freshness=HISTORY_FRESHNESS,
    paged=False,
)


@dataclass(frozen=True)
class Retention:
    """How ``crypto-etl prune`` removes old rows of one pipeline's raw table.

    ``column`` is the time compared with the cutoff. ``held`` is an SQL
    condition on the row (alias ``raw``) that is true once the marts hold
    what it contributes; rows where it is not true are kept whatever their
    age. ``marts`` must all exist, else nothing is pruned from the table.
    ``keep_latest`` keeps each entity's newest row (the key without its last
    column) whatever its age: tables that add a row only when CoinCap's
    ``updated`` changes would otherwise lose a quiet exchange altogether.
    """

    pipeline: Pipeline
    column: str
    marts: tuple[str, ...] = ()
    held: str = "true"
    keep_latest: bool = False


# An incremental mart recomputes from its newest bucket (less a few hours'
# lookback, transform/dbt_project.yml); raw rows more than a day older than
# that are never read again, so they are "held".
# An empty mart holds nothing: its newest bucket counts as -infinity.
_DAY_BEFORE = "(SELECT coalesce(max({}), '-infinity') FROM {}) - interval '1 day'"
RETENTION: dict[str, Retention] = {
    r.pipeline.table.name: r
    for r in (
        # asset_price_history appends every point it has not seen: a point
        # is held once it is there (a backfill may load old points any day).
        Retention(
            BACKFILL,
            "time",
            ("analytics.asset_price_history",),
            "EXISTS (SELECT FROM analytics.asset_price_history AS m"
            ' WHERE m.asset_id = raw.asset_id AND m."interval" = raw."interval"'
            ' AND m."time" = raw."time")',
        ),
        Retention(
            ASSETS,
            "snapshot_at",
            (
                "staging.int_asset_snapshot_ohlc_daily",
                "analytics.asset_snapshots_hourly",
            ),
            "raw.snapshot_at < least("
            + _DAY_BEFORE.format(
                "day::timestamp AT TIME ZONE 'UTC'",
                "staging.int_asset_snapshot_ohlc_daily",
            )
            + ", "
            + _DAY_BEFORE.format("hour", "analytics.asset_snapshots_hourly")
            + ")",
        ),
        # No model aggregates rates: a snapshot older than the window goes.
        Retention(RATES, "snapshot_at"),
        Retention(
            EXCHANGES,
            "updated_at",
            ("analytics.exchange_volume_hourly", "analytics.exchanges_current"),
            "raw.updated_at < least("
            + _DAY_BEFORE.format("hour", "analytics.exchange_volume_hourly")
            + ", "
            + _DAY_BEFORE.format("updated_at", "analytics.exchanges_current")
            + ")",
            keep_latest=True,
        ),
        Retention(
            MARKETS,
            "updated_at",
            ("analytics.market_summary",),
            "raw.updated_at < "
            + _DAY_BEFORE.format("updated_at", "analytics.market_summary"),
            keep_latest=True,
        ),
    )
}

# What `crypto-etl run` can run, by name (`run all` runs them in this order).
PIPELINES: dict[str, Pipeline] = {
    p.name: p for p in (EXCHANGES, ASSETS, MARKETS, RATES)
}
# Every pipeline, the backfill too: what status and freshness report on.
ALL_PIPELINES: dict[str, Pipeline] = {**PIPELINES, BACKFILL.name: BACKFILL}
