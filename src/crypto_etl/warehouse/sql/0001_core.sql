-- Core schema: raw snapshots keyed by their natural keys, the run log, and
-- the quarantine for rows that could not be parsed. NUMERIC has no scale cap
-- and strings are TEXT, so no value CoinCap sends can overflow a column.
CREATE SCHEMA IF NOT EXISTS coincap;

CREATE TABLE coincap.etl_runs (
    run_id          bigserial PRIMARY KEY,
    pipeline        text        NOT NULL,
    started_at      timestamptz NOT NULL,
    finished_at     timestamptz NOT NULL,
    status          text        NOT NULL
                    CHECK (status IN ('succeeded', 'failed', 'skipped')),
    rows_fetched    bigint      NOT NULL DEFAULT 0,
    rows_inserted   bigint      NOT NULL DEFAULT 0,
    rows_rejected   bigint      NOT NULL DEFAULT 0,
    api_calls       integer     NOT NULL DEFAULT 0,
    bytes_received  bigint      NOT NULL DEFAULT 0,
    credits         integer     NOT NULL DEFAULT 0,
    error_message   text
);
CREATE INDEX etl_runs_pipeline_started ON coincap.etl_runs (pipeline, started_at DESC);
CREATE INDEX etl_runs_started ON coincap.etl_runs (started_at);

CREATE TABLE coincap.rejects (
    pipeline        text        NOT NULL,
    raw_sha256      text        NOT NULL,
    raw             jsonb       NOT NULL,
    reason          text        NOT NULL,
    first_seen_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at    timestamptz NOT NULL DEFAULT now(),
    times_seen      integer     NOT NULL DEFAULT 1,
    last_run_id     bigint      REFERENCES coincap.etl_runs (run_id),
    PRIMARY KEY (pipeline, raw_sha256)
);

CREATE TABLE coincap.exchanges (
    exchange_id          text        NOT NULL,
    name                 text,
    rank                 integer,
    percent_total_volume numeric,
    volume_usd           numeric,
    trading_pairs        bigint,
    socket               boolean,
    exchange_url         text,
    updated_unix_ms      bigint      NOT NULL,
    updated_at           timestamptz,
    loaded_at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (exchange_id, updated_unix_ms)
);
CREATE INDEX exchanges_updated_at ON coincap.exchanges (updated_at);

CREATE TABLE coincap.assets (
    asset_id            text        NOT NULL,
    snapshot_at         timestamptz NOT NULL,
    rank                integer,
    symbol              text,
    name                text,
    supply              numeric,
    max_supply          numeric,
    market_cap_usd      numeric,
    volume_usd_24hr     numeric,
    price_usd           numeric,
    change_percent_24hr numeric,
    vwap_24hr           numeric,
    explorer            text,
    loaded_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (asset_id, snapshot_at)
);
CREATE INDEX assets_snapshot_at ON coincap.assets (snapshot_at);

CREATE TABLE coincap.markets (
    exchange_id             text        NOT NULL,
    base_id                 text        NOT NULL,
    quote_id                text        NOT NULL,
    updated_unix_ms         bigint      NOT NULL,
    updated_at              timestamptz,
    base_symbol             text,
    quote_symbol            text,
    rank                    integer,
    price_quote             numeric,
    price_usd               numeric,
    volume_usd_24hr         numeric,
    percent_exchange_volume numeric,
    trades_count_24hr       bigint,
    loaded_at               timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (exchange_id, base_id, quote_id, updated_unix_ms)
);
CREATE INDEX markets_updated_at ON coincap.markets (updated_at);

CREATE TABLE coincap.rates (
    rate_id         text        NOT NULL,
    snapshot_at     timestamptz NOT NULL,
    symbol          text,
    currency_symbol text,
    type            text,
    rate_usd        numeric     NOT NULL,
    loaded_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (rate_id, snapshot_at)
);

CREATE TABLE coincap.asset_history (
    asset_id   text        NOT NULL,
    "interval" text        NOT NULL,
    "time"     timestamptz NOT NULL,
    price_usd  numeric     NOT NULL,
    loaded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (asset_id, "interval", "time")
);

-- One row per finished backfill window, so a repeated or interrupted
-- backfill skips what is already loaded without calling the API.
CREATE TABLE coincap.backfill_windows (
    asset_id     text        NOT NULL,
    "interval"   text        NOT NULL,
    window_start timestamptz NOT NULL,
    window_end   timestamptz NOT NULL,
    rows_loaded  integer     NOT NULL,
    run_id       bigint      REFERENCES coincap.etl_runs (run_id),
    completed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (asset_id, "interval", window_start, window_end)
);

-- Dashboards read through this group role; login roles are granted it.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'coincap_read') THEN
        CREATE ROLE coincap_read NOLOGIN;
    END IF;
END
$$;
GRANT USAGE ON SCHEMA coincap TO coincap_read;
GRANT SELECT ON ALL TABLES IN SCHEMA coincap TO coincap_read;
ALTER DEFAULT PRIVILEGES IN SCHEMA coincap GRANT SELECT ON TABLES TO coincap_read;
