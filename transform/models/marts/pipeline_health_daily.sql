-- Runs, outcomes, rows and credits per pipeline per UTC day.
select
    run_day as day,
    pipeline,
    count(*) as runs,
    count(*) filter (where status = 'succeeded') as succeeded,
    count(*) filter (where status = 'failed') as failed,
    count(*) filter (where status = 'skipped') as skipped,
    sum(rows_inserted)::bigint as rows_inserted,
    sum(rows_rejected)::bigint as rows_rejected,
    sum(credits)::bigint as credits
from {{ ref('stg_etl_runs') }}
group by run_day, pipeline
