-- Daily open, high, low and close per asset: from the price history where
-- there is any for that day (its finest interval), otherwise from the
-- 5-minute snapshots. `source` says which.
with history_points as (
    select
        asset_id,
        "interval",
        "time",
        price_usd,
        {{ utc_day('"time"') }} as day
    from {{ ref('asset_price_history') }}
),

finest_interval as (
    select distinct on (asset_id, day)
        asset_id,
        day,
        "interval"
    from history_points
    order by asset_id, day, {{ interval_seconds('"interval"') }} nulls last, "interval"
),

from_history as (
    select
        points.day,
        points.asset_id,
        (array_agg(points.price_usd order by points."time"))[1] as open,
        max(points.price_usd) as high,
        min(points.price_usd) as low,
        (array_agg(points.price_usd order by points."time" desc))[1] as close,
        'history'::text as source
    from history_points as points
    inner join finest_interval using (asset_id, day, "interval")
    group by points.day, points.asset_id
)

select * from from_history
union all
select
    snapshots.day,
    snapshots.asset_id,
    snapshots.open,
    snapshots.high,
    snapshots.low,
    snapshots.close,
    'snapshots'::text as source
from {{ ref('int_asset_snapshot_ohlc_daily') }} as snapshots
where not exists (
    select 1
    from from_history
    where from_history.asset_id = snapshots.asset_id
        and from_history.day = snapshots.day
)
