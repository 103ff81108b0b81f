"""The run log: one ``coincap.etl_runs`` row per pipeline run."""

from __future__ import annotations

from datetime import datetime, timezone

from crypto_etl.records.rows import RunRecord
from crypto_etl.warehouse.connection import Cursor


def now_utc() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


def insert_run(cur: Cursor, run: RunRecord) -> int:
    """Insert the run's row (finishing it now if unfinished); return its id."""
    run.finished_at = run.finished_at or now_utc()
    cur.execute(
        "INSERT INTO coincap.etl_runs (pipeline, started_at, finished_at, status,"
        " rows_fetched, rows_inserted, rows_rejected, api_calls, bytes_received,"
        " credits, error_message)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING run_id",
        (
            run.pipeline,
            run.started_at,
            run.finished_at,
            run.status,
            run.rows_fetched,
            run.rows_inserted,
            run.rows_rejected,
            run.spent.calls,
            run.spent.bytes,
            run.spent.credits,
            run.error_message,
        ),
    )
    row = cur.fetchone()
    assert row is not None
    run.run_id = int(row[0])
    return run.run_id
