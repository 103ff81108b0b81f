select
    run_id,
    pipeline,
    started_at,
    {{ utc_day('started_at') }} as run_day,
    finished_at,
    status,
    rows_fetched,
    rows_inserted,
    rows_rejected,
    api_calls,
    bytes_received,
    credits,
    error_message
from {{ source('coincap', 'etl_runs') }}
