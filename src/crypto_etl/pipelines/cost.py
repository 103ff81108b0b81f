"""What a run costs in CoinCap credits, and the monthly budget it must fit.

CoinCap charges 1 credit per call plus 1 per extra 2,500 bytes of response
(``coincap.credits``). This module is the one place that knows what a run
will cost:

- **measured**: the most any of the pipeline's last 5 successful runs of the
  same scope spent (``coincap.etl_runs`` records calls, bytes and credits of
  every run, and the scope it asked for);
- **estimated**, before the pipeline has run with that scope: its request
  plan (``plan_requests``) priced at the rows CoinCap is expected to send
  times the bytes a row takes on the wire.

``guard`` is the budget check every run makes before its first API call;
``crypto-etl status`` and ``crypto-etl schedule`` price runs with ``run_cost``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from crypto_etl.coincap.credits import credits_for
from crypto_etl.config import MAX_PAGE_ROWS, FetchScope
from crypto_etl.errors import BudgetExceeded
from crypto_etl.pipelines import backfill
from crypto_etl.pipelines.catalog import BACKFILL, Pipeline
from crypto_etl.records.rows import RunRecord
from crypto_etl.warehouse.connection import WarehouseConnection
from crypto_etl.warehouse.runlog import now_utc, record_skipped
from crypto_etl.warehouse.status import credit_usage

log = logging.getLogger(__name__)

# `{"data":[...],"timestamp":1726084684904}` around the rows.
ENVELOPE_BYTES = 40
# Bytes one row takes in CoinCap's compact JSON (realistic rows: an asset
# with its `tokens`, a market with 16-decimal strings).
ROW_BYTES = {"exchanges": 262, "assets": 404, "markets": 325, "rates": 107}
# Rows the real API is estimated to serve (not counted on the live API).
EXPECTED_ROWS = {"exchanges": 200, "assets": 2000, "markets": 10_000, "rates": 40}
# Rows one /markets filter is expected to match (a large exchange; bitcoin).
EXPECTED_ROWS_PER_FILTER = {"exchangeId": 500, "baseId": 1000}
# How many recent successful runs a measured cost looks at.
MEASURED_RUNS = 5
# A scheduled backfill re-fetches from two days ago (00:00 UTC) to now: at
# most 3 days of points.
SCHEDULED_BACKFILL_DAYS = 3


@dataclass(frozen=True)
class Request:
    """One request of a run: a path and query; ``paged`` ones are read until a
    short page (limit/offset added by the client); ``expected_rows`` prices it."""

    path: str
    params: dict[str, str | int] = field(default_factory=dict)
    paged: bool = False
    expected_rows: int = 0


@dataclass(frozen=True)
class Cost:
    """The credits a run is expected to spend, and where the figure comes from."""

    credits: int
    measured: bool

    def describe(self) -> str:
        """E.g. ``about 21 credits (measured)``."""
        how = "measured" if self.measured else "estimated"
        return f"about {self.credits} credits ({how})"


@dataclass(frozen=True)
class Budget:
    """The monthly credit budget a run must fit; ``ignore`` overrides it once."""

    monthly_credits: int
    ignore: bool = False


def plan_requests(pipeline: Pipeline, scope: FetchScope) -> list[Request]:
    """Return the requests a snapshot run of ``pipeline`` makes for ``scope``.

    Exchanges and rates are always complete; assets are the top N by rank
    (one call) or all pages; markets are one request per filter id (or the
    whole list), one page of ``markets_limit`` rows each or every page.
    """
    name = pipeline.name
    if name == "assets" and scope.assets_top is not None:
        top = scope.assets_top
        return [Request(pipeline.path, {"limit": top, "offset": 0}, False, top)]
    if name != "markets":
        return [Request(pipeline.path, {}, pipeline.paged, EXPECTED_ROWS[name])]
    filters: list[dict[str, str | int]] = [{}]
    expected = EXPECTED_ROWS[name]
    if scope.markets_filter is not None:
        filters = [{scope.markets_filter: i} for i in scope.markets_ids]
        expected = EXPECTED_ROWS_PER_FILTER[scope.markets_filter]
    limit = scope.markets_limit
    if limit is None:
        return [Request(pipeline.path, f, True, expected) for f in filters]
    page = {"limit": limit, "offset": 0}
    return [
        Request(pipeline.path, {**f, **page}, False, min(limit, expected))
        for f in filters
    ]


def scope_key(pipeline: Pipeline, scope: FetchScope) -> str:
    """The scope a run of ``pipeline`` records, e.g. ``top=100``."""
    if pipeline.name == "assets":
        return "all" if scope.assets_top is None else f"top={scope.assets_top}"
    if pipeline.name != "markets":
        return "all"
    what = "all"
    if scope.markets_filter is not None:
        what = f"{scope.markets_filter}={','.join(scope.markets_ids)}"
    limit = scope.markets_limit
    return what if limit is None else f"{what} limit={limit}"


def estimate(pipeline: Pipeline, requests: list[Request]) -> int:
    """Price ``requests`` at the expected rows and ``ROW_BYTES`` per row.

    A paged request reads full pages of 2,000 rows and then a short (maybe
    empty) page, each one call.
    """
    width = ROW_BYTES[pipeline.name]
    total = 0
    for request in requests:
        rows = request.expected_rows
        if request.paged:
            full, rest = divmod(rows, MAX_PAGE_ROWS)
            total += full * credits_for(MAX_PAGE_ROWS * width + ENVELOPE_BYTES)
            rows = rest
        total += credits_for(rows * width + ENVELOPE_BYTES)
    return total


def measured_credits(
    warehouse: WarehouseConnection, pipeline: str, scope: str
) -> int | None:
    """The most one of the last successful runs of that scope spent, or None."""
    with warehouse.managed_cursor() as cur:
        cur.execute(
            "SELECT max(credits) FROM (SELECT credits FROM coincap.etl_runs"
            " WHERE pipeline = %s AND scope = %s AND status = 'succeeded'"
            " ORDER BY started_at DESC LIMIT %s) recent",
            (pipeline, scope, MEASURED_RUNS),
        )
        row = cur.fetchone()
    return None if row is None or row[0] is None else int(row[0])


def run_cost(
    warehouse: WarehouseConnection | None, pipeline: Pipeline, scope: FetchScope
) -> Cost:
    """What a snapshot run of ``pipeline`` costs: measured, else estimated.

    With ``warehouse`` None (pricing offline) it is always the estimate.
    """
    if warehouse is not None:
        spent = measured_credits(warehouse, pipeline.name, scope_key(pipeline, scope))
        if spent is not None:
            return Cost(spent, measured=True)
    return Cost(estimate(pipeline, plan_requests(pipeline, scope)), measured=False)


def backfill_scope(assets: list[str] | None, top: int | None, interval: str) -> str:
    """The scope a backfill records, e.g. ``top=10 interval=h1``."""
    chosen = f"assets={','.join(assets)}" if assets else f"top={top}"
    return f"{chosen} interval={interval}"


def backfill_cost(
    warehouse: WarehouseConnection | None,
    *,
    assets: list[str] | None,
    top: int | None,
    interval: str,
    start_ms: int,
    end_ms: int,
) -> Cost:
    """Price a backfill request up front, without an API call.

    Every window of the plan at its full number of points, less the windows
    already checkpointed (known only for named assets: ``--top`` needs the
    API to name them, so all its windows count), plus the one ``/assets``
    call that resolves or checks the assets.

    Raises:
        ValueError: an unknown interval or an empty range.
    """
    names = assets or [f"#{rank}" for rank in range(1, (top or 0) + 1)]
    windows = backfill.plan_windows(names, interval, start_ms, end_ms)
    plan = backfill.Plan(todo=windows, done=0)
    if assets and warehouse is not None:
        plan = backfill.make_plan(warehouse, windows)
    lookup = credits_for(len(names) * ROW_BYTES["assets"] + ENVELOPE_BYTES)
    return Cost(plan.estimated_credits + lookup, measured=False)


def scheduled_backfill_cost(
    warehouse: WarehouseConnection | None,
    assets: list[str] | None,
    top: int | None,
    interval: str,
) -> Cost:
    """What one scheduled (daily, from two days ago) backfill costs.

    Measured from recent successful runs of the same assets and interval,
    else estimated for ``SCHEDULED_BACKFILL_DAYS`` of points, cut into the
    most windows such a range can take.
    """
    if warehouse is not None:
        spent = measured_credits(
            warehouse, BACKFILL.name, backfill_scope(assets, top, interval)
        )
        if spent is not None:
            return Cost(spent, measured=True)
    span = SCHEDULED_BACKFILL_DAYS * backfill.DAY
    # Ending one interval past a window boundary splits the range in two.
    end = backfill.MAX_WINDOW_MS[interval] * 1000 + backfill.INTERVAL_MS[interval]
    return backfill_cost(
        None, assets=assets, top=top, interval=interval, start_ms=end - span, end_ms=end
    )


def guard(
    warehouse: WarehouseConnection,
    budget: Budget,
    pipeline: str,
    cost: Cost,
    scope: str | None = None,
    pending: int = 0,
) -> None:
    """Refuse a run that would take this month's spend past the budget.

    Call it before the run's first API call. Month-to-date spend is the sum
    of the credits recorded this calendar month (UTC), plus ``pending``: the
    credits expected of runs already started and not yet recorded (the
    other pipelines of a concurrent ``run all``).

    Raises:
        BudgetExceeded: the spend plus ``cost`` passes the budget and
            ``budget.ignore`` is not set; a ``skipped`` run naming the budget
            is recorded, and no API call was made.
    """
    spent = credit_usage(warehouse, budget.monthly_credits).month + pending
    left = budget.monthly_credits - spent
    if cost.credits <= left:
        return
    message = (
        f"{pipeline}: the run would cost {cost.describe()} and "
        f"{max(left, 0)} of the {budget.monthly_credits} monthly credits "
        "(COINCAP_MONTHLY_CREDITS) are left this month"
    )
    if budget.ignore:
        log.warning("%s; running anyway (--ignore-budget)", message)
        return
    reason = f"{message}; no API call made (--ignore-budget runs it anyway)"
    run = RunRecord(pipeline=pipeline, started_at=now_utc(), scope=scope)
    record_skipped(warehouse, run, reason)
    raise BudgetExceeded(reason)
