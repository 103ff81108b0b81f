-- Every asset of the latest snapshot (each ETL run snapshots all of them).
select
    asset_id,
    symbol,
    asset_name,
    rank,
    price_usd,
    market_cap_usd,
    volume_usd_24hr,
    change_percent_24hr,
    supply,
    max_supply,
    snapshot_at
from {{ ref('stg_assets') }}
where snapshot_at = (select max(snapshot_at) from {{ ref('stg_assets') }})
