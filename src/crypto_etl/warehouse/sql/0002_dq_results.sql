-- Data-quality results: one row per dbt test (and per source freshness
-- check) per `crypto-etl transform`, written by crypto_etl.dbt_runner. The
-- latest results are the rows of the newest invocation_id.
CREATE TABLE coincap.dq_results (
    run_at           timestamptz NOT NULL,
    invocation_id    text        NOT NULL,
    test_name        text        NOT NULL,
    model            text,
    status           text        NOT NULL
                     CHECK (status IN ('pass', 'warn', 'fail', 'error', 'skipped')),
    severity         text        CHECK (severity IN ('warn', 'error')),
    failures         bigint,
    execution_time_s numeric,
    message          text,
    PRIMARY KEY (invocation_id, test_name)
);
CREATE INDEX dq_results_run_at ON coincap.dq_results (run_at DESC);
GRANT SELECT ON coincap.dq_results TO coincap_read;

-- The marts' schema exists before the first transform, so the dashboards'
-- role can be granted USAGE here once; dbt grants SELECT on each mart.
CREATE SCHEMA IF NOT EXISTS analytics;
GRANT USAGE ON SCHEMA analytics TO coincap_read;
