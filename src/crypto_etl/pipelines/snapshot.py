"""Snapshot runs: fetch every page, parse, load, log, in one transaction.

One function runs any snapshot ``Pipeline`` of the catalog, so exchanges,
assets, markets and rates share the same client, parser and loader. Each
run is one ``tracked_run`` (see ``warehouse.runlog``):

1. it fetches all pages before opening the data transaction, so no
   transaction waits on the network;
2. in ONE transaction it loads the records, quarantines rejected rows and
   completes its ``etl_runs`` row: all of it lands, or none of it;
3. on failure the data rolls back and the run is stored ``failed``.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable

from crypto_etl.coincap.client import CoinCapClient
from crypto_etl.errors import CryptoEtlError, PartialFailure
from crypto_etl.pipelines.catalog import Pipeline
from crypto_etl.records.parse import parse_rows
from crypto_etl.records.rows import RunRecord
from crypto_etl.warehouse.connection import WarehouseConnection
from crypto_etl.warehouse.loader import load, store_rejects
from crypto_etl.warehouse.runlog import tracked_run

log = logging.getLogger(__name__)


def fetch(pipeline: Pipeline, client: CoinCapClient) -> tuple[list[Any], int]:
    """Return every raw row of the route and the first page's timestamp.

    The first page's timestamp is the snapshot time of the whole run, so
    every page of one run shares one ``snapshot_at``.

    Raises:
        ApiError: when CoinCap cannot give the data.
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
    pipeline: Pipeline, client: CoinCapClient, warehouse: WarehouseConnection
) -> RunRecord:
    """Run one snapshot pipeline end to end.

    Returns:
        The stored run record (status ``succeeded``).

    Raises:
        RunSkipped: another run holds the lock (a ``skipped`` row is stored).
        CryptoEtlError: API or warehouse failure (a ``failed`` row is stored
            when the warehouse is reachable); nothing of the run's data lands.
    """
    with tracked_run(warehouse, pipeline.name, client.stats, atomic=True) as tracker:
        run = tracker.run
        rows, snapshot_ms = fetch(pipeline, client)
        parsed = parse_rows(
            pipeline.table.record_type, rows, {"snapshot_at": snapshot_ms}
        )
        run.rows_fetched = len(rows)
        run.rows_rejected = len(parsed.rejects)
        with warehouse.managed_cursor() as cur:
            run.rows_inserted = load(cur, pipeline.table, parsed.records)
            assert run.run_id is not None
            store_rejects(cur, pipeline.name, run.run_id, parsed.rejects)
            tracker.succeed(cur)
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


def run_many(
    pipelines: Iterable[Pipeline],
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
