{{ config(
    materialized='incremental',
    unique_key=['day', 'asset_id'],
    incremental_strategy='delete+insert',
) }}
-- Daily open, high, low and close of every asset from its 5-minute
-- snapshots. Snapshots never arrive late, so an incremental run recomputes
-- only the newest day here (it may have been partial) and the days after.
select
    {{ utc_day('snapshot_at') }} as day,
    asset_id,
    (array_agg(price_usd order by snapshot_at))[1] as open,
    max(price_usd) as high,
    min(price_usd) as low,
    (array_agg(price_usd order by snapshot_at desc))[1] as close
from {{ ref('stg_assets') }}
where price_usd is not null
{% if is_incremental() %}
    and snapshot_at >= (select coalesce(max(day), '-infinity') from {{ this }})::timestamp at time zone 'UTC'
{% endif %}
group by 1, 2
