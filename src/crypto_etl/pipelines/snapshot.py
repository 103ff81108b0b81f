"""Snapshot pipelines: fetch every page, parse, load, log, in one transaction.

A ``SnapshotPipeline`` is a declaration (route, record type, table); one
function runs any of them, so exchanges, assets, markets and rates share the
same client, transform and loader. Each run:

1. takes the pipeline's advisory lock (or records ``skipped`` and raises
   ``RunSkipped`` at once);
2. fetches all pages before opening a transaction, so no transaction waits
   on the network;
3. in ONE transaction: loads the records, writes the ``etl_runs`` row and
   quarantines rejected rows — all of it lands, or none of it;
4. on failure, rolls back and records a ``failed`` run in its own
   transaction, then re-raises.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Iterable

from crypto_etl.coincap.client import CoinCapClient
from crypto_etl.errors import (
    CryptoEtlError,
    PartialFailure,
    RunSkipped,
    WarehouseUnavailable,
)
from crypto_etl.warehouse.loader import Table, load, store_rejects
from crypto_etl.records.rows import RunRecord
from crypto_etl.warehouse.runlog import insert_run, now_utc
from crypto_etl.records.parse import parse_rows
from crypto_etl.warehouse.connection import WarehouseConnection

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SnapshotPipeline:
    """A list route loaded into one keyed table.

    ``paged`` routes are read with limit/offset until a short page; others
    (``/rates``) answer everything in one call.
    """

    name: str
    path: str
    table: Table
    paged: bool = True


def fetch(pipeline: SnapshotPipeline, client: CoinCapClient) -> tuple[list[Any], int]:
    """Return every raw row of the route and the first page's timestamp.

    The first page's timestamp is the snapshot time of the whole run, so
    every page of one run shares one ``snapshot_at``.
    """
    if not pipeline.paged:
        page = client.get_list(pipeline.path)
        return page.data, page.timestamp
    rows: list[Any] = []
    snapshot_ms: int | None = None
    for page in client.iter_pages(pipeline.path):
        snapshot_ms = page.timestamp if snapshot_ms is None else snapshot_ms
        rows.extend(page.data)
    assert snapshot_ms is not None  # iter_pages yields at least one page
    return rows, snapshot_ms


def run_snapshot(
    pipeline: SnapshotPipeline, client: CoinCapClient, warehouse: WarehouseConnection
) -> RunRecord:
    """Run one snapshot pipeline end to end.

    Returns:
        The stored run record (status ``succeeded``).

    Raises:
        RunSkipped: another run holds the lock (a ``skipped`` row is stored).
        CryptoEtlError: API or warehouse failure (a ``failed`` row is stored
            when the warehouse is reachable); nothing of the run's data lands.
    """
    run = RunRecord(pipeline=pipeline.name, started_at=now_utc())
    before = client.stats.copy()
    try:
        with warehouse.pipeline_lock(pipeline.name):
            rows, snapshot_ms = fetch(pipeline, client)
            parsed = parse_rows(
                pipeline.table.record_type, rows, {"snapshot_at": snapshot_ms}
            )
            run.rows_fetched = len(rows)
            run.rows_rejected = len(parsed.rejects)
            run.spent = client.stats.since(before)
            with warehouse.managed_cursor() as cur:
                run.rows_inserted = load(cur, pipeline.table, parsed.records)
                run_id = insert_run(cur, run)
                store_rejects(cur, pipeline.name, run_id, parsed.rejects)
    except RunSkipped as exc:
        record_outcome(warehouse, run, "skipped", exc)
        raise
    except CryptoEtlError as exc:
        run.spent = client.stats.since(before)
        run.rows_inserted = 0
        record_outcome(warehouse, run, "failed", exc)
        raise
    for reject in parsed.rejects:
        log.warning("%s: rejected a row: %s", pipeline.name, reject.reason)
    log.info(
        "%s: fetched %d, inserted %d, rejected %d rows; %d calls, %d bytes",
        pipeline.name,
        run.rows_fetched,
        run.rows_inserted,
        run.rows_rejected,
        run.spent.calls,
        run.spent.bytes,
    )
    return run


def record_outcome(
    warehouse: WarehouseConnection, run: RunRecord, status: str, cause: CryptoEtlError
) -> None:
    """Store a run that did not succeed (``failed`` or ``skipped``) and why.

    Nothing is stored when the warehouse itself is unreachable; a failure to
    store is logged, so the caller can still raise the original error.
    """
    run.status = status
    run.error_message = str(cause)
    if isinstance(cause, WarehouseUnavailable):
        return  # nowhere to record it; the caller reports the cause
    try:
        with warehouse.managed_cursor() as cur:
            insert_run(cur, run)
    except CryptoEtlError as exc:
        # The caller still sees the original error; the log says why the
        # run row is missing.
        log.error("%s: could not record the %s run: %s", run.pipeline, status, exc)


def run_many(
    pipelines: Iterable[SnapshotPipeline],
    client: CoinCapClient,
    warehouse: WarehouseConnection,
) -> list[RunRecord]:
    """Run several pipelines over one client and one connection.

    One failing does not stop the others.

    Raises:
        PartialFailure: after all ran, naming those that failed or were skipped.
    """
    done: list[RunRecord] = []
    problems: list[str] = []
    for pipeline in pipelines:
        try:
            done.append(run_snapshot(pipeline, client, warehouse))
        except CryptoEtlError as exc:
            log.error("%s: %s", pipeline.name, exc)
            problems.append(f"{pipeline.name} ({exc})")
    if problems:
        raise PartialFailure(
            f"{len(problems)} pipeline(s) did not load: " + "; ".join(problems)
        )
    return done
