{{ config(
    materialized='incremental',
    unique_key=['day', 'exchange_id'],
    incremental_strategy='delete+insert',
    indexes=[{'columns': ['day', 'exchange_id']}],
) }}
-- Per exchange, its last snapshot within each UTC day: the last of its
-- hours. An incremental run recomputes the newest day here and the one
-- before it, which covers every hour the hourly model may have recomputed.
select distinct on (day, exchange_id)
    {{ utc_day('hour') }} as day,
    exchange_id,
    exchange_name,
    volume_usd,
    share_pct
from {{ ref('exchange_volume_hourly') }}
{% if is_incremental() %}
where hour >= ((select coalesce(max(day), '-infinity') from {{ this }}) - 1)::timestamp at time zone 'UTC'
{% endif %}
order by day, exchange_id, hour desc
