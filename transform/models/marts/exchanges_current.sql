{{ config(
    materialized='incremental',
    unique_key='exchange_id',
    incremental_strategy='delete+insert',
) }}
-- The latest row of every exchange the ETL has seen. An incremental run
-- reads only the rows updated within the lookback (and those never
-- updated), and replaces a row here only with one at least as recent.
with latest as (
    select distinct on (exchange_id)
        exchange_id,
        exchange_name,
        rank,
        volume_usd,
        share_pct,
        trading_pairs,
        updated_at
    from {{ ref('stg_exchanges') }}
    {% if is_incremental() %}
    where updated_at >= {{ incremental_cutoff('updated_at') }} or updated_at is null
    {% endif %}
    order by exchange_id, updated_unix_ms desc
)

select latest.*
from latest
{% if is_incremental() %}
left join {{ this }} as known using (exchange_id)
where known.exchange_id is null
    or coalesce(latest.updated_at, '-infinity') >= coalesce(known.updated_at, '-infinity')
{% endif %}
