"""Backfill memory benchmark: ``crypto-etl backfill`` of 1M points under 200 MB.

Starts the CoinCap simulator (in this process) and a durable throwaway
PostgreSQL (``LocalWarehouse``, ``fast=False``), then runs the real command,
``crypto-etl backfill --top N --interval m1 --start ... --end ...``, in a
subprocess whose rate limit is high enough never to throttle. Its peak RSS is
the kernel's ``ru_maxrss`` of that subprocess (``os.wait4``), so it measures
the command a user runs and nothing of this harness or the simulator. The
loaded rows and checkpointed windows are counted afterwards.

    python bench/backfill_memory.py                  # 1,008,000 points
    python bench/backfill_memory.py --points 100000  # a quicker look

Exits 1 if the peak RSS is over the limit or a point is missing.
"""

from __future__ import annotations

import argparse
import math
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Sequence

from benchlib import MB, markdown_table, server_info, throwaway_warehouse
from crypto_etl.config import WarehouseSettings
from crypto_etl.simulator import CoinCapSimulator
from crypto_etl.warehouse.connection import WarehouseConnection

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


def crypto_etl_command() -> list[str]:
    """The installed ``crypto-etl`` script of this interpreter's environment."""
    script = Path(sys.executable).parent / "crypto-etl"
    if script.exists():
        return [str(script)]
    found = shutil.which("crypto-etl")
    if found is None:
        raise SystemExit("crypto-etl is not installed: run `make setup` first")
    return [found]


def run_backfill_command(
    settings: WarehouseSettings,
    sim: CoinCapSimulator,
    api_key: str,
    assets: int,
    days: int,
    log_path: Path,
) -> tuple[float, int, int]:
    """Run ``crypto-etl backfill`` once; return seconds, peak RSS bytes, exit code."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WAREHOUSE_")}
    env.update(
        WAREHOUSE_HOST=settings.host,
        WAREHOUSE_PORT=str(settings.port),
        WAREHOUSE_DB=settings.dbname,
        WAREHOUSE_USER=settings.user,
        WAREHOUSE_PASSWORD=settings.password.reveal(),
        COINCAP_API_KEY=api_key,
        COINCAP_BASE_URL=sim.base_url,
        COINCAP_CALLS_PER_MINUTE="1000000",
        CRYPTO_ETL_ENV_FILE=str(log_path.parent / "no-env-file"),
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
    with open(log_path, "wb") as log:
        started = time.perf_counter()
        child = subprocess.Popen(
            command, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )
        # wait4 gives this child's own rusage (ru_maxrss in kB on Linux).
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    return seconds, usage.ru_maxrss * 1024, child.returncode


def loaded(settings: WarehouseSettings) -> tuple[int, int]:
    """Return the points in ``asset_history`` and the checkpointed windows."""
    with WarehouseConnection(settings) as warehouse:
        with warehouse.managed_cursor() as cur:
            cur.execute(
                "SELECT (SELECT count(*) FROM coincap.asset_history),"
                " (SELECT count(*) FROM coincap.backfill_windows)"
            )
            row = cur.fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


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
            seconds, peak, code = run_backfill_command(
                settings, sim, api_key, assets, days, work / "backfill.log"
            )
            if code != 0:
                tail = (work / "backfill.log").read_text(errors="replace")[-3000:]
                raise SystemExit(f"crypto-etl backfill exited {code}:\n{tail}")
            rows, windows = loaded(settings)
            server = server_info(settings)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if rows != expected or windows != days * assets:
        raise SystemExit(
            f"loaded {rows:,} points in {windows} windows, expected {expected:,} "
            f"in {days * assets}"
        )
    return BackfillRun(rows, windows, seconds, peak, server)


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
