select
    asset_id,
    snapshot_at,
    rank,
    symbol,
    name as asset_name,
    supply,
    max_supply,
    market_cap_usd,
    volume_usd_24hr,
    price_usd,
    change_percent_24hr,
    vwap_24hr,
    explorer,
    loaded_at
from {{ source('coincap', 'assets') }}
