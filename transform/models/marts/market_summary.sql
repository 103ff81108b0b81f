{{ config(
    materialized='incremental',
    unique_key=['exchange_id', 'base_id', 'quote_id'],
    incremental_strategy='delete+insert',
    indexes=[{'columns': ['exchange_id', 'base_id', 'quote_id']}],
) }}
-- The latest row of every trading pair, kept current the same way as
-- exchanges_current.
with latest as (
    select distinct on (exchange_id, base_id, quote_id)
        exchange_id,
        base_id,
        quote_id,
        base_symbol,
        quote_symbol,
        price_usd,
        volume_usd_24hr,
        percent_exchange_volume,
        trades_count_24hr,
        updated_at
    from {{ ref('stg_markets') }}
    {% if is_incremental() %}
    where updated_at >= {{ incremental_cutoff('updated_at') }} or updated_at is null
    {% endif %}
    order by exchange_id, base_id, quote_id, updated_unix_ms desc
)

select latest.*
from latest
{% if is_incremental() %}
left join {{ this }} as known using (exchange_id, base_id, quote_id)
where known.exchange_id is null
    or coalesce(latest.updated_at, '-infinity') >= coalesce(known.updated_at, '-infinity')
{% endif %}
