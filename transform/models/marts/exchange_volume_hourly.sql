{{ config(
    materialized='incremental',
    unique_key=['hour', 'exchange_id'],
    incremental_strategy='delete+insert',
    indexes=[{'columns': ['hour', 'exchange_id']}],
) }}
-- Per exchange, its last snapshot within each UTC hour. An incremental run
-- recomputes whole hours from the newest hour here less the lookback, so an
-- hour still filling up is recomputed on the next run.
select distinct on (hour, exchange_id)
    {{ utc_hour('updated_at') }} as hour,
    exchange_id,
    exchange_name,
    volume_usd,
    share_pct
from {{ ref('stg_exchanges') }}
where updated_at is not null
{% if is_incremental() %}
    and updated_at >= {{ incremental_cutoff('hour') }}
{% endif %}
order by hour, exchange_id, updated_unix_ms desc
