"""Snapshot runs: fetch every page, parse, load, log, in one transaction.

One function runs any snapshot ``Pipeline`` of the catalog, so exchanges,
assets, markets and rates share the same client, parser and loader. Each
run first checks the monthly credit budget (``cost.guard``: no API call if
the run would pass it), then is one ``tracked_run`` (see ``warehouse.runlog``):

1. it fetches the requests of its scope (``cost.plan_requests``: all
   exchanges and rates, the top assets, the chosen markets), every page of
   each, before opening the data transaction, so no
   transaction waits on the network;
2. in ONE transaction it loads the records, quarantines rejected rows and
   completes its ``etl_runs`` row: all of it lands, or none of it;
3. on failure the data rolls back and the run is stored ``failed``.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable

from crypto_etl.coincap.client import CoinCapClient
from crypto_etl.config import FetchScope
from crypto_etl.errors import CryptoEtlError
from crypto_etl.pipelines.batch import BatchResult, Outcome
from crypto_etl.pipelines.catalog import Pipeline
from crypto_etl.pipelines.cost import (
    Budget,
    Request,
    guard,
    plan_requests,
    run_cost,
    scope_key,
)
from crypto_etl.records.parse import parse_rows
from crypto_etl.records.rows import RunRecord
from crypto_etl.warehouse.connection import WarehouseConnection
from crypto_etl.warehouse.loader import load, store_rejects
from crypto_etl.warehouse.runlog import tracked_run

log = logging.getLogger(__name__)


def fetch(
    pipeline: Pipeline, client: CoinCapClient, requests: list[Request] | None = None
) -> tuple[list[Any], int]:
    """Return every raw row of ``requests`` and the first page's timestamp.

    ``requests`` defaults to the whole route. The first page's timestamp is
    the snapshot time of the whole run, so every page of one run shares one
    ``snapshot_at``.

    Raises:
        ApiError: when CoinCap cannot give the data.
    """
    if requests is None:
        requests = plan_requests(pipeline, FetchScope())
    rows: list[Any] = []
    snapshot_ms: int | None = None
    for request in requests:
        if request.paged:
            pages = list(client.iter_pages(request.path, request.params))
        else:
            pages = [client.get_list(request.path, request.params or None)]
        for page in pages:
            snapshot_ms = page.timestamp if snapshot_ms is None else snapshot_ms
            rows.extend(page.data)
    assert snapshot_ms is not None  # every plan has at least one request
    return rows, snapshot_ms


def run_snapshot(
    pipeline: Pipeline,
    client: CoinCapClient,
    warehouse: WarehouseConnection,
    *,
    scope: FetchScope = FetchScope(),
    budget: Budget | None = None,
) -> RunRecord:
    """Run one snapshot pipeline end to end.

    Args:
        scope: what to fetch (default: everything).
        budget: the monthly credit budget to check first (None: no check).

    Returns:
        The stored run record (status ``succeeded``).

    Raises:
        BudgetExceeded: the run would pass the budget; no API call was made
            (a ``skipped`` row is stored).
        RunSkipped: another run holds the lock (a ``skipped`` row is stored).
        CryptoEtlError: API or warehouse failure (a ``failed`` row is stored
            when the warehouse is reachable); nothing of the run's data lands.
    """
    key = scope_key(pipeline, scope)
    if budget is not None:
        guard(
            warehouse, budget, pipeline.name, run_cost(warehouse, pipeline, scope), key
        )
    with tracked_run(
        warehouse, pipeline.name, client.stats, atomic=True, scope=key
    ) as tracker:
        run = tracker.run
        rows, snapshot_ms = fetch(pipeline, client, plan_requests(pipeline, scope))
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
    *,
    scope: FetchScope = FetchScope(),
    budget: Budget | None = None,
) -> BatchResult:
    """Run several pipelines over one client and one connection.

    One failing, or skipped (by its lock or the budget), does not stop the
    others; each checks the budget in turn.

    Returns:
        Every pipeline's outcome; ``result.error()`` is the error the batch
        ends with, if any (see ``pipelines.batch``).
    """
    outcomes: list[Outcome] = []
    for pipeline in pipelines:
        try:
            run = run_snapshot(pipeline, client, warehouse, scope=scope, budget=budget)
            outcomes.append(Outcome(pipeline, run=run))
        except CryptoEtlError as exc:
            # Reported once for the whole batch, identical causes together.
            log.debug("%s: %s", pipeline.name, exc, exc_info=True)
            outcomes.append(Outcome(pipeline, error=exc))
    return BatchResult(outcomes)
