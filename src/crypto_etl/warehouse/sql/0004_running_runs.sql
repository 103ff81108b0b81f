-- A run's row is written when it starts (status 'running', no finished_at
-- yet) and completed when it ends, so a run that is killed is still
-- accounted for: the next run of the pipeline marks it failed ("abandoned").
ALTER TABLE coincap.etl_runs ALTER COLUMN finished_at DROP NOT NULL;
ALTER TABLE coincap.etl_runs DROP CONSTRAINT etl_runs_status_check;
ALTER TABLE coincap.etl_runs ADD CONSTRAINT etl_runs_status_check
    CHECK (status IN ('running', 'succeeded', 'failed', 'skipped'));
ALTER TABLE coincap.etl_runs ADD CONSTRAINT etl_runs_finished_unless_running
    CHECK ((status = 'running') = (finished_at IS NULL));
CREATE INDEX etl_runs_running ON coincap.etl_runs (pipeline) WHERE status = 'running';
