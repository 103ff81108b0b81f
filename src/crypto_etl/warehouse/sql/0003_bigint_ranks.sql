-- Ranks were integer; the transform accepts any whole number that fits a
-- bigint, so a rank beyond 2^31 must be stored, not fail the whole load.
-- dbt's staging views read these columns and would block the type change:
-- drop them here; the next `crypto-etl transform` recreates them.
DROP VIEW IF EXISTS staging.stg_exchanges, staging.stg_assets, staging.stg_markets;
ALTER TABLE coincap.exchanges ALTER COLUMN rank TYPE bigint;
ALTER TABLE coincap.assets ALTER COLUMN rank TYPE bigint;
ALTER TABLE coincap.markets ALTER COLUMN rank TYPE bigint;

-- Checkpoints are written window by window, before the run's row exists:
-- this column was never filled.
ALTER TABLE coincap.backfill_windows DROP COLUMN run_id;
