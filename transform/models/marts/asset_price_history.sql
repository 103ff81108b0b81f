{{ config(
    materialized='incremental',
    incremental_strategy='append',
    indexes=[{'columns': ['asset_id', 'interval', 'time']}],
) }}
-- Price history points. A backfill loads old points at any time, so no
-- time watermark can find the new ones: an incremental run appends every
-- point not here yet (the ETL never changes a loaded point).
select
    history.asset_id,
    history.history_interval as "interval",
    history.point_at as "time",
    history.price_usd
from {{ ref('stg_asset_history') }} as history
{% if is_incremental() %}
where not exists (
    select 1
    from {{ this }} as known
    where known.asset_id = history.asset_id
        and known."interval" = history.history_interval
        and known."time" = history.point_at
)
{% endif %}
