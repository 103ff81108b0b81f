{{ config(
    materialized='incremental',
    unique_key=['hour', 'asset_id'],
    incremental_strategy='delete+insert',
    indexes=[{'columns': ['hour', 'asset_id']}],
) }}
-- Per asset, its last snapshot within each UTC hour.
select distinct on (hour, asset_id)
    {{ utc_hour('snapshot_at') }} as hour,
    asset_id,
    symbol,
    price_usd,
    market_cap_usd
from {{ ref('stg_assets') }}
{% if is_incremental() %}
where snapshot_at >= {{ incremental_cutoff('hour') }}
{% endif %}
order by hour, asset_id, snapshot_at desc
