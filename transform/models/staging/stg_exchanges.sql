-- Exchanges, renamed once. updated_at is NULL for an exchange that never
-- reported (CoinCap's updated = 0).
select
    exchange_id,
    name as exchange_name,
    rank,
    percent_total_volume as share_pct,
    volume_usd,
    trading_pairs,
    socket as has_socket,
    exchange_url,
    updated_unix_ms,
    updated_at,
    loaded_at
from {{ source('coincap', 'exchanges') }}
