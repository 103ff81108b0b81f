-- What a run asked CoinCap for ("top=100", "baseId=bitcoin,ethereum limit=100",
-- "all"), so that its cost predicts the next run only when the scope is the
-- same: the credit budget guard and `crypto-etl schedule` price runs from
-- recent successful runs of the same pipeline and scope. NULL for runs
-- recorded before this column existed, and for backfills (priced from their
-- plan).
ALTER TABLE coincap.etl_runs ADD COLUMN scope text;
CREATE INDEX etl_runs_cost ON coincap.etl_runs (pipeline, scope, started_at DESC)
    WHERE status = 'succeeded';
