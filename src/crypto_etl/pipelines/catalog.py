"""Every snapshot pipeline, by name: exchanges, assets, markets, rates."""

from __future__ import annotations

from crypto_etl.exchange_data_etl import EXCHANGES
from crypto_etl.warehouse.loader import Table
from crypto_etl.pipelines.snapshot import SnapshotPipeline
from crypto_etl.records.rows import Asset, Market, Rate

ASSETS = SnapshotPipeline(
    name="assets",
    path="/assets",
    table=Table("coincap", "assets", Asset, ("asset_id", "snapshot_at")),
)
MARKETS = SnapshotPipeline(
    name="markets",
    path="/markets",
    table=Table(
        "coincap",
        "markets",
        Market,
        ("exchange_id", "base_id", "quote_id", "updated_unix_ms"),
    ),
)
# /rates takes no limit or offset: it answers every rate in one call.
RATES = SnapshotPipeline(
    name="rates",
    path="/rates",
    table=Table("coincap", "rates", Rate, ("rate_id", "snapshot_at")),
    paged=False,
)

PIPELINES: dict[str, SnapshotPipeline] = {
    p.name: p for p in (EXCHANGES, ASSETS, MARKETS, RATES)
}
