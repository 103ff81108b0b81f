"""Backfill throughput benchmark: calls a minute against the API's rate limit.

For each network latency (the simulator's ``latency_ms``, added to every
answer), runs the real ``crypto-etl backfill`` of one-call m1 windows (10
assets, one window a day each) at ``COINCAP_CALLS_PER_MINUTE=600``, with
``COINCAP_MAX_IN_FLIGHT=1`` and with the default, in a subprocess (peak RSS
is its own ``ru_maxrss``). Rates are counted at the simulator, from each
request's arrival time: calls a minute from the first call to the last, and
the most calls in any 60 s span. Every run's points and checkpoints are
counted afterwards (each point exactly once).

Then, with no latency and no limit, the same calls by a minimal
requests+COPY script (``bench/minimal_backfill.py``) and by the backfill,
for what the backfill's own work costs.

    python bench/throughput_bench.py                       # the README table
    python bench/throughput_bench.py --latencies 250 --windows 600

One in flight is latency-bound, so its rows make a quarter of the calls.
Exits 1 when a target is missed: at 250 ms and the default concurrency at
least 90% of the limit, no 60 s span over the limit plus its burst, peak
RSS under 200 MB, the default within 1.5x of the minimal script, every
point once.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Sequence

import requests
from benchlib import (
    MB,
    command_env,
    crypto_etl_command,
    loaded,
    markdown_table,
    run_measured,
    server_info,
    throwaway_warehouse,
)

from crypto_etl.coincap.ratelimit import RateLimiter
from crypto_etl.config import DEFAULT_MAX_IN_FLIGHT, WarehouseSettings
from crypto_etl.simulator import CoinCapSimulator
from crypto_etl.warehouse.connection import WarehouseConnection

LIMIT = 600  # calls a minute, CoinCap's
BURST = RateLimiter().burst
ASSETS = 10
POINTS_PER_WINDOW = 1440  # one m1 day
RSS_LIMIT_MB = 200
TARGET_SHARE = 0.90
OVERHEAD_LIMIT = 1.5
# The simulator's clock starts on 2024-09-11: every window ends before it.
END = datetime(2024, 9, 10, tzinfo=timezone.utc)
MINIMAL = Path(__file__).with_name("minimal_backfill.py")


@dataclass(frozen=True)
class Result:
    """One measured run."""

    label: str
    latency_ms: int
    in_flight: int
    calls: int
    seconds: float
    calls_per_minute: float
    busiest_minute: int
    peak_rss: int
    cpu_seconds: float
    points_ok: bool


def busiest_span(arrivals: list[float], span: float = 60.0) -> int:
    """The most arrivals in any ``span`` seconds."""
    most, first = 0, 0
    for last, at in enumerate(arrivals):
        while at - arrivals[first] >= span:
            first += 1
        most = max(most, last - first + 1)
    return most


class Bench:
    """A warehouse, an API key and the asset ids, shared by every run."""

    def __init__(self, settings: WarehouseSettings, work: Path) -> None:
        self.settings = settings
        self.work = work
        self.api_key = secrets.token_urlsafe(16)
        self.assets: list[str] = []

    def reset(self) -> None:
        """Empty what a run loads."""
        with WarehouseConnection(self.settings) as warehouse:
            with warehouse.managed_cursor() as cur:
                cur.execute("TRUNCATE coincap.asset_history, coincap.backfill_windows")

    def run(
        self,
        sim: CoinCapSimulator,
        label: str,
        latency_ms: int,
        in_flight: int,
        windows: int,
        limit: int | None,
    ) -> Result:
        """Run one backfill (or the minimal script: ``in_flight`` 0); check it."""
        if not self.assets:
            answer = requests.get(
                sim.base_url + "/assets",
                params={"limit": ASSETS},
                headers={"Authorization": f"Bearer {self.api_key}"},
                timeout=30,
            )
            self.assets = [row["id"] for row in answer.json()["data"]]
        self.reset()
        sim.reset_stats()
        days = max(1, windows // ASSETS)
        start = END - timedelta(days=days)
        extra = {"COINCAP_CALLS_PER_MINUTE": str(limit or 1_000_000)}
        if in_flight:
            extra["COINCAP_MAX_IN_FLIGHT"] = str(in_flight)
            command = crypto_etl_command() + ["backfill", "--asset"]
            command += [",".join(self.assets), "--interval", "m1"]
            command += ["--start", start.isoformat(), "--end", END.isoformat()]
        else:
            command = [sys.executable, str(MINIMAL), ",".join(self.assets)]
            command += [start.date().isoformat(), str(days)]
        env = command_env(self.settings, sim.base_url, self.api_key, **extra)
        print(f"{label}: {days * ASSETS} calls ...", file=sys.stderr, flush=True)
        measured = run_measured(command, env, self.work / "run.log")
        arrivals = sorted(
            r.received_at for r in sim.request_log if r.path.endswith("/history")
        )
        span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else 0.0
        points, checkpoints = loaded(self.settings)
        calls = days * ASSETS
        ok = points == calls * POINTS_PER_WINDOW and len(arrivals) == calls
        if in_flight:
            ok = ok and checkpoints == calls
        return Result(
            label,
            latency_ms,
            in_flight,
            len(arrivals),
            measured.seconds,
            (len(arrivals) - 1) / span * 60 if span else 0.0,
            busiest_span(arrivals),
            measured.peak_rss,
            measured.cpu_seconds,
            ok,
        )


def throughput(bench: Bench, latencies: Sequence[int], windows: int) -> list[Result]:
    """Every latency, at one call in flight and at the default."""
    results = []
    for latency in latencies:
        with CoinCapSimulator(api_key=bench.api_key, latency_ms=latency) as sim:
            for in_flight in (1, DEFAULT_MAX_IN_FLIGHT):
                calls = windows if in_flight > 1 else max(ASSETS, windows // 4)
                label = f"{latency} ms, {in_flight} in flight"
                results.append(bench.run(sim, label, latency, in_flight, calls, LIMIT))
    return results


def overhead(bench: Bench, windows: int) -> list[Result]:
    """No latency, no limit: the minimal script, then the backfill."""
    with CoinCapSimulator(api_key=bench.api_key) as sim:
        return [
            bench.run(sim, "minimal requests+COPY script", 0, 0, windows, None),
            bench.run(sim, "crypto-etl backfill, 1 in flight", 0, 1, windows, None),
            bench.run(
                sim,
                f"crypto-etl backfill, {DEFAULT_MAX_IN_FLIGHT} in flight",
                0,
                DEFAULT_MAX_IN_FLIGHT,
                windows,
                None,
            ),
        ]


def report(rows: list[Result], costs: list[Result]) -> tuple[str, list[str]]:
    """The two markdown tables, and the targets missed."""
    missed = []
    table = []
    for r in rows:
        share = r.calls_per_minute / LIMIT
        if r.busiest_minute > LIMIT + BURST:
            missed.append(f"{r.label}: {r.busiest_minute} calls in 60 s")
        if r.in_flight > 1 and r.latency_ms == 250 and share < TARGET_SHARE:
            missed.append(f"{r.label}: {share:.0%} of the limit")
        if r.in_flight > 1 and r.peak_rss > RSS_LIMIT_MB * MB:
            missed.append(f"{r.label}: peak RSS {r.peak_rss / MB:.0f} MB")
        if not r.points_ok:
            missed.append(f"{r.label}: points missing or repeated")
        table.append(
            [
                str(r.latency_ms),
                str(r.in_flight),
                f"{r.calls:,}",
                f"{r.seconds:.1f}",
                f"{r.calls_per_minute:.0f}",
                f"{share:.0%}",
                str(r.busiest_minute),
                f"{r.peak_rss / MB:.1f}",
                f"{r.cpu_seconds / r.calls * 1000:.0f}",
                "exactly once" if r.points_ok else "WRONG",
            ]
        )
    first = markdown_table(
        [
            "latency (ms)",
            "in flight",
            "calls",
            "wall (s)",
            "calls/min",
            f"of {LIMIT}/min",
            "most in 60 s",
            "peak RSS (MB)",
            "CPU ms/call",
            "points",
        ],
        table,
    )
    minimal = costs[0].seconds
    lines = []
    for r in costs:
        ratio = r.seconds / minimal
        if r.in_flight == DEFAULT_MAX_IN_FLIGHT and ratio > OVERHEAD_LIMIT:
            missed.append(f"{r.label}: {ratio:.2f}x the minimal script")
        if not r.points_ok:
            missed.append(f"{r.label}: points missing or repeated")
        lines.append(
            [
                r.label,
                f"{r.calls:,}",
                f"{r.seconds:.1f}",
                f"{r.calls_per_minute:.0f}",
                f"{ratio:.2f}×",
                f"{r.peak_rss / MB:.1f}",
                f"{r.cpu_seconds / r.calls * 1000:.0f}",
            ]
        )
    second = markdown_table(
        [
            "no latency, no limit",
            "calls",
            "wall (s)",
            "calls/min",
            "vs minimal",
            "peak RSS (MB)",
            "CPU ms/call",
        ],
        lines,
    )
    return first + "\n\n" + second, missed


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Read the command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--latencies",
        type=lambda text: [int(x) for x in text.split(",")],
        default=[0, 100, 250, 500],
        help="per-call latencies in ms, comma-separated (default 0,100,250,500)",
    )
    parser.add_argument(
        "--windows", type=int, default=600, help="one-call windows a run (600)"
    )
    args = parser.parse_args(argv)
    if args.windows < ASSETS or any(x < 0 for x in args.latencies):
        parser.error(f"--windows must be at least {ASSETS}, latencies >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run every measurement, print the tables, exit 1 if a target is missed."""
    args = parse_args(argv)
    load_before = os.getloadavg()[1]
    work = Path(tempfile.mkdtemp(prefix="crypto-etl-bench-throughput-"))
    try:
        with throwaway_warehouse() as settings:
            bench = Bench(settings, work)
            rows = throughput(bench, args.latencies, args.windows)
            costs = overhead(bench, args.windows)
            server = server_info(settings)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    tables, missed = report(rows, costs)
    print(
        f"\n`crypto-etl backfill --interval m1` of one-call windows, simulator "
        f"over HTTP with added latency, limit {LIMIT}/min (burst {BURST}), "
        f"{server}; rates counted at the simulator; 5-minute load average "
        f"{load_before:.1f} before, {os.getloadavg()[1]:.1f} after, on "
        f"{os.cpu_count()} CPUs.\n"
    )
    print(tables)
    for line in missed:
        print(f"MISSED: {line}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
