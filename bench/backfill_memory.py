"""Backfill memory benchmark: ``crypto-etl backfill`` of 1M points under 200 MB.

Starts the CoinCap simulator (in this process) and a durable throwaway
PostgreSQL (``LocalWarehouse``, ``fast=False``), then runs the real command,
``crypto-etl backfill --top N --interval m1 --start ... --end ...``, in a
subprocess whose rate limit is high enough never to throttle. Its peak RSS is
the kernel's ``ru_maxrss`` of that subprocess (``benchlib.run_measured``), so
it measures the command a user runs and nothing of this harness or the
simulator. The
loaded rows and checkpointed windows are counted afterwards.

    python bench/backfill_memory.py                  # 1,008,000 points
    python bench/backfill_memory.py --points 100000  # a quicker look

Exits 1 if the peak RSS is over the limit or a point is missing.
"""

from __future__ import annotations

import argparse
import math
import secrets
import shutil
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Sequence

from benchlib import (
    MB,
    Measured,
    command_env,
    crypto_etl_command,
    loaded,
    markdown_table,
    run_measured,
    server_info,
    throwaway_warehouse,
)
from crypto_etl.config import WarehouseSettings
from crypto_etl.simulator import CoinCapSimulator

POINTS_PER_DAY = 1440  # m1
LIMIT_MB = 200
# The simulator's clock starts on 2024-09-11; end the range a day before it so
# that every window is complete and checkpointed.
END = datetime(2024, 9, 10, tzinfo=timezone.utc)


@dataclass(frozen=True)
class BackfillRun:
    """What one backfill subprocess did and cost."""

    points: int
    windows: int
    seconds: float
    peak_rss: int
    server: str

    @property
    def rate(self) -> float:
        """Points per second, end to end (HTTP, parsing and loading)."""
        return self.points / self.seconds


def run_backfill_command(
    settings: WarehouseSettings,
    sim: CoinCapSimulator,
    api_key: str,
    assets: int,
    days: int,
    log_path: Path,
) -> Measured:
    """Run ``crypto-etl backfill`` once, unthrottled, and measure it."""
    env = command_env(
        settings, sim.base_url, api_key, COINCAP_CALLS_PER_MINUTE="1000000"
    )
    start = END - timedelta(days=days)
    command = crypto_etl_command() + [
        "backfill",
        "--top",
        str(assets),
        "--interval",
        "m1",
        "--start",
        start.date().isoformat(),
        "--end",
        END.date().isoformat(),
    ]
    return run_measured(command, env, log_path)


def measure(points: int, assets: int) -> BackfillRun:
    """Backfill at least ``points`` m1 points of ``assets`` assets; check them.

    Raises:
        SystemExit: the command failed (its log is printed) or rows are missing.
    """
    days = math.ceil(points / (assets * POINTS_PER_DAY))
    expected = days * assets * POINTS_PER_DAY
    api_key = secrets.token_urlsafe(16)
    work = Path(tempfile.mkdtemp(prefix="crypto-etl-bench-backfill-"))
    try:
        with (
            CoinCapSimulator(api_key=api_key) as sim,
            throwaway_warehouse() as settings,
        ):
            print(
                f"backfill of {expected:,} points ({assets} assets x {days} days "
                "of m1) ...",
                file=sys.stderr,
            )
            run = run_backfill_command(
                settings, sim, api_key, assets, days, work / "backfill.log"
            )
            rows, windows = loaded(settings)
            server = server_info(settings)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if rows != expected or windows != days * assets:
        raise SystemExit(
            f"loaded {rows:,} points in {windows} windows, expected {expected:,} "
            f"in {days * assets}"
        )
    return BackfillRun(rows, windows, run.seconds, run.peak_rss, server)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Read the command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--points", type=int, default=1_000_000, help="at least this many points"
    )
    parser.add_argument("--assets", type=int, default=10, help="the top N assets")
    args = parser.parse_args(argv)
    if args.points < 1 or args.assets < 1:
        parser.error("--points and --assets must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the backfill, print a markdown table, exit 1 over the memory limit."""
    args = parse_args(argv)
    run = measure(args.points, args.assets)
    within = run.peak_rss <= LIMIT_MB * MB
    print(
        "\n`crypto-etl backfill --interval m1`, simulator over HTTP, "
        f"{run.server}; peak RSS is the command's ru_maxrss.\n"
    )
    print(
        markdown_table(
            ["points", "windows", "seconds", "points/s", "peak RSS (MB)", "limit"],
            [
                [
                    f"{run.points:,}",
                    f"{run.windows:,}",
                    f"{run.seconds:.1f}",
                    f"{run.rate:,.0f}",
                    f"{run.peak_rss / MB:.1f}",
                    f"{LIMIT_MB} MB: {'met' if within else 'MISSED'}",
                ]
            ],
        )
    )
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main())
