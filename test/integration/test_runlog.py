"""Every run is accounted for in coincap.etl_runs, whatever ends it."""

from __future__ import annotations

import pytest

from conftest import query
from crypto_etl.errors import RunSkipped, WarehouseError
from crypto_etl.records.rows import CallStats
from crypto_etl.warehouse.connection import WarehouseConnection
from crypto_etl.warehouse.runlog import ABANDONED, tracked_run


def runs(db):
    return query(
        db,
        "SELECT pipeline, status, finished_at IS NULL, error_message"
        " FROM coincap.etl_runs ORDER BY run_id",
    )


def test_the_run_row_is_committed_as_running_before_the_work(warehouse, db):
    with tracked_run(warehouse, "rates", CallStats(), atomic=True) as tracker:
        # Seen from another connection: already stored, not yet finished.
        assert runs(db) == [("rates", "running", True, None)]
        with warehouse.managed_cursor() as cur:
            tracker.succeed(cur)
    assert runs(db) == [("rates", "succeeded", False, None)]


def test_a_run_that_raises_is_stored_failed_with_its_spend(warehouse, db):
    stats = CallStats()
    with pytest.raises(ValueError):
        with tracked_run(warehouse, "assets", stats, atomic=True) as tracker:
            stats.add(6000)
            tracker.run.rows_inserted = 5  # rolled back with the data
            raise ValueError("boom")
    assert runs(db) == [("assets", "failed", False, "boom")]
    assert query(
        db,
        "SELECT api_calls, bytes_received, credits, rows_inserted FROM"
        " coincap.etl_runs",
    ) == [(1, 6000, 3, 0)]


def test_ctrl_c_is_stored_as_interrupted(warehouse, db):
    with pytest.raises(KeyboardInterrupt):
        with tracked_run(warehouse, "markets", CallStats(), atomic=True):
            raise KeyboardInterrupt
    assert runs(db) == [("markets", "failed", False, "interrupted by SIGINT")]


def test_a_block_that_forgets_to_succeed_is_a_failed_run(warehouse, db):
    with pytest.raises(RuntimeError, match="without succeed"):
        with tracked_run(warehouse, "rates", CallStats(), atomic=True):
            pass
    assert runs(db)[0][:2] == ("rates", "failed")


def test_a_run_left_running_is_marked_abandoned_by_the_next_run(warehouse, db):
    # A run whose process died: its row says running, its lock is gone.
    with warehouse.managed_cursor() as cur:
        cur.execute(
            "INSERT INTO coincap.etl_runs (pipeline, started_at, status)"
            " VALUES ('exchanges', now() - interval '1 hour', 'running')"
        )
    with tracked_run(warehouse, "exchanges", CallStats(), atomic=True) as tracker:
        with warehouse.managed_cursor() as cur:
            tracker.succeed(cur)
    assert runs(db) == [
        ("exchanges", "failed", False, ABANDONED),
        ("exchanges", "succeeded", False, None),
    ]


def test_a_run_of_another_pipeline_is_not_marked_abandoned(warehouse, db):
    with warehouse.managed_cursor() as cur:
        cur.execute(
            "INSERT INTO coincap.etl_runs (pipeline, started_at, status)"
            " VALUES ('assets', now(), 'running')"
        )
    with tracked_run(warehouse, "exchanges", CallStats(), atomic=True) as tracker:
        with warehouse.managed_cursor() as cur:
            tracker.succeed(cur)
    assert runs(db)[0] == ("assets", "running", True, None)


def test_a_run_that_cannot_take_the_lock_is_stored_skipped(warehouse, db):
    with WarehouseConnection(db) as other, other.pipeline_lock("rates"):
        with pytest.raises(RunSkipped):
            with tracked_run(warehouse, "rates", CallStats(), atomic=True):
                pytest.fail("the block must not run without the lock")
    assert runs(db) == [
        ("rates", "skipped", False, "rates: another run is in progress")
    ]


def test_a_failing_data_transaction_leaves_the_run_failed(warehouse, db):
    with pytest.raises(WarehouseError):
        with tracked_run(warehouse, "rates", CallStats(), atomic=True) as tracker:
            with warehouse.managed_cursor() as cur:
                tracker.succeed(cur)
                cur.execute("SELECT 1/0")
    assert runs(db)[0][:2] == ("rates", "failed")
    assert "division by zero" in runs(db)[0][3]
