select
    rate_id,
    snapshot_at,
    symbol,
    currency_symbol,
    type as rate_type,
    rate_usd,
    loaded_at
from {{ source('coincap', 'rates') }}
