"""Dashboard benchmark: chart query latency and page-ready time at 10M snapshots.

Builds a warehouse the size the issue asks for, then measures the built-in
dashboard on it. Not a test: it prints markdown tables (stdout) and progress
(stderr); the numbers go in the README.

1. A local PostgreSQL (the project's ``LocalWarehouse``, durable settings) in
   ``--data-dir`` (a fresh /tmp dir by default), migrated, with the reader role.
2. ``coincap.exchanges``: ``--exchanges`` × ``--snapshots`` rows (100 × 100,000
   = 10M by default), one snapshot every 5 minutes up to now, loaded with the
   project's loader (``crypto_etl.warehouse.loader.load``) in time order, as the ETL
   would have. Assets (``--asset-snapshots`` 5-minute snapshots of 100
   assets), hourly price history of two assets over the whole span, markets,
   rates and a run log of one run per pipeline per snapshot are generated in
   SQL (they are not what the target is about).
3. The marts: ``crypto-etl transform`` (dbt, ``run_transform``), then
   ``VACUUM ANALYZE``, as autovacuum would after a bulk load.
4. Each chart's query through the dashboard's own read-only pool
   (``ChartQueries.chart_data``, so the SQL, binds and fetch are the
   server's), ``--runs`` times per time range, after one warm-up run; then the
   same over HTTP (JSON encoding included) for the default filters.
5. The page-ready time: Chromium (Playwright) opens the page ``--page-loads``
   times; ready is ``<body data-ready="1">``, i.e. every chart drawn.

A reused ``--data-dir`` that already holds a loaded warehouse of the same
shape skips steps 1-3 (``--rebuild-marts`` reruns step 3).

    python bench/dashboard_bench.py                     # 10M rows, ~10 min
    python bench/dashboard_bench.py --snapshots 10000   # 1M rows, quick
    python bench/dashboard_bench.py --data-dir /tmp/dash-bench --keep
"""

from __future__ import annotations

import argparse
import itertools
import math
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

import requests

from benchlib import free_port, markdown_table
from crypto_etl.config import ReaderSettings, Secret, Settings, WarehouseSettings
from crypto_etl.dashboard.queries import RANGES
from crypto_etl.dashboard.server import DashboardServer
from crypto_etl.analytics.dbt_runner import run_transform
from crypto_etl.errors import DataQualityError
from crypto_etl.exchange_data_etl import EXCHANGES
from crypto_etl.warehouse.loader import load
from crypto_etl.local.cluster import LocalWarehouse
from crypto_etl.records.rows import Exchange
from crypto_etl.warehouse.connection import WarehouseConnection
from crypto_etl.warehouse.migrations import prepare_warehouse

ROOT = Path(__file__).resolve().parents[1]
USER, PASSWORD, DBNAME = "etl_bench", "bench-local-only", "dashboard_bench"
READER, READER_PASSWORD = "dashboard_bench_reader", "bench-reader-local-only"
STEP = timedelta(minutes=5)
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TARGET_QUERY_MS = 100.0
TARGET_PAGE_S = 1.5


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def exchange_records(
    n_exchanges: int, n_snapshots: int, end: datetime
) -> Iterator[Exchange]:
    """Yield the snapshots oldest first: every exchange once per 5 minutes."""
    rng = random.Random(7)
    weights = sorted((rng.paretovariate(1.2) for _ in range(n_exchanges)), reverse=True)
    ids = [f"exchange-{i:03d}" for i in range(n_exchanges)]
    start = end - STEP * n_snapshots
    for k in range(n_snapshots):
        at = start + STEP * (k + 1)
        wave = 1 + 0.2 * math.sin(k / 288 * 2 * math.pi)  # a daily cycle
        volumes = [w * 1e8 * wave * (1 + 0.05 * rng.random()) for w in weights]
        total = sum(volumes)
        for i, volume in enumerate(volumes):
            updated = at - timedelta(milliseconds=rng.randrange(2000))
            yield Exchange(
                exchange_id=ids[i],
                name=f"Exchange {i:03d}",
                rank=i + 1,
                percent_total_volume=Decimal(f"{volume / total * 100:.12f}"),
                volume_usd=Decimal(f"{volume:.8f}"),
                trading_pairs=50 + i,
                socket=False,
                exchange_url=None,
                updated_unix_ms=int(updated.timestamp() * 1000),
                updated_at=updated,
            )


def load_exchanges(settings: WarehouseSettings, args: argparse.Namespace) -> float:
    """Load the exchange snapshots with the project's loader; returns seconds."""
    total = args.exchanges * args.snapshots
    records = exchange_records(args.exchanges, args.snapshots, args.end)
    per_commit = 1_000_000
    started = time.perf_counter()
    with WarehouseConnection(settings) as warehouse:
        for done in range(0, total, per_commit):
            with warehouse.managed_cursor() as cur:
                load(cur, EXCHANGES.table, itertools.islice(records, per_commit))
            loaded = min(done + per_commit, total)
            rate = loaded / (time.perf_counter() - started)
            say(f"  exchanges: {loaded:,}/{total:,} rows ({rate:,.0f} rows/s)")
    return time.perf_counter() - started


def generate_rest(settings: WarehouseSettings, args: argparse.Namespace) -> None:
    """Fill assets, history, markets, rates and the run log in SQL."""
    span = STEP * args.snapshots
    params = {
        "end": args.end,
        "asset_start": args.end - STEP * args.asset_snapshots,
        "span_start": args.end - span,
        "n_runs": args.snapshots,
    }
    statements = [
        # 100 assets, a snapshot every 5 minutes.
        """INSERT INTO coincap.assets (asset_id, snapshot_at, rank, symbol, name,
               supply, max_supply, market_cap_usd, volume_usd_24hr, price_usd,
               change_percent_24hr, vwap_24hr)
           SELECT CASE a WHEN 1 THEN 'bitcoin' WHEN 2 THEN 'ethereum'
                  ELSE 'asset-' || a END, t, a, 'A' || a, 'Asset ' || a, 1e9, 2e9,
                  1e9 * p, 1e7 * p, p, (random() - 0.5) * 10, p
           FROM generate_series(1, 100) AS a,
                generate_series(%(asset_start)s::timestamptz + interval '5 min',
                                %(end)s, interval '5 min') AS t,
                LATERAL (SELECT (1000.0 / a) * (1 + 0.1 * sin(extract(epoch FROM t)
                         / 86400))::numeric AS p) AS price""",
        # Hourly price history of two assets over the whole span.
        """INSERT INTO coincap.asset_history (asset_id, "interval", "time", price_usd)
           SELECT asset, 'h1', t, (50000 + 5000 * sin(extract(epoch FROM t) / 604800)
                                  + 100 * random())::numeric
           FROM unnest(ARRAY['bitcoin', 'ethereum']) AS asset,
                generate_series(date_trunc('hour', %(span_start)s::timestamptz),
                                %(end)s, interval '1 hour') AS t""",
        # Markets: ten pairs per exchange, the last hour of updates.
        """INSERT INTO coincap.markets (exchange_id, base_id, quote_id,
               updated_unix_ms, updated_at, base_symbol, quote_symbol, rank,
               price_quote, price_usd, volume_usd_24hr, percent_exchange_volume,
               trades_count_24hr)
           SELECT 'exchange-' || lpad(e::text, 3, '0'), 'asset-' || b, 'tether',
                  (extract(epoch FROM t) * 1000)::bigint, t, 'A' || b, 'USDT', b,
                  1000.0 / b, 1000.0 / b, 1e6, 10, 1000
           FROM generate_series(0, 99) AS e, generate_series(1, 10) AS b,
                generate_series(%(end)s::timestamptz - interval '55 min', %(end)s,
                                interval '5 min') AS t""",
        """INSERT INTO coincap.rates (rate_id, snapshot_at, symbol, type, rate_usd)
           SELECT 'rate-' || r, t, 'R' || r, 'fiat', 1.0 / r
           FROM generate_series(1, 30) AS r,
                generate_series(%(end)s::timestamptz - interval '1 day', %(end)s,
                                interval '5 min') AS t""",
        # One run per pipeline per snapshot (every 5 minutes), 1 in 200 failed.
        """INSERT INTO coincap.etl_runs (pipeline, started_at, finished_at, status,
               rows_fetched, rows_inserted, api_calls, bytes_received, credits,
               error_message)
           SELECT p, t, t + interval '3 s',
                  CASE WHEN random() < 0.005 THEN 'failed' ELSE 'succeeded' END,
                  100, 100, 1, 30000, 12, NULL
           FROM unnest(ARRAY['exchanges', 'assets', 'markets', 'rates']) AS p,
                generate_series(%(end)s::timestamptz - (%(n_runs)s - 1)
                                * interval '5 min', %(end)s, interval '5 min') AS t""",
        """INSERT INTO coincap.etl_runs (pipeline, started_at, finished_at, status,
               rows_fetched, rows_inserted, api_calls, credits)
           VALUES ('backfill', %(end)s, %(end)s, 'succeeded', 16000, 16000, 10, 600)""",
    ]
    with WarehouseConnection(settings) as warehouse:
        for sql in statements:
            started = time.perf_counter()
            with warehouse.managed_cursor() as cur:
                cur.execute(sql, params)
                rows = cur.rowcount
            table = sql.split("INSERT INTO ")[1].split()[0]
            say(f"  {table}: {rows:,} rows in {time.perf_counter() - started:.1f} s")


def build_marts(settings: Settings) -> str:
    """Build the marts with dbt, as `crypto-etl transform` does; say how it went."""
    try:
        run_transform(settings)
    except DataQualityError as exc:
        # The marts are built; a failed data test on synthetic data is noted.
        return f"built; a data test failed: {exc}"
    return "built, every error-severity data test passed"


def vacuum_analyze(settings: WarehouseSettings) -> None:
    with WarehouseConnection(settings) as warehouse:
        conn = warehouse.connection
        conn.autocommit = True  # VACUUM cannot run in a transaction
        with conn.cursor() as cur:
            cur.execute("VACUUM ANALYZE")


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def cases(
    definition: Any, exchange: str, asset: str
) -> list[tuple[str, dict[str, str]]]:
    """Each chart once per time range it takes, plus the exchange filter."""
    found = []
    for chart in definition.charts:
        variants: list[dict[str, str]] = [{}]
        if "since" in chart.parameters:
            variants = [{"since": since} for since in RANGES]
        if "exchange" in chart.parameters:
            variants += [{"since": "all", "exchange": exchange}]
        if "asset" in chart.parameters:
            variants = [{**v, "asset": asset} for v in variants]
        found += [(chart.id, v) for v in variants]
    return found


def measure_queries(server: DashboardServer, runs: int) -> list[list[str]]:
    """Time each chart's query through the dashboard's pool; return table rows."""
    queries = server.app.queries
    exchange = queries.pool.query(
        "SELECT exchange_id FROM analytics.exchanges_current ORDER BY rank LIMIT 1", {}
    ).rows[0][0]
    asset = queries.pool.query(
        "SELECT asset_id FROM analytics.asset_price_history LIMIT 1", {}
    ).rows[0][0]
    table = []
    for chart_id, params in cases(queries.definition, exchange, asset):
        result, _ = queries.chart_data(chart_id, params)  # warm-up
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            queries.chart_data(chart_id, params)
            times.append((time.perf_counter() - started) * 1000)
        p95 = percentile(times, 95)
        shown = ", ".join(f"{k}={v}" for k, v in params.items()) or "-"
        table.append(
            [
                chart_id,
                shown,
                f"{len(result.rows):,}",
                f"{statistics.median(times):.1f}",
                f"{p95:.1f}",
                "yes" if p95 < TARGET_QUERY_MS else "NO",
            ]
        )
        say(f"  {chart_id} {shown}: p95 {p95:.1f} ms")
    return table


def measure_http(server: DashboardServer, runs: int) -> list[list[str]]:
    """Time each chart's JSON endpoint with the page's default filters."""
    table = []
    with requests.Session() as http:
        for chart in server.app.queries.definition.charts:
            url = f"{server.url}api/charts/{chart.id}"
            http.get(url, timeout=30).raise_for_status()
            times = []
            for _ in range(runs):
                started = time.perf_counter()
                response = http.get(url, timeout=30)
                times.append((time.perf_counter() - started) * 1000)
                response.raise_for_status()
            table.append(
                [
                    chart.id,
                    f"{len(response.content):,}",
                    f"{statistics.median(times):.1f}",
                    f"{percentile(times, 95):.1f}",
                ]
            )
    return table


def measure_page(server: DashboardServer, loads: int) -> list[list[str]]:
    """Open the page ``loads`` times per range; time until every chart drew."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        say("  playwright is not installed: page-ready time not measured")
        return []
    if not CHROMIUM.exists():
        say(f"  {CHROMIUM} is missing: page-ready time not measured")
        return []
    table = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        for since in ("7d", "all"):
            times = []
            for n in range(loads + 1):
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                started = time.perf_counter()
                page.goto(f"{server.url}?since={since}")
                page.wait_for_selector('body[data-ready="1"]', timeout=30_000)
                elapsed = time.perf_counter() - started
                states = page.eval_on_selector_all(
                    "section[data-chart]", "cs => cs.map(c => c.dataset.state)"
                )
                page.close()
                if set(states) != {"ok"}:
                    raise RuntimeError(f"not every chart drew: {states}")
                if n:  # the first load warms the browser's cache
                    times.append(elapsed)
            table.append(
                [
                    since,
                    str(loads),
                    f"{statistics.median(times):.2f}",
                    f"{max(times):.2f}",
                    "yes" if max(times) < TARGET_PAGE_S else "NO",
                ]
            )
        browser.close()
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exchanges", type=int, default=100)
    parser.add_argument("--snapshots", type=int, default=100_000)
    parser.add_argument("--asset-snapshots", type=int, default=8640)
    parser.add_argument("--runs", type=int, default=30, help="timed runs per query")
    parser.add_argument("--page-loads", type=int, default=5)
    parser.add_argument("--data-dir", type=Path, help="reuse or keep the cluster here")
    parser.add_argument("--keep", action="store_true", help="keep the cluster")
    parser.add_argument("--rebuild-marts", action="store_true")
    args = parser.parse_args(argv)
    # Whole minutes, so the generated 5-minute grids line up.
    args.end = datetime.now(timezone.utc).replace(second=0, microsecond=0)

    throwaway = args.data_dir is None
    root = args.data_dir or Path(
        tempfile.mkdtemp(prefix="crypto-etl-dash-", dir="/tmp")
    )
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    marker = root / f"loaded-{args.exchanges}x{args.snapshots}"

    def cluster_on(port: int) -> LocalWarehouse:
        return LocalWarehouse(
            root / "data", port=port, dbname=DBNAME, user=USER, password=PASSWORD
        )

    # A kept cluster listens where it was created; a new one on a free port.
    existing = (root / "data" / "PG_VERSION").exists()
    cluster = cluster_on(cluster_on(0).status().port if existing else free_port())
    state = cluster.start()
    warehouse = WarehouseSettings(
        host=state.host,
        port=state.port,
        dbname=DBNAME,
        user=USER,
        password=Secret(PASSWORD),
    )
    settings = Settings(
        warehouse=warehouse,
        coincap_base_url="http://127.0.0.1:9/v3",
        coincap_api_key=None,
        reader=ReaderSettings(READER, Secret(READER_PASSWORD)),
    )
    try:
        marts = "reused"
        if not marker.exists():
            say(f"building the warehouse in {root}")
            with WarehouseConnection(warehouse) as connection:
                prepare_warehouse(connection, settings.reader)
            seconds = load_exchanges(warehouse, args)
            say(
                f"  loader: {args.exchanges * args.snapshots:,} rows in {seconds:.0f} s"
            )
            generate_rest(warehouse, args)
        if not marker.exists() or args.rebuild_marts:
            started = time.perf_counter()
            marts = build_marts(settings)
            say(f"  marts: {marts} in {time.perf_counter() - started:.0f} s")
            vacuum_analyze(warehouse)
            marker.touch()
        with DashboardServer(settings, port=0) as server:
            say("timing the chart queries")
            queries = measure_queries(server, args.runs)
            say("timing the JSON endpoints")
            http = measure_http(server, args.runs)
            say("timing the page")
            page = measure_page(server, args.page_loads)
        with WarehouseConnection(warehouse) as connection:
            with connection.managed_cursor() as cur:
                cur.execute("SELECT count(*) FROM coincap.exchanges")
                rows = cur.fetchone()
    finally:
        if throwaway or not args.keep:
            cluster.stop()
        if throwaway and not args.keep:
            shutil.rmtree(root, ignore_errors=True)

    print(
        f"## Dashboard benchmark: {rows[0] if rows else 0:,} exchange snapshot rows\n"
    )
    print(f"Marts (dbt): {marts}. Timed runs per query: {args.runs}.\n")
    print("### Chart queries (through the dashboard's read-only pool)\n")
    headers = ["chart", "filters", "rows", "p50 ms", "p95 ms", "< 100 ms"]
    print(markdown_table(headers, queries) + "\n")
    print("### JSON endpoints over HTTP (default filters)\n")
    print(markdown_table(["chart", "bytes", "p50 ms", "p95 ms"], http) + "\n")
    if page:
        print("### Page ready (every chart drawn), Chromium headless\n")
        headers = ["range", "loads", "median s", "max s", "< 1.5 s"]
        print(markdown_table(headers, page))
    return 0


if __name__ == "__main__":
    sys.exit(main())
