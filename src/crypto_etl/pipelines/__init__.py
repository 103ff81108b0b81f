"""The pipelines: the table catalog, snapshot runs and the history backfill."""
