"""Load benchmark (``make bench``): the project's loader against its alternatives.

One durable PostgreSQL (``LocalWarehouse``, ``fast=False``), one keyed table
(``coincap.asset_history`` by default), truncated and checkpointed before
every measurement. Each size is loaded by each method:

- ``copy``: plain ``COPY`` into the keyed table, the limit. Rows are
  formatted by the project's ``copy_lines`` and streamed by the loader's own
  reader, so the Python formatting cost is the same as the loader's;
- ``loader``: ``crypto_etl.warehouse.loader.load`` in one transaction (COPY into a temp
  staging table, then ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``);
- ``execute_batch``: the original design, ``psycopg2.extras.execute_batch``
  of a plain ``INSERT`` per row with the default ``page_size`` 100, on an
  autocommit connection (so every page of 100 rows is its own transaction);
- ``execute_values``: ``psycopg2.extras.execute_values`` of ``INSERT ...
  ON CONFLICT DO NOTHING`` with ``page_size`` 1000, in one transaction.

Every measurement runs in a fresh process (``multiprocessing`` spawn) that
first builds the records (deterministic, the project's record dataclasses,
not timed), then times the load alone, commit included; each cell shows the
fastest of ``--repeat`` runs (default 3), every one of them checked by
counting the rows. Memory is that
process's peak RSS during the load minus its RSS just before it (the records
are already in memory then), read from the kernel's VmHWM after resetting it.
The table goes to stdout as markdown; progress goes to stderr.

    python bench/load_bench.py                 # 100k and 1M rows, every method
    python bench/load_bench.py --quick         # 20k and 100k rows
    python bench/load_bench.py --sizes 50000 --methods copy,loader --repeat 1
    python bench/load_bench.py --methods copy,loader \
        --table history,history-unpartitioned   # monthly partitions vs one table

``coincap.asset_history`` is range-partitioned by month (migration 0006);
``history-unpartitioned`` is a plain table with the same columns and primary
key, made by the benchmark, to show what the partitioning costs a load.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import multiprocessing
import os
import random
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from multiprocessing.queues import Queue
from operator import attrgetter
from typing import Any, Callable, Iterator, Sequence

from psycopg2 import sql
from psycopg2.extras import execute_batch, execute_values

from benchlib import (
    MB,
    markdown_table,
    peak_rss_bytes,
    reset_peak_rss,
    rss_bytes,
    server_info,
    throwaway_warehouse,
)
from crypto_etl.pipelines.catalog import BACKFILL
from crypto_etl.config import WarehouseSettings
from crypto_etl.exchange_data_etl import EXCHANGES
from crypto_etl.warehouse.loader import Table, _LineReader, copy_lines, load
from crypto_etl.records.rows import Exchange, HistoryPoint
from crypto_etl.warehouse.connection import WarehouseConnection
from crypto_etl.warehouse.partitions import ensure_partitions

START = datetime(2024, 1, 1, tzinfo=timezone.utc)
POINTS_PER_ASSET = 14_400  # ten days of m1 points, as a backfill loads them
EXCHANGES_PER_TICK = 200
# Every generated row's time lies within these months (ten days from START).
DATA_MONTHS = [START, START + timedelta(minutes=POINTS_PER_ASSET)]
DEFAULT_SIZES = (100_000, 1_000_000)
QUICK_SIZES = (20_000, 100_000)


def history_points(n: int) -> Iterator[HistoryPoint]:
    """Yield ``n`` distinct m1 price points: asset by asset, a random walk each."""
    rng = random.Random(n)
    price = 1.0
    for k in range(n):
        asset, minute = divmod(k, POINTS_PER_ASSET)
        if minute == 0:
            price = 10.0 ** rng.uniform(-2, 4)
        price *= math.exp(rng.gauss(0.0, 0.001))
        yield HistoryPoint(
            asset_id=f"asset-{asset:04d}",
            interval="m1",
            time=START + timedelta(minutes=minute),
            price_usd=Decimal(f"{price:.16f}"),
        )


def exchanges(n: int) -> Iterator[Exchange]:
    """Yield ``n`` distinct exchange rows: 200 exchanges reporting every minute."""
    rng = random.Random(n)
    for k in range(n):
        exchange, tick = k % EXCHANGES_PER_TICK, k // EXCHANGES_PER_TICK
        updated = int(START.timestamp() * 1000) + tick * 60_000
        yield Exchange(
            exchange_id=f"exchange-{exchange:03d}",
            name=f"Exchange {exchange}",
            rank=exchange + 1,
            percent_total_volume=Decimal(f"{rng.uniform(0, 5):.16f}"),
            volume_usd=Decimal(f"{rng.uniform(1e3, 1e10):.16f}"),
            trading_pairs=rng.randrange(1, 2000),
            socket=rng.random() < 0.5,
            exchange_url=f"https://exchange-{exchange:03d}.example",
            updated_unix_ms=updated,
            updated_at=START + timedelta(minutes=tick),
        )


UNPARTITIONED_HISTORY = dataclasses.replace(
    BACKFILL.table, name="asset_history_unpartitioned", partition_column=None
)
TABLES: dict[str, tuple[Table, Callable[[int], Iterator[Any]]]] = {
    "history": (BACKFILL.table, history_points),
    "history-unpartitioned": (UNPARTITIONED_HISTORY, history_points),
    "exchanges": (EXCHANGES.table, exchanges),
}
# Tables that only the benchmark has, made from a migrated one.
MADE_HERE = {
    "history-unpartitioned": "CREATE TABLE IF NOT EXISTS"
    " coincap.asset_history_unpartitioned (LIKE coincap.asset_history"
    " INCLUDING DEFAULTS INCLUDING INDEXES)",
}


def _columns(table: Table) -> sql.Composed:
    return sql.SQL(", ").join(map(sql.Identifier, table.columns))


def plain_copy(warehouse: WarehouseConnection, table: Table, rows: list[Any]) -> None:
    """COPY straight into the keyed table, one transaction: the limit."""
    copy = sql.SQL("COPY {} ({}) FROM STDIN").format(table.qualified, _columns(table))
    with warehouse.managed_cursor() as cur:
        cur.copy_expert(copy, _LineReader(copy_lines(rows, table.columns)))


def project_loader(
    warehouse: WarehouseConnection, table: Table, rows: list[Any]
) -> None:
    """The project's loader, in one transaction."""
    with warehouse.managed_cursor() as cur:
        load(cur, table, rows)


def original_execute_batch(
    warehouse: WarehouseConnection, table: Table, rows: list[Any]
) -> None:
    """The original design: execute_batch of INSERTs, page_size 100, autocommit."""
    conn = warehouse.connection
    insert = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        table.qualified,
        _columns(table),
        sql.SQL(", ").join(sql.Placeholder() * len(table.columns)),
    )
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            execute_batch(
                cur,
                insert.as_string(conn),
                map(attrgetter(*table.columns), rows),
                page_size=100,
            )
    finally:
        conn.autocommit = False


def execute_values_on_conflict(
    warehouse: WarehouseConnection, table: Table, rows: list[Any]
) -> None:
    """execute_values of INSERT ... ON CONFLICT DO NOTHING, page_size 1000."""
    insert = sql.SQL("INSERT INTO {} ({}) VALUES %s ON CONFLICT ({}) DO NOTHING")
    with warehouse.managed_cursor() as cur:
        query = insert.format(
            table.qualified,
            _columns(table),
            sql.SQL(", ").join(map(sql.Identifier, table.key)),
        )
        execute_values(
            cur,
            query.as_string(cur),
            map(attrgetter(*table.columns), rows),
            page_size=1000,
        )


Method = Callable[[WarehouseConnection, Table, list[Any]], None]
METHODS: dict[str, Method] = {
    "copy": plain_copy,
    "loader": project_loader,
    "execute_batch": original_execute_batch,
    "execute_values": execute_values_on_conflict,
}
DEFAULT_METHODS = ("copy", "loader", "execute_batch", "execute_values")
# Plain COPY and plain INSERT fail on a key already loaded.
RERUNNABLE = ("loader", "execute_values")


@dataclass(frozen=True)
class Measurement:
    """One timed load: which method, how many rows, seconds, RSS growth."""

    method: str
    rows: int
    seconds: float
    rss_growth: int
    table: str = "history"

    @property
    def rate(self) -> float:
        """Rows per second."""
        return self.rows / self.seconds


def measure_in_child(
    settings: WarehouseSettings,
    table_name: str,
    method: str,
    size: int,
    out: Queue[Measurement],
) -> None:
    """Build ``size`` records, time one load by ``method``; put the measurement."""
    table, make = TABLES[table_name]
    rows = list(make(size))
    with WarehouseConnection(settings, application_name="crypto-etl-bench") as wh:
        wh.connection  # connect before the clock starts
        before = rss_bytes()
        reset_peak_rss()
        started = time.perf_counter()
        METHODS[method](wh, table, rows)
        seconds = time.perf_counter() - started
        growth = max(0, peak_rss_bytes() - before)
    out.put(Measurement(method, size, seconds, growth, table_name))


def prepare(settings: WarehouseSettings, table_name: str, prefill: int) -> None:
    """Empty the table, load ``prefill`` rows (for a rerun), flush dirty pages."""
    table, make = TABLES[table_name]
    with WarehouseConnection(settings) as warehouse:
        with warehouse.managed_cursor() as cur:
            if table_name in MADE_HERE:
                cur.execute(MADE_HERE[table_name])
            cur.execute(sql.SQL("TRUNCATE {}").format(table.qualified))
            if table.partition_column is not None:
                # As in production, where prune creates the months ahead:
                # every method, plain COPY too, finds its partition there.
                ensure_partitions(cur, table, DATA_MONTHS)
            # An autovacuum woken by the previous load must not run during
            # this one. Storage settings live on the leaf tables (partitions).
            cur.execute(
                "SELECT relid::regclass::text FROM pg_partition_tree(%s::regclass)"
                " WHERE isleaf",
                (f"{table.schema}.{table.name}",),
            )
            for (leaf,) in cur.fetchall():
                cur.execute(
                    sql.SQL("ALTER TABLE {} SET (autovacuum_enabled = false)").format(
                        sql.SQL(leaf)
                    )
                )
        if prefill:
            plain_copy(warehouse, table, list(make(prefill)))
        warehouse.connection.autocommit = True
        with warehouse.connection.cursor() as cur:
            if prefill:
                # As a table a rerun meets in real life: vacuumed, with statistics.
                cur.execute(sql.SQL("VACUUM ANALYZE {}").format(table.qualified))
            cur.execute("CHECKPOINT")


def count_rows(settings: WarehouseSettings, table: Table) -> int:
    """Return how many rows ``table`` holds."""
    with WarehouseConnection(settings) as warehouse:
        with warehouse.managed_cursor() as cur:
            cur.execute(sql.SQL("SELECT count(*) FROM {}").format(table.qualified))
            row = cur.fetchone()
    return int(row[0]) if row else 0


def run_one(
    settings: WarehouseSettings,
    table_name: str,
    method: str,
    size: int,
    rerun: bool = False,
) -> Measurement:
    """Measure one load in a fresh process and check every row arrived.

    With ``rerun`` the table already holds the very rows being loaded.

    Raises:
        RuntimeError: the child failed, or the table does not hold ``size`` rows.
    """
    table = TABLES[table_name][0]
    prepare(settings, table_name, size if rerun else 0)
    ctx = multiprocessing.get_context("spawn")
    out: Queue[Measurement] = ctx.Queue()
    child = ctx.Process(
        target=measure_in_child, args=(settings, table_name, method, size, out)
    )
    child.start()
    child.join()
    if child.exitcode != 0:
        raise RuntimeError(f"{method} at {size} rows failed (exit {child.exitcode})")
    result: Measurement = out.get(timeout=10)
    loaded = count_rows(settings, table)
    if loaded != size:
        raise RuntimeError(f"{method} loaded {loaded} rows, expected {size}")
    return result


def report(results: Sequence[Measurement]) -> str:
    """The markdown table: rate, share of the COPY limit, gain over the original."""
    by_key = {(r.table, r.method, r.rows): r for r in results}
    several = len({r.table for r in results}) > 1
    lines = []
    for r in results:
        limit = by_key.get((r.table, "copy", r.rows))
        original = by_key.get((r.table, "execute_batch", r.rows))
        lines.append(
            [
                f"{r.method} ({r.table})" if several else r.method,
                f"{r.rows:,}",
                f"{r.seconds:.2f}",
                f"{r.rate:,.0f}",
                f"{r.rate / limit.rate:.0%}" if limit else "n/a",
                f"{r.rate / original.rate:.1f}×" if original else "n/a",
                f"{r.rss_growth / MB:.1f}",
            ]
        )
    headers = [
        "method",
        "rows",
        "seconds",
        "rows/s",
        "of COPY limit",
        "vs execute_batch",
        "peak RSS growth (MB)",
    ]
    return markdown_table(headers, lines)


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part.replace("_", "")) for part in text.split(",") if part]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected e.g. 100000,1000000")
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("sizes must be positive")
    return sizes


def _tables(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = sorted(set(names) - set(TABLES))
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown table(s) {', '.join(unknown)}; choose from {', '.join(TABLES)}"
        )
    return names


def _methods(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = sorted(set(names) - set(METHODS))
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}"
        )
    return names


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Read the command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=_sizes, default=list(DEFAULT_SIZES), help="rows per load"
    )
    parser.add_argument(
        "--quick",
        action="store_const",
        dest="sizes",
        const=list(QUICK_SIZES),
        help="20k and 100k rows instead",
    )
    parser.add_argument(
        "--methods",
        type=_methods,
        help=f"of {', '.join(METHODS)} (default: {', '.join(DEFAULT_METHODS)})",
    )
    parser.add_argument(
        "--table",
        type=_tables,
        default=["history"],
        dest="tables",
        help=f"of {', '.join(TABLES)}, comma-separated (default: history)",
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per cell; the fastest is shown"
    )
    parser.add_argument(
        "--rerun",
        action="store_true",
        help="load rows the table already holds (methods: "
        + ", ".join(RERUNNABLE)
        + ")",
    )
    args = parser.parse_args(argv)
    if args.methods is None:
        args.methods = list(RERUNNABLE[:2] if args.rerun else DEFAULT_METHODS)
    if args.rerun and set(args.methods) - set(RERUNNABLE):
        parser.error("--rerun works with " + ", ".join(RERUNNABLE) + " only")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def best_of(runs: Sequence[Measurement]) -> Measurement:
    """The fastest run's time with the largest memory growth of all the runs."""
    fastest = min(runs, key=lambda r: r.seconds)
    growth = max(r.rss_growth for r in runs)
    return dataclasses.replace(fastest, rss_growth=growth)


def main(argv: Sequence[str] | None = None) -> int:
    """Run every (size, method) pair and print the markdown table."""
    args = parse_args(argv)
    cells = [(t, m) for t in args.tables for m in args.methods]
    results: list[Measurement] = []
    with throwaway_warehouse() as settings:
        server = server_info(settings)
        # A first large load creates the WAL segments every later run recycles;
        # without it the first method measured would pay for creating them.
        print(f"warm-up: copy of {max(args.sizes):,} rows", file=sys.stderr)
        run_one(settings, args.tables[0], "copy", max(args.sizes))
        for size in args.sizes:
            runs: dict[tuple[str, str], list[Measurement]] = {c: [] for c in cells}
            # Round-robin, so a burst of other work on the machine hits every
            # method (and table) alike rather than all the repeats of one.
            for _ in range(args.repeat):
                for table_name, method in cells:
                    run = run_one(settings, table_name, method, size, args.rerun)
                    runs[(table_name, method)].append(run)
                    print(
                        f"{method} {table_name} {size:,} rows: {run.seconds:.2f} s, "
                        f"{run.rate:,.0f} rows/s, +{run.rss_growth / MB:.1f} MB "
                        f"(load average {os.getloadavg()[0]:.1f})",
                        file=sys.stderr,
                    )
            results.extend(best_of(runs[cell]) for cell in cells)
    what = "a rerun of rows already loaded" if args.rerun else "new rows"
    names = ", ".join(f"coincap.{TABLES[t][0].name}" for t in args.tables)
    print(
        f"\n{names}, {what}, best of {args.repeat}; {server}; "
        "RSS growth of the loading process, records already in memory.\n"
    )
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
