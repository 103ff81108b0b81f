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

``run_many`` (``run all``) checks the budget and starts the runs of several
pipelines in turn, fetches their pages concurrently (up to
``client.max_in_flight`` pipelines at once, each one's pages in order, every
call through the client's one rate limiter), and loads each pipeline in its
own transaction as soon as its pages are in, on the one connection.
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, Iterable

from crypto_etl.coincap.client import CoinCapClient
from crypto_etl.coincap.inflight import InFlight
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
from crypto_etl.records.rows import Rejected, RunRecord
from crypto_etl.warehouse.connection import WarehouseConnection
from crypto_etl.warehouse.loader import load, store_rejects
from crypto_etl.warehouse.runlog import RunTracker, tracked_run

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
        rows, snapshot_ms = fetch(pipeline, client, plan_requests(pipeline, scope))
        rejects = _load(pipeline, tracker, warehouse, rows, snapshot_ms)
    _report(pipeline, tracker.run, rejects)
    return tracker.run


def _load(
    pipeline: Pipeline,
    tracker: RunTracker,
    warehouse: WarehouseConnection,
    rows: list[Any],
    snapshot_ms: int,
) -> list[Rejected]:
    """Parse and load one run's rows and complete its row, in ONE transaction.

    Returns:
        The rejected rows (stored in the same transaction).
    """
    run = tracker.run
    parsed = parse_rows(pipeline.table.record_type, rows, {"snapshot_at": snapshot_ms})
    run.rows_fetched = len(rows)
    run.rows_rejected = len(parsed.rejects)
    with warehouse.managed_cursor() as cur:
        run.rows_inserted = load(cur, pipeline.table, parsed.records)
        assert run.run_id is not None
        store_rejects(cur, pipeline.name, run.run_id, parsed.rejects)
        tracker.succeed(cur)
    return parsed.rejects


def _report(pipeline: Pipeline, run: RunRecord, rejects: list[Rejected]) -> None:
    for reject in rejects:
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


@dataclass(frozen=True)
class _Started:
    """A run begun by ``run_many``, waiting for its pages."""

    pipeline: Pipeline
    requests: list[Request]
    client: CoinCapClient  # a view with the run's own call counters
    tracker: RunTracker
    lifecycle: ExitStack  # holds the open ``tracked_run``


def run_many(
    pipelines: Iterable[Pipeline],
    client: CoinCapClient,
    warehouse: WarehouseConnection,
    *,
    scope: FetchScope = FetchScope(),
    budget: Budget | None = None,
) -> BatchResult:
    """Run several pipelines over one client and one connection, fetching at once.

    Each pipeline is checked against the budget in turn (counting the
    estimates of those already started in this call), then is its own
    ``tracked_run`` with its own call counters; their pages are fetched
    concurrently and each is loaded in its own transaction when its pages
    are in. One failing, or skipped (by its lock or the budget), does not
    stop the others.

    Returns:
        Every pipeline's outcome; ``result.error()`` is the error the batch
        ends with, if any (see ``pipelines.batch``).
    """
    ordered = list(pipelines)
    outcomes: dict[str, Outcome] = {}

    def problem(pipeline: Pipeline, exc: CryptoEtlError) -> None:
        # Reported once for the whole batch, identical causes together.
        log.debug("%s: %s", pipeline.name, exc, exc_info=True)
        outcomes[pipeline.name] = Outcome(pipeline, error=exc)

    def fetch_started(started: _Started) -> tuple[list[Any], int]:
        return fetch(started.pipeline, started.client, started.requests)

    # Runs still open when an interrupt or a bug escapes are completed as
    # failed by this stack.
    with ExitStack() as open_runs:
        started: list[_Started] = []
        admitted = 0  # credits expected of the runs started so far
        for pipeline in ordered:
            key = scope_key(pipeline, scope)
            view = client.with_own_stats()
            lifecycle = ExitStack()
            try:
                if budget is not None:
                    cost = run_cost(warehouse, pipeline, scope)
                    guard(warehouse, budget, pipeline.name, cost, key, admitted)
                    admitted += cost.credits
                tracker = lifecycle.enter_context(
                    tracked_run(
                        warehouse, pipeline.name, view.stats, atomic=True, scope=key
                    )
                )
            except CryptoEtlError as exc:
                problem(pipeline, exc)
                continue
            open_runs.enter_context(lifecycle)
            requests = plan_requests(pipeline, scope)
            started.append(_Started(pipeline, requests, view, tracker, lifecycle))
        with InFlight(fetch_started, started, client.max_in_flight) as calls:
            for call in calls:
                run = call.item
                try:
                    with run.lifecycle:  # leaving it ends the tracked_run
                        rows, snapshot_ms = call.result()
                        rejects = _load(
                            run.pipeline, run.tracker, warehouse, rows, snapshot_ms
                        )
                except CryptoEtlError as exc:
                    problem(run.pipeline, exc)
                    continue
                _report(run.pipeline, run.tracker.run, rejects)
                outcomes[run.pipeline.name] = Outcome(run.pipeline, run=run.tracker.run)
    return BatchResult([outcomes[p.name] for p in ordered])
