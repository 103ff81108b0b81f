select
    exchange_id,
    base_id,
    quote_id,
    base_symbol,
    quote_symbol,
    rank,
    price_quote,
    price_usd,
    volume_usd_24hr,
    percent_exchange_volume,
    trades_count_24hr,
    updated_unix_ms,
    updated_at,
    loaded_at
from {{ source('coincap', 'markets') }}
