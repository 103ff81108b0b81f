"""The run log: one ``coincap.etl_runs`` row per pipeline run, and its lifecycle.

Every run, snapshot or backfill, goes through ``tracked_run``:

1. it takes the pipeline's advisory lock, or stores a ``skipped`` row and
   raises ``RunSkipped`` at once;
2. holding the lock, it marks any run of the pipeline still ``running`` as
   ``failed`` ("abandoned": killed, or its host lost power; a live run would
   hold the lock), and stores this run's row as ``running``, committed, so a
   run that is killed from here on is still accounted for;
3. the caller does its work and calls ``RunTracker.succeed(cur)`` inside the
   transaction that commits its data, so the data and the ``succeeded`` row
   land together or not at all;
4. if the block raises anything (an API or warehouse error, Ctrl-C, a bug),
   the row is completed as ``failed`` with the reason, in its own
   transaction, and the exception goes on.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Iterator

from crypto_etl.errors import (
    CryptoEtlError,
    Interrupted,
    RunSkipped,
    WarehouseUnavailable,
)
from crypto_etl.records.rows import CallStats, RunRecord
from crypto_etl.warehouse.connection import Cursor, WarehouseConnection

log = logging.getLogger(__name__)

ABANDONED = "abandoned: the run ended without completing its row (killed?)"


def now_utc() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


class RunTracker:
    """One run in progress: its record, and what the client spent since it began.

    Args:
        run: the record, whose counters the caller fills in.
        stats: the client's running totals (``CoinCapClient.stats``).
        atomic: True when a failed run leaves none of its rows (a snapshot);
            False when finished parts stay (the backfill's windows).
    """

    def __init__(self, run: RunRecord, stats: CallStats, atomic: bool) -> None:
        self.run = run
        self.atomic = atomic
        self._stats = stats
        self._before = stats.copy()

    def succeed(self, cur: Cursor) -> None:
        """Complete the row as ``succeeded`` in the caller's transaction."""
        self.run.status = "succeeded"
        self.run.spent = self._stats.since(self._before)
        _complete(cur, self.run)

    def fail(self, warehouse: WarehouseConnection, cause: BaseException) -> None:
        """Complete the row as ``failed`` with ``cause``, in its own transaction.

        A failure to store it is logged, so the caller can still raise the
        original error.
        """
        self.run.status = "failed"
        self.run.error_message = describe(cause)
        self.run.spent = self._stats.since(self._before)
        if self.atomic:
            self.run.rows_inserted = 0
        if isinstance(cause, WarehouseUnavailable):
            # Reconnecting would fail the same way; the next run of the
            # pipeline marks this row abandoned.
            log.error(
                "%s: could not record the failed run: %s", self.run.pipeline, cause
            )
            return
        try:
            with warehouse.managed_cursor() as cur:
                _complete(cur, self.run)
        except CryptoEtlError as exc:
            log.error("%s: could not record the failed run: %s", self.run.pipeline, exc)


def describe(cause: BaseException) -> str:
    """The reason stored for a run that ended with ``cause``."""
    if isinstance(cause, Interrupted):
        return str(cause)
    if isinstance(cause, KeyboardInterrupt):
        return "interrupted by SIGINT"
    return str(cause) or type(cause).__name__


@contextmanager
def tracked_run(
    warehouse: WarehouseConnection,
    pipeline: str,
    stats: CallStats,
    *,
    atomic: bool,
    scope: str | None = None,
) -> Iterator[RunTracker]:
    """Run a block as one recorded run of ``pipeline`` (see the module docstring).

    ``scope`` says what the run asks the API for (stored with the run, so
    that its cost prices later runs of the same scope).

    Yields:
        The ``RunTracker``; call its ``succeed(cur)`` in the data's transaction.

    Raises:
        RunSkipped: another run holds the lock (a ``skipped`` row is stored).
        BaseException: whatever the block raised, after the row is completed
            as ``failed``. A block that ends without ``succeed`` is failed too.
    """
    run = RunRecord(
        pipeline=pipeline, started_at=now_utc(), status="running", scope=scope
    )
    try:
        with warehouse.pipeline_lock(pipeline):
            with warehouse.managed_cursor() as cur:
                _mark_abandoned(cur, pipeline)
                _start(cur, run)
            tracker = RunTracker(run, stats, atomic)
            try:
                yield tracker
                if run.status != "succeeded":
                    raise RuntimeError(f"{pipeline}: the run ended without succeed()")
            except BaseException as exc:
                tracker.fail(warehouse, exc)
                raise
    except RunSkipped as exc:
        record_skipped(warehouse, run, str(exc))
        raise


def record_skipped(warehouse: WarehouseConnection, run: RunRecord, reason: str) -> None:
    """Store ``run`` as ``skipped`` for ``reason`` (it made no API call).

    A failure to store it is logged, so the caller can still raise the
    error that made it skip.
    """
    run.status, run.error_message = "skipped", reason
    try:
        with warehouse.managed_cursor() as cur:
            _start(cur, run)
            _complete(cur, run)
    except CryptoEtlError as store_error:
        log.error("%s: could not record the skipped run: %s", run.pipeline, store_error)


def _start(cur: Cursor, run: RunRecord) -> None:
    cur.execute(
        "INSERT INTO coincap.etl_runs (pipeline, started_at, status, scope)"
        " VALUES (%s, %s, 'running', %s) RETURNING run_id",
        (run.pipeline, run.started_at, run.scope),
    )
    row = cur.fetchone()
    assert row is not None
    run.run_id = int(row[0])


def _complete(cur: Cursor, run: RunRecord) -> None:
    run.finished_at = now_utc()
    cur.execute(
        "UPDATE coincap.etl_runs SET finished_at = %s, status = %s,"
        " rows_fetched = %s, rows_inserted = %s, rows_rejected = %s,"
        " rows_deleted = %s, api_calls = %s, bytes_received = %s, credits = %s,"
        " error_message = %s"
        " WHERE run_id = %s",
        (
            run.finished_at,
            run.status,
            run.rows_fetched,
            run.rows_inserted,
            run.rows_rejected,
            run.rows_deleted,
            run.spent.calls,
            run.spent.bytes,
            run.spent.credits,
            run.error_message,
            run.run_id,
        ),
    )


def _mark_abandoned(cur: Cursor, pipeline: str) -> None:
    # Only called while holding the pipeline's lock: a run still 'running'
    # then cannot be alive, since a live run holds that lock.
    cur.execute(
        "UPDATE coincap.etl_runs SET status = 'failed', finished_at = now(),"
        " error_message = %s WHERE pipeline = %s AND status = 'running'"
        " RETURNING run_id",
        (ABANDONED, pipeline),
    )
    for (run_id,) in cur.fetchall():
        log.warning("%s: run %d was abandoned; marked failed", pipeline, run_id)
