"""Resumable price-history backfill into ``coincap.asset_history``.

The range is cut into windows that the API serves in one call (the
longest range each interval accepts). Each window is fetched, parsed and
loaded in its own transaction together with its checkpoint row in
``coincap.backfill_windows``, so:

- memory holds one window at a time however long the range;
- an interrupted backfill resumes at the first window not checkpointed;
- a repeated backfill makes no API call for windows already done.

A window that reaches past the API's current time is loaded but not
checkpointed, since more points will arrive there.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Iterable

from tqdm import tqdm

from crypto_etl.coincap import BYTES_PER_CREDIT, CoinCapClient
from crypto_etl.errors import BadPayloadError, BadRequestError, CryptoEtlError
from crypto_etl.loader import Table, load
from crypto_etl.runlog import RunRecord, insert_run, now_utc
from crypto_etl.transform import HistoryPoint, parse_rows
from crypto_etl.warehouse import WarehouseConnection

log = logging.getLogger(__name__)

PIPELINE = "backfill"
HISTORY = Table(
    "coincap", "asset_history", HistoryPoint, ("asset_id", "interval", "time")
)
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


@dataclass(frozen=True)
class Window:
    """One API call's worth of history: ``[start_ms, end_ms)`` for one asset."""

    asset_id: str
    interval: str
    start_ms: int
    end_ms: int

    @property
    def points(self) -> int:
        """How many points the window holds at most."""
        return math.ceil((self.end_ms - self.start_ms) / INTERVAL_MS[self.interval])


def to_ms(when: datetime) -> int:
    """Return an aware datetime as unix milliseconds."""
    return int(when.timestamp() * 1000)


def plan_windows(
    assets: Iterable[str], interval: str, start_ms: int, end_ms: int
) -> list[Window]:
    """Cut ``[start_ms, end_ms)`` into API-sized windows for each asset.

    Windows are aligned to multiples of the window size (from the epoch),
    so checkpoints line up whatever dates are asked for; the loaded range
    covers the request and may reach up to one window beyond each end.

    Raises:
        ValueError: for an unknown interval or an empty range.
    """
    if interval not in INTERVAL_MS:
        raise ValueError(f"interval must be one of {', '.join(INTERVAL_MS)}")
    size = MAX_WINDOW_MS[interval]
    first = start_ms - start_ms % size
    if end_ms <= start_ms:
        raise ValueError("the end must be after the start")
    windows = []
    for asset in assets:
        at = first
        while at < end_ms:
            windows.append(Window(asset, interval, at, at + size))
            at += size
    return windows


@dataclass(frozen=True)
class Plan:
    """What a backfill will do: windows to fetch and those already done."""

    todo: list[Window]
    done: int

    @property
    def estimated_credits(self) -> int:
        """1 credit per call plus 1 per extra 2,500 bytes of expected points."""
        total = 0
        for w in self.todo:
            total += 1 + max(0, w.points * BYTES_PER_POINT - 1) // BYTES_PER_CREDIT
        return total


def make_plan(warehouse: WarehouseConnection, windows: list[Window]) -> Plan:
    """Drop the windows already checkpointed in the warehouse."""
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
    return Plan(todo=todo, done=len(windows) - len(todo))


def top_assets(client: CoinCapClient, n: int) -> list[str]:
    """Return the ids of the ``n`` highest-ranked assets."""
    page = client.get("/assets", {"limit": n, "offset": 0})
    return [row["id"] for row in page.data if isinstance(row, dict) and "id" in row]


def _ms_utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, timezone.utc)


class Progress:
    """A progress bar on a terminal; a log line per window otherwise (cron)."""

    def __init__(self, total: int, enabled: bool | None = None) -> None:
        self.tty = sys.stderr.isatty() if enabled is None else enabled
        self.bar = tqdm(
            total=total, unit="window", disable=not self.tty, file=sys.stderr
        )
        self.total = total
        self.rows = 0
        self.started = time.monotonic()

    def advance(self, window: Window, rows: int) -> None:
        self.rows += rows
        rate = self.rows / max(time.monotonic() - self.started, 1e-9)
        if self.tty:
            self.bar.set_postfix(rows=self.rows, rows_s=f"{rate:,.0f}", refresh=False)
            self.bar.update(1)
            return
        self.bar.n += 1
        eta = (self.total - self.bar.n) * (time.monotonic() - self.started) / self.bar.n
        log.info(
            "backfill %d/%d windows: %s %s from %s, %d rows (%.0f rows/s, ETA %.0f s)",
            self.bar.n,
            self.total,
            window.asset_id,
            window.interval,
            _ms_utc(window.start_ms).isoformat(),
            rows,
            rate,
            eta,
        )

    def close(self) -> None:
        self.bar.close()


def run_backfill(
    client: CoinCapClient,
    warehouse: WarehouseConnection,
    windows: list[Window],
    *,
    progress: Callable[[int], Progress] = Progress,
) -> RunRecord:
    """Fetch and load every window not yet checkpointed.

    Returns:
        The stored run record (rows fetched and inserted, calls, bytes, credits).

    Raises:
        RunSkipped: another backfill holds the lock.
        CryptoEtlError: on an API or warehouse failure; the windows finished
            before it stay loaded and checkpointed, and a ``failed`` run is
            recorded, so running the same command again resumes.
    """
    run = RunRecord(pipeline=PIPELINE, started_at=now_utc())
    before = client.stats.copy()
    with warehouse.pipeline_lock(PIPELINE):
        plan = make_plan(warehouse, windows)
        log.info(
            "backfill: %d windows to fetch, %d already done", len(plan.todo), plan.done
        )
        bar = progress(len(plan.todo))
        try:
            for window in plan.todo:
                fetched, inserted, rejected = _load_window(client, warehouse, window)
                run.rows_fetched += fetched
                run.rows_inserted += inserted
                run.rows_rejected += rejected
                bar.advance(window, fetched)
        except (CryptoEtlError, KeyboardInterrupt) as exc:
            run.status, run.error_message = "failed", str(exc) or "interrupted"
            raise
        finally:
            bar.close()
            run.spent = client.stats.since(before)
            try:
                with warehouse.managed_cursor() as cur:
                    insert_run(cur, run)
            except CryptoEtlError as exc:
                log.error("backfill: could not record the run: %s", exc)
    return run


def _load_window(
    client: CoinCapClient, warehouse: WarehouseConnection, window: Window
) -> tuple[int, int, int]:
    """Fetch and load one window; return rows fetched, inserted, rejected."""
    try:
        page = client.get(
            f"/assets/{window.asset_id}/history",
            {
                "interval": window.interval,
                "start": window.start_ms,
                # CoinCap's end is inclusive; windows are half-open.
                "end": window.end_ms - 1,
            },
        )
    except BadRequestError as exc:
        raise BadRequestError(
            f"{exc} (asset {window.asset_id}, interval {window.interval})"
        ) from exc
    if not isinstance(page.data, list):
        raise BadPayloadError(
            f"GET /assets/{window.asset_id}/history: expected a list in 'data'"
        )
    rows = page.data
    parsed = parse_rows(
        HistoryPoint, rows, {"asset_id": window.asset_id, "interval": window.interval}
    )
    if parsed.rejects:
        log.warning(
            "backfill %s: %d points rejected: %s",
            window.asset_id,
            len(parsed.rejects),
            parsed.rejects[0].reason,
        )
    complete = window.end_ms + INTERVAL_MS[window.interval] <= page.timestamp
    with warehouse.managed_cursor() as cur:
        inserted = load(cur, HISTORY, parsed.records)
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
                    len(parsed.records),
                ),
            )
    return len(rows), inserted, len(parsed.rejects)
