-- "interval" and "time" are SQL keywords: renamed here so that no model
-- downstream has to quote them.
select
    asset_id,
    "interval" as history_interval,
    "time" as point_at,
    price_usd,
    loaded_at
from {{ source('coincap', 'asset_history') }}
