"""``crypto-etl prune`` on a real PostgreSQL with 120 days of data and its marts.

One database is filled once (SQL series through the loader's partition
function, then the real dbt models) and every test prunes its own fresh
(``CREATE DATABASE ... TEMPLATE``). The clock is a fixed ``NOW`` passed to
``prune``: 120 days of data ending on it, so ``--keep 90d`` must leave
exactly the 90 UTC days ending on ``NOW``'s and drop February's partitions
whole (their rows all older than the cutoff, 2026-03-18).
"""

from __future__ import annotations

import os
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest

from crypto_etl.analytics.dbt_runner import run_transform
from crypto_etl.errors import DataQualityError
from crypto_etl.pipelines.catalog import RETENTION
from crypto_etl.pipelines.prune import prune, retention_cutoff
from crypto_etl.warehouse.connection import WarehouseConnection

from conftest import admin_connection, query, warehouse_settings
from dashboard_data import settings_for

pytestmark = pytest.mark.postgres

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=timezone.utc)
FIRST_DAY = date(2026, 2, 16)  # 120 days ending on NOW's day
CUTOFF = datetime(2026, 3, 18, tzinfo=timezone.utc)
MARTS = [
    "analytics.asset_price_history",
    "analytics.asset_snapshots_hourly",
    "analytics.asset_ohlc_daily",
    "analytics.exchange_volume_hourly",
    "analytics.exchange_volume_daily",
    "analytics.exchanges_current",
    "analytics.market_summary",
    "staging.int_asset_snapshot_ohlc_daily",
]

# Every 6 hours from FIRST_DAY to NOW: assets, rates, one busy exchange and
# its market; one quiet exchange whose only row is 100 days old.
FILL = """
SELECT coincap.create_month_partitions('coincap.asset_history',
    array(SELECT generate_series(%(first)s::timestamptz, %(now)s, '1 day')));
SELECT coincap.create_month_partitions('coincap.assets',
    array(SELECT generate_series(%(first)s::timestamptz, %(now)s, '1 day')));
INSERT INTO coincap.asset_history (asset_id, "interval", "time", price_usd)
SELECT a, 'h1', t, 100 + extract(epoch FROM t)::numeric / 1e6
FROM unnest(array['bitcoin', 'ethereum']) AS a,
     generate_series(%(first)s::timestamptz, %(now)s, '1 hour') AS t;
INSERT INTO coincap.assets (asset_id, snapshot_at, rank, symbol, name, supply,
    market_cap_usd, volume_usd_24hr, price_usd)
SELECT a, t, r, upper(a), a, 1000, 5000, 10, 5
FROM unnest(array['bitcoin', 'ethereum'], array[1, 2]) AS x(a, r),
     generate_series(%(first)s::timestamptz, %(now)s, '6 hours') AS t;
INSERT INTO coincap.rates (rate_id, snapshot_at, symbol, rate_usd)
SELECT 'euro', t, 'EUR', 1.1
FROM generate_series(%(first)s::timestamptz, %(now)s, '6 hours') AS t;
INSERT INTO coincap.exchanges (exchange_id, name, rank, percent_total_volume,
    volume_usd, trading_pairs, updated_unix_ms, updated_at)
SELECT 'busy', 'Busy', 1, 60, 1000, 5,
       (extract(epoch FROM t) * 1000)::bigint, t
FROM generate_series(%(first)s::timestamptz, %(now)s, '6 hours') AS t
UNION ALL
SELECT 'quiet', 'Quiet', 2, 40, 500, 3,
       (extract(epoch FROM t) * 1000)::bigint, t
FROM (SELECT %(now)s::timestamptz - interval '100 days' AS t) AS old;
INSERT INTO coincap.markets (exchange_id, base_id, quote_id, updated_unix_ms,
    updated_at, base_symbol, quote_symbol, rank, price_quote, price_usd,
    volume_usd_24hr, percent_exchange_volume)
SELECT 'busy', 'bitcoin', 'tether', (extract(epoch FROM t) * 1000)::bigint, t,
       'BTC', 'USDT', 1, 5, 5, 100, 50
FROM generate_series(%(first)s::timestamptz, %(now)s, '6 hours') AS t;
"""


def _transform(settings) -> None:
    # The data is months old, so the sources' freshness checks fail (exit 7)
    # after every model was built: that is not what these tests are about.
    try:
        run_transform(settings)
    except DataQualityError:
        pass


@pytest.fixture(scope="module")
def filled(pg_server, tmp_path_factory):
    """The name of a database with 120 days of raw data and its marts built."""
    port = pg_server[1]
    name = f"prune_filled_{os.getpid()}"
    admin = admin_connection(port)
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}" TEMPLATE template_crypto')
    settings = settings_for(
        warehouse_settings(port, name), tmp_path_factory.mktemp("p")
    )
    first = datetime.combine(FIRST_DAY, datetime.min.time(), timezone.utc)
    query(settings.warehouse, FILL, {"first": first, "now": NOW})
    _transform(settings)
    yield name
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture
def fresh(pg_server, filled, tmp_path):
    """Settings for a fresh fresh of the filled database."""
    port = pg_server[1]
    name = f"{filled}_{tmp_path.name[-20:]}".replace("-", "_").lower()
    admin = admin_connection(port)
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}" TEMPLATE "{filled}"')
    yield settings_for(warehouse_settings(port, name), tmp_path)
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def _prune(settings, *, tables=None, dry_run=False):
    with WarehouseConnection(settings.warehouse) as warehouse:
        return prune(
            warehouse,
            [RETENTION[t] for t in tables or RETENTION],
            keep_days=90,
            now=NOW,
            dry_run=dry_run,
        )


def _days(settings, table: str, column: str) -> list[date]:
    rows = query(
        settings.warehouse,
        f"SELECT DISTINCT ({column} AT TIME ZONE 'UTC')::date FROM {table} ORDER BY 1",
    )
    return [day for (day,) in rows]


def _partitions(settings, table: str) -> list[str]:
    rows = query(
        settings.warehouse,
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = %s::regclass ORDER BY 1",
        (table,),
    )
    return [name for (name,) in rows]


def _marts(settings) -> dict[str, list[tuple[Any, ...]]]:
    return {
        mart: query(settings.warehouse, f"SELECT * FROM {mart} ORDER BY 1, 2")
        for mart in MARTS
    }


def test_the_cutoff_is_midnight_utc_keeping_today_and_the_days_before():
    assert retention_cutoff(NOW, 90) == CUTOFF
    assert retention_cutoff(NOW, 1) == datetime(2026, 6, 15, tzinfo=timezone.utc)
    with pytest.raises(ValueError):
        retention_cutoff(NOW, 0)


def test_prune_keeps_exactly_the_last_90_days(fresh):
    expected = [CUTOFF.date() + timedelta(days=n) for n in range(90)]
    assert _days(fresh, "coincap.asset_history", '"time"')[0] == FIRST_DAY
    _prune(fresh)
    assert _days(fresh, "coincap.asset_history", '"time"') == expected
    assert _days(fresh, "coincap.assets", "snapshot_at") == expected
    assert _days(fresh, "coincap.rates", "snapshot_at") == expected
    assert _days(fresh, "coincap.markets", "updated_at") == expected


def test_prune_drops_whole_partitions_of_asset_history(fresh):
    assert "asset_history_p202602" in _partitions(fresh, "coincap.asset_history")
    report = _prune(fresh)
    left = _partitions(fresh, "coincap.asset_history")
    assert "asset_history_p202602" not in left
    # The month the cutoff falls in stays, emptied of its older rows by batches.
    assert "asset_history_p202603" in left
    (history,) = [t for t in report.tables if t.table == "asset_history"]
    assert history.dropped == ["asset_history_p202602"]
    assert "assets_p202602" not in _partitions(fresh, "coincap.assets")


def test_prune_leaves_the_marts_intact_and_they_still_build(fresh):
    before = _marts(fresh)
    _prune(fresh)
    assert _marts(fresh) == before
    # The incremental models rebuild on the pruned tables and keep the old
    # days they aggregated.
    _transform(fresh)
    after = _marts(fresh)
    for mart in MARTS:
        assert set(before[mart]) <= set(after[mart]), mart
    ohlc_days = {row[0] for row in after["analytics.asset_ohlc_daily"]}
    assert FIRST_DAY in ohlc_days and CUTOFF.date() - timedelta(days=1) in ohlc_days


def test_prune_is_recorded_in_etl_runs_with_the_rows_it_deleted(fresh):
    total = query(fresh.warehouse, "SELECT count(*) FROM coincap.asset_history")[0][0]
    report = _prune(fresh)
    left = query(fresh.warehouse, "SELECT count(*) FROM coincap.asset_history")[0][0]
    (history,) = [t for t in report.tables if t.table == "asset_history"]
    assert history.rows_deleted == total - left > 0
    rows = query(
        fresh.warehouse,
        "SELECT status, rows_deleted, credits FROM coincap.etl_runs"
        " WHERE pipeline = 'prune'",
    )
    assert rows == [("succeeded", report.rows_deleted, 0)]


def test_a_second_prune_is_a_no_op(fresh):
    _prune(fresh)
    counts = query(fresh.warehouse, "SELECT count(*) FROM coincap.assets")
    again = _prune(fresh)
    assert again.rows_deleted == 0
    assert all(not t.dropped for t in again.tables)
    assert query(fresh.warehouse, "SELECT count(*) FROM coincap.assets") == counts


def test_a_dry_run_counts_what_a_real_run_then_deletes(fresh):
    planned = _prune(fresh, dry_run=True)
    assert query(
        fresh.warehouse,
        "SELECT count(*) FROM coincap.etl_runs WHERE pipeline = 'prune'",
    ) == [(0,)]
    assert _days(fresh, "coincap.asset_history", '"time"')[0] == FIRST_DAY
    done = _prune(fresh)
    assert [(t.table, t.rows_deleted, t.dropped) for t in planned.tables] == [
        (t.table, t.rows_deleted, t.dropped) for t in done.tables
    ]


def test_the_latest_row_of_a_quiet_exchange_stays_whatever_its_age(fresh):
    _prune(fresh)
    quiet = query(
        fresh.warehouse,
        "SELECT count(*) FROM coincap.exchanges WHERE exchange_id = 'quiet'",
    )
    assert quiet == [(1,)]
    busy_days = _days(fresh, "coincap.exchanges", "updated_at")
    assert busy_days[0] == (NOW - timedelta(days=100)).date()
    assert busy_days[1] == CUTOFF.date()


def test_a_point_the_marts_do_not_hold_yet_is_kept(fresh):
    # A backfill loaded an old point after the last transform.
    late = datetime(2026, 2, 20, 0, 30, tzinfo=timezone.utc)
    query(
        fresh.warehouse,
        'INSERT INTO coincap.asset_history (asset_id, "interval", "time", price_usd)'
        " VALUES ('dogecoin', 'h1', %s, 1)",
        (late,),
    )
    report = _prune(fresh, tables=["asset_history"])
    (history,) = report.tables
    assert history.dropped == []  # its month has a row that must stay
    assert history.rows_kept_unheld == 1
    assert query(
        fresh.warehouse,
        'SELECT asset_id FROM coincap.asset_history WHERE "time" < %s',
        (CUTOFF,),
    ) == [("dogecoin",)]


def test_without_built_marts_only_the_unaggregated_tables_are_pruned(db, tmp_path):
    settings = settings_for(db, tmp_path)
    first = datetime.combine(FIRST_DAY, datetime.min.time(), timezone.utc)
    query(settings.warehouse, FILL, {"first": first, "now": NOW})
    report = _prune(settings)
    by_table = {t.table: t for t in report.tables}
    assert by_table["asset_history"].skipped is not None
    assert "crypto-etl transform" in by_table["assets"].summary(dry_run=False)
    assert _days(settings, "coincap.asset_history", '"time"')[0] == FIRST_DAY
    # Nothing aggregates rates: they are pruned anyway.
    assert _days(settings, "coincap.rates", "snapshot_at")[0] == CUTOFF.date()


def test_prune_creates_the_coming_months_partitions(fresh):
    _prune(fresh, tables=["assets"])
    assert {"assets_p202606", "assets_p202607", "assets_p202608"} <= set(
        _partitions(fresh, "coincap.assets")
    )


def test_the_cli_refuses_a_window_that_is_not_days(cli, capsys):
    with pytest.raises(SystemExit) as stopped:
        cli("prune", "--keep", "90")
    assert stopped.value.code == 2
    assert "'90' is not a number of days like 90d" in capsys.readouterr().err


def test_the_cli_prints_each_tables_figures(cli):
    result = cli("prune", "--keep", "90d", "--table", "rates", "--dry-run")
    assert result.code == 0, result.err
    assert "dry run: nothing changed" in result.out
    assert "rates: would delete 0 rows" in result.out
