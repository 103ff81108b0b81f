"""Resumable price-history backfill into ``coincap.asset_history``.

The range is cut into windows that the API serves in one call (the
longest range each interval accepts). Up to ``client.max_in_flight``
windows are fetched and parsed at once on worker threads, every call
through the client's one rate limiter, while this thread loads each window
as it arrives, in its own transaction together with its checkpoint row in
``coincap.backfill_windows``, on the one connection. So:

- memory holds the windows in flight plus the one being loaded, however
  long the range;
- an interrupted backfill resumes with the windows not checkpointed (the
  order of completion leaves no gap: each window is whole or absent);
- a repeated backfill makes no API call for windows already done;
- after a failed call no new call starts; the calls in flight finish and
  their windows are loaded (their credits are spent) unless the warehouse
  failed, and then the run is recorded as failed.

A window that reaches past the API's current time is loaded but not
checkpointed, since more points will arrive there.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from functools import partial
from datetime import datetime, timedelta
from typing import Callable, Iterable

from crypto_etl.coincap.client import CoinCapClient
from crypto_etl.coincap.credits import credits_for
from crypto_etl.coincap.inflight import InFlight
from crypto_etl.errors import (
    BadRequestError,
    ConfigError,
    CryptoEtlError,
    NotFoundError,
)
from crypto_etl.pipelines.catalog import BACKFILL
from crypto_etl.records.parse import EPOCH, parse_rows
from crypto_etl.records.rows import HistoryPoint, Parsed, RunRecord
from crypto_etl.warehouse.connection import WarehouseConnection
from crypto_etl.warehouse.loader import load
from crypto_etl.warehouse.runlog import tracked_run

log = logging.getLogger(__name__)

MINUTE = 60_000
DAY = 1440 * MINUTE
INTERVAL_MS = {
    "m1": MINUTE,
    "m5": 5 * MINUTE,
    "m15": 15 * MINUTE,
    "m30": 30 * MINUTE,
    "h1": 60 * MINUTE,
    "h2": 120 * MINUTE,
    "h6": 360 * MINUTE,
    "h12": 720 * MINUTE,
    "d1": DAY,
}
# The longest range CoinCap serves in one call for each interval.
MAX_WINDOW_MS = {
    "m1": 1 * DAY,
    "m5": 5 * DAY,
    "m15": 14 * DAY,
    "m30": 30 * DAY,
    "h1": 60 * DAY,
    "h2": 120 * DAY,
    "h6": 365 * DAY,
    "h12": 730 * DAY,
    "d1": 3650 * DAY,
}
# Bytes one history point takes in a response, to estimate credits up front.
BYTES_PER_POINT = 90
# Bytes of one /assets row and of the envelope around the rows: the price
# of the one call that checks the asked-for ids exist.
BYTES_PER_ASSET = 404
ENVELOPE_BYTES = 40


@dataclass(frozen=True)
class Window:
    """One API call's worth of history: ``[start_ms, end_ms)`` for one asset."""

    asset_id: str
    interval: str
    start_ms: int
    end_ms: int

    @property
    def path(self) -> str:
        """The API route this window is fetched from."""
        return BACKFILL.path.format(asset_id=self.asset_id)

    @property
    def params(self) -> dict[str, str | int]:
        """The query of its one API call (CoinCap's ``end`` is inclusive)."""
        return {
            "interval": self.interval,
            "start": self.start_ms,
            "end": self.end_ms - 1,
        }

    @property
    def points(self) -> int:
        """How many points the window holds at most."""
        return math.ceil((self.end_ms - self.start_ms) / INTERVAL_MS[self.interval])


def to_ms(when: datetime) -> int:
    """Return an aware datetime as unix milliseconds (exact: integer arithmetic)."""
    return (when - EPOCH) // timedelta(milliseconds=1)


def plan_windows(
    assets: Iterable[str], interval: str, start_ms: int, end_ms: int
) -> list[Window]:
    """Cut ``[start_ms, end_ms)`` into API-sized windows for each asset.

    Windows follow a grid of the window size (from the epoch), so the
    windows of any two requests either match or do not overlap inside; the
    first and last are cut to the request (whose ends are rounded out to the
    interval's grid), so no call fetches more than was asked for.

    Raises:
        ValueError: for an unknown interval or an empty range.
    """
    _check_request(interval, start_ms, end_ms)
    step, size = INTERVAL_MS[interval], MAX_WINDOW_MS[interval]
    start = start_ms - start_ms % step
    end = -(-end_ms // step) * step
    windows = []
    for asset in assets:
        at = start - start % size
        while at < end:
            windows.append(Window(asset, interval, max(at, start), min(at + size, end)))
            at += size
    return windows


def _check_request(interval: str, start_ms: int, end_ms: int) -> None:
    if interval not in INTERVAL_MS:
        raise ValueError(f"interval must be one of {', '.join(INTERVAL_MS)}")
    if end_ms <= start_ms:
        raise ValueError("the end must be after the start")


def check_request(
    *,
    assets: list[str] | None,
    top: int | None,
    interval: str,
    start: datetime,
    end: datetime | None,
    now: datetime,
) -> datetime:
    """Check a backfill request without any call; return the range's end.

    Args:
        end: the range's end, None for ``now``; a later end is cut to ``now``,
            since no history exists there yet.
        now: the current time, which no date may pass.

    Raises:
        ConfigError: a bad interval, a start in the future, an empty range,
            or no assets asked for.
    """
    if start >= now:
        raise ConfigError(
            f"backfill: --start {start:%Y-%m-%d %H:%M} UTC is in the future"
            f" (now: {now:%Y-%m-%d %H:%M} UTC); no history exists there yet"
        )
    if end is not None and end > now:
        log.info("backfill: --end is in the future; the range ends now")
    stop = now if end is None else min(end, now)
    try:
        _check_request(interval, to_ms(start), to_ms(stop))
    except ValueError as exc:
        raise ConfigError(f"backfill: {exc}") from exc
    if not assets and not (top and top > 0):
        raise ConfigError("backfill: name the assets (--asset) or a positive --top")
    return stop


def request_windows(
    client: CoinCapClient,
    *,
    assets: list[str] | None,
    top: int | None,
    interval: str,
    start: datetime,
    end: datetime,
) -> list[Window]:
    """Return the windows of a request that ``check_request`` accepted.

    Args:
        assets: asset ids; or None with ``top``, the N highest-ranked assets
            (one ``/assets`` call).
        end: the end ``check_request`` returned.

    Raises:
        ApiError: the ``/assets`` call for ``top`` failed.
    """
    chosen = assets or top_assets(client, top or 0)
    return plan_windows(chosen, interval, to_ms(start), to_ms(end))


@dataclass(frozen=True)
class Plan:
    """What a backfill will do: calls to make and windows already done.

    ``verify`` are the asset ids the run checks exist (one ``/assets?ids=``
    call) before fetching any window: ids the user named, not ones CoinCap
    itself listed (``--top``), and only when there is a window to fetch.
    """

    todo: list[Window]
    done: int
    verify: list[str] = field(default_factory=list)

    @property
    def verify_params(self) -> dict[str, str | int]:
        """The query of the id check's call (``limit``: the default page is 100)."""
        return {"ids": ",".join(self.verify), "limit": len(self.verify)}

    @property
    def estimated_credits(self) -> int:
        """The credits of every call, at the expected response sizes."""
        windows = sum(credits_for(w.points * BYTES_PER_POINT) for w in self.todo)
        if not self.verify:
            return windows
        return windows + credits_for(
            ENVELOPE_BYTES + BYTES_PER_ASSET * len(self.verify)
        )


def make_plan(
    warehouse: WarehouseConnection, windows: list[Window], *, verify: bool = False
) -> Plan:
    """Drop the windows already checkpointed in the warehouse.

    Args:
        verify: the assets were named by the user: the plan checks the ids
            of those with a window to fetch.
    """
    with warehouse.managed_cursor() as cur:
        cur.execute(
            'SELECT asset_id, "interval", window_start, window_end'
            " FROM coincap.backfill_windows"
            ' WHERE "interval" = ANY(%s) AND asset_id = ANY(%s)',
            (list({w.interval for w in windows}), list({w.asset_id for w in windows})),
        )
        done = {(a, i, to_ms(s), to_ms(e)) for a, i, s, e in cur.fetchall()}
    todo = [
        w for w in windows if (w.asset_id, w.interval, w.start_ms, w.end_ms) not in done
    ]
    ids = list(dict.fromkeys(w.asset_id for w in todo)) if verify else []
    return Plan(todo=todo, done=len(windows) - len(todo), verify=ids)


def verify_assets(client: CoinCapClient, plan: Plan) -> None:
    """Check, in one call, that CoinCap knows every asset id of the plan.

    Raises:
        NotFoundError: naming every unknown id; nothing was fetched or loaded.
        ApiError: the call failed.
    """
    if not plan.verify:
        return
    page = client.get_list("/assets", plan.verify_params)
    known = {row.get("id") for row in page.data if isinstance(row, dict)}
    unknown = [asset for asset in plan.verify if asset not in known]
    if unknown:
        raise NotFoundError(
            f"backfill: CoinCap has no asset {', '.join(unknown)}; ids are slugs"
            " like bitcoin (see /assets); nothing was fetched"
        )


def top_assets(client: CoinCapClient, n: int) -> list[str]:
    """Return the ids of the ``n`` highest-ranked assets."""
    page = client.get_list("/assets", {"limit": n, "offset": 0})
    return [row["id"] for row in page.data if isinstance(row, dict) and "id" in row]


def _ms_utc(ms: int) -> datetime:
    # Not get_utc_from_unix_time: 0 is a real window start here, not "unknown".
    return EPOCH + timedelta(milliseconds=ms)


# Called after each window with (windows done, windows to do, rows fetched
# by this window, a label naming it): the CLI draws a bar or logs a line.
OnProgress = Callable[[int, int, int, str], None]


def run_backfill(
    client: CoinCapClient,
    warehouse: WarehouseConnection,
    windows: list[Window],
    *,
    verify: bool = False,
    on_progress: OnProgress | None = None,
    scope: str | None = None,
) -> RunRecord:
    """Fetch and load every window not yet checkpointed.

    Keeps ``client.max_in_flight`` calls in flight and loads windows in the
    order they arrive (see the module docstring).
    Check the budget first (``cost.guard`` with ``cost.backfill_cost``).

    Args:
        verify: the asset ids were named by the user: check them first, in
            one call of the run (see ``verify_assets``).
        on_progress: called after each window (see ``OnProgress``).
        scope: what the run asked for (``cost.backfill_scope``), recorded
            with it so that its cost prices the next scheduled run.

    Returns:
        The stored run record (rows fetched and inserted, calls, bytes, credits).

    Raises:
        RunSkipped: another backfill holds the lock.
        CryptoEtlError: on an API or warehouse failure (the first one); the
            windows loaded before it stay loaded and checkpointed, and a
            ``failed`` run is recorded, so running the same command again
            resumes.
    """
    with tracked_run(
        warehouse, BACKFILL.name, client.stats, atomic=False, scope=scope
    ) as tracker:
        run = tracker.run
        plan = make_plan(warehouse, windows, verify=verify)
        verify_assets(client, plan)
        log.info(
            "backfill: %d windows to fetch, %d already done (%d calls in flight)",
            len(plan.todo),
            plan.done,
            client.max_in_flight,
        )
        failure: CryptoEtlError | None = None
        loaded = 0
        fetch = partial(_fetch_window, client)
        with InFlight(fetch, plan.todo, client.max_in_flight) as calls:
            for call in calls:
                try:
                    fetched = call.result()
                except CryptoEtlError as exc:
                    # No new call; those in flight come back and are loaded.
                    calls.stop()
                    if failure is not None:
                        log.error("backfill: also failed: %s", exc)
                    failure = failure or exc
                    continue
                inserted = _load_window(warehouse, call.item, fetched)
                run.rows_fetched += fetched.rows
                run.rows_inserted += inserted
                run.rows_rejected += len(fetched.parsed.rejects)
                loaded += 1
                if on_progress is not None:
                    on_progress(loaded, len(plan.todo), fetched.rows, _label(call.item))
        if failure is not None:
            raise failure
        with warehouse.managed_cursor() as cur:
            tracker.succeed(cur)
    return run


def _label(window: Window) -> str:
    start = _ms_utc(window.start_ms).isoformat()
    return f"{window.asset_id} {window.interval} from {start}"


@dataclass(frozen=True)
class Fetched:
    """One window as the API served it, parsed: what waits to be loaded."""

    rows: int
    parsed: Parsed[HistoryPoint]
    timestamp: int


def _fetch_window(client: CoinCapClient, window: Window) -> Fetched:
    """Fetch and parse one window (on a worker thread: no warehouse here)."""
    try:
        page = client.get_list(window.path, window.params)
    except BadRequestError as exc:
        raise BadRequestError(
            f"{exc} (asset {window.asset_id}, interval {window.interval})"
        ) from exc
    parsed = parse_rows(
        HistoryPoint,
        page.data,
        {"asset_id": window.asset_id, "interval": window.interval},
    )
    if parsed.rejects:
        log.warning(
            "backfill %s: %d points rejected: %s",
            window.asset_id,
            len(parsed.rejects),
            parsed.rejects[0].reason,
        )
    return Fetched(len(page.data), parsed, page.timestamp)


def _load_window(
    warehouse: WarehouseConnection, window: Window, fetched: Fetched
) -> int:
    """Load one fetched window with its checkpoint; return the rows inserted.

    A window that reaches past the API's clock is loaded but not
    checkpointed, since more points will arrive there.
    """
    complete = window.end_ms + INTERVAL_MS[window.interval] <= fetched.timestamp
    with warehouse.managed_cursor() as cur:
        inserted = load(cur, BACKFILL.table, fetched.parsed.records)
        if complete:
            cur.execute(
                "INSERT INTO coincap.backfill_windows"
                ' (asset_id, "interval", window_start, window_end, rows_loaded)'
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (
                    window.asset_id,
                    window.interval,
                    _ms_utc(window.start_ms),
                    _ms_utc(window.end_ms),
                    len(fetched.parsed.records),
                ),
            )
    return inserted
