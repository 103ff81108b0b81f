-- Retention: the fastest-growing raw tables become range-partitioned by UTC
-- month, so `crypto-etl prune` drops a whole month at once instead of
-- deleting row by row. asset_history (backfills at fine intervals) and
-- assets (every asset at every 5-minute run: by far the most rows) are
-- partitioned on their time columns; the keys already include them, so the
-- primary keys stay as they were. The existing rows move into the new
-- tables here, in this migration's one transaction.
--
-- Partitions are named <table>_pYYYYMM and hold [first of the month, first
-- of the next) in UTC. The loader creates a missing month before it loads
-- into it, and prune creates the coming months ahead of time, through this
-- function. A default partition (<table>_pdefault) catches a row inserted
-- by other means (by hand, a fixture) into a month that has none, so such an
-- INSERT never fails; creating that month later moves those rows into it.

-- Create the monthly partitions of `parent` that hold the given times
-- (missing ones only) and return how many were created. Each is made as a
-- plain table, filled with the default partition's rows of that month (none,
-- normally) and then attached, which locks the parent only in SHARE UPDATE
-- EXCLUSIVE mode: loads and reads of the parent go on meanwhile (the empty
-- default partition is locked for the instant its check takes).
CREATE FUNCTION coincap.create_month_partitions(parent regclass, times timestamptz[])
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    parent_schema text;
    parent_name   text;
    month_start   timestamptz;
    month_end     timestamptz;
    partition     text;
    part_column   text;
    default_part  regclass;
    created       integer := 0;
BEGIN
    SELECT n.nspname, c.relname INTO parent_schema, parent_name
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.oid = parent;
    SELECT a.attname INTO part_column
    FROM pg_partitioned_table p
    JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0]
    WHERE p.partrelid = parent;
    SELECT i.inhrelid::regclass INTO default_part
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = parent AND pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT';
    FOR month_start IN
        SELECT DISTINCT date_trunc('month', t, 'UTC') FROM unnest(times) AS t
        WHERE t IS NOT NULL ORDER BY 1
    LOOP
        partition := parent_name || '_p' || to_char(month_start AT TIME ZONE 'UTC', 'YYYYMM');
        CONTINUE WHEN to_regclass(format('%I.%I', parent_schema, partition)) IS NOT NULL;
        -- Two sessions creating the same month: the second waits, then sees it.
        PERFORM pg_advisory_xact_lock(hashtext('crypto_etl.create_month_partitions'));
        CONTINUE WHEN to_regclass(format('%I.%I', parent_schema, partition)) IS NOT NULL;
        month_end := ((month_start AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC';
        EXECUTE format('CREATE TABLE %I.%I (LIKE %I.%I INCLUDING DEFAULTS)',
                       parent_schema, partition, parent_schema, parent_name);
        IF default_part IS NOT NULL THEN
            EXECUTE format('WITH moved AS (DELETE FROM %s WHERE %I >= %L AND %I < %L'
                           ' RETURNING *) INSERT INTO %I.%I SELECT * FROM moved',
                           default_part, part_column, month_start, part_column,
                           month_end, parent_schema, partition);
        END IF;
        EXECUTE format('ALTER TABLE %I.%I ATTACH PARTITION %I.%I FOR VALUES FROM (%L) TO (%L)',
                       parent_schema, parent_name, parent_schema, partition,
                       month_start, month_end);
        created := created + 1;
    END LOOP;
    RETURN created;
END
$$;

-- dbt's staging views read these tables and would block the swap: drop them
-- here; the next `crypto-etl transform` recreates them.
DROP VIEW IF EXISTS staging.stg_assets, staging.stg_asset_history;

-- asset_history, partitioned on "time".
ALTER TABLE coincap.asset_history RENAME TO asset_history_unpartitioned;
ALTER INDEX coincap.asset_history_pkey RENAME TO asset_history_unpartitioned_pkey;
CREATE TABLE coincap.asset_history (
    asset_id   text        NOT NULL,
    "interval" text        NOT NULL,
    "time"     timestamptz NOT NULL,
    price_usd  numeric     NOT NULL,
    loaded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (asset_id, "interval", "time")
) PARTITION BY RANGE ("time");
CREATE TABLE coincap.asset_history_pdefault PARTITION OF coincap.asset_history DEFAULT;
SELECT coincap.create_month_partitions('coincap.asset_history',
    array(SELECT DISTINCT date_trunc('month', "time", 'UTC')
          FROM coincap.asset_history_unpartitioned)
    || array[now(), now() + interval '1 month', now() + interval '2 months']);
INSERT INTO coincap.asset_history (asset_id, "interval", "time", price_usd, loaded_at)
SELECT asset_id, "interval", "time", price_usd, loaded_at
FROM coincap.asset_history_unpartitioned;
DROP TABLE coincap.asset_history_unpartitioned;

-- assets, partitioned on snapshot_at (one value per run).
ALTER TABLE coincap.assets RENAME TO assets_unpartitioned;
ALTER INDEX coincap.assets_pkey RENAME TO assets_unpartitioned_pkey;
ALTER INDEX coincap.assets_snapshot_at RENAME TO assets_unpartitioned_snapshot_at;
CREATE TABLE coincap.assets (
    asset_id            text        NOT NULL,
    snapshot_at         timestamptz NOT NULL,
    rank                bigint,
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
) PARTITION BY RANGE (snapshot_at);
CREATE INDEX assets_snapshot_at ON coincap.assets (snapshot_at);
CREATE TABLE coincap.assets_pdefault PARTITION OF coincap.assets DEFAULT;
SELECT coincap.create_month_partitions('coincap.assets',
    array(SELECT DISTINCT date_trunc('month', snapshot_at, 'UTC')
          FROM coincap.assets_unpartitioned)
    || array[now(), now() + interval '1 month', now() + interval '2 months']);
INSERT INTO coincap.assets
SELECT asset_id, snapshot_at, rank, symbol, name, supply, max_supply,
       market_cap_usd, volume_usd_24hr, price_usd, change_percent_24hr,
       vwap_24hr, explorer, loaded_at
FROM coincap.assets_unpartitioned;
DROP TABLE coincap.assets_unpartitioned;

-- The dashboards' group role reads the new tables (and, through the
-- parent, every partition created later).
GRANT SELECT ON coincap.asset_history, coincap.assets TO coincap_read;

-- What a prune run removed, next to what a load run added.
ALTER TABLE coincap.etl_runs ADD COLUMN rows_deleted bigint NOT NULL DEFAULT 0;
