"""Migration 0006 on a warehouse that already holds rows: they move into the
monthly partitions, nothing is lost, and loads and reads go on as before."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from crypto_etl.pipelines.catalog import BACKFILL
from crypto_etl.records.rows import HistoryPoint
from crypto_etl.warehouse.connection import WarehouseConnection
from crypto_etl.warehouse.loader import load
from crypto_etl.warehouse.migrations import available_migrations, migrate

from conftest import admin_connection, query, warehouse_settings

pytestmark = pytest.mark.postgres

PARTITIONED = ("coincap.asset_history", "coincap.assets")
BEFORE = 6  # 0006_partitions and later are not applied yet

OLD_ROWS = """
INSERT INTO coincap.asset_history (asset_id, "interval", "time", price_usd)
SELECT 'bitcoin', 'h1', t, 1.000000000000000001
FROM generate_series('2025-11-20'::timestamptz, '2026-01-10', '1 hour') AS t;
INSERT INTO coincap.assets (asset_id, snapshot_at, rank, symbol, price_usd)
SELECT 'bitcoin', t, 1, 'BTC', 2.5
FROM generate_series('2025-12-30'::timestamptz, '2026-01-02', '5 minutes') AS t;
"""


@pytest.fixture
def unpartitioned(pg_server):
    """A warehouse migrated up to 0005 only, holding rows in two tables."""
    port = pg_server[1]
    name = f"premigration_{os.getpid()}"
    admin = admin_connection(port)
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    settings = warehouse_settings(port, name)
    with WarehouseConnection(settings) as warehouse, warehouse.managed_cursor() as cur:
        cur.execute(
            "CREATE SCHEMA coincap; CREATE TABLE coincap.schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for migration in available_migrations():
            if migration.version < BEFORE:
                cur.execute(migration.sql)
                cur.execute(
                    "INSERT INTO coincap.schema_migrations VALUES (%s, %s, %s)",
                    (migration.version, migration.name, migration.checksum),
                )
        cur.execute(OLD_ROWS)
    yield settings
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def test_the_migration_moves_every_row_into_monthly_partitions(unpartitioned):
    before = {
        t: query(unpartitioned, f"SELECT * FROM {t} ORDER BY 1, 2, 3")
        for t in PARTITIONED
    }
    with WarehouseConnection(unpartitioned) as warehouse:
        applied = [m.name for m in migrate(warehouse)]
    assert "partitions" in applied
    for table in PARTITIONED:
        assert (
            query(unpartitioned, f"SELECT * FROM {table} ORDER BY 1, 2, 3")
            == before[table]
        )
        kind = query(
            unpartitioned,
            "SELECT relkind FROM pg_class WHERE oid = %s::regclass",
            (table,),
        )
        assert kind == [("p",)], table
    history = query(
        unpartitioned,
        "SELECT c.relname, count(h.*) FROM pg_inherits i"
        " JOIN pg_class c ON c.oid = i.inhrelid"
        " LEFT JOIN coincap.asset_history h ON h.tableoid = c.oid"
        " WHERE i.inhparent = 'coincap.asset_history'::regclass"
        " GROUP BY 1 ORDER BY 1",
    )
    assert history[:3] == [
        ("asset_history_p202511", 11 * 24),
        ("asset_history_p202512", 31 * 24),
        ("asset_history_p202601", 9 * 24 + 1),
    ]
    # The exact decimals survived the move.
    assert query(
        unpartitioned, "SELECT DISTINCT price_usd FROM coincap.asset_history"
    ) == [(Decimal("1.000000000000000001"),)]


def test_after_the_migration_loads_create_their_month_and_reruns_add_nothing(
    unpartitioned,
):
    with WarehouseConnection(unpartitioned) as warehouse:
        migrate(warehouse)
        point = HistoryPoint(
            asset_id="bitcoin",
            interval="h1",
            time=datetime(2019, 5, 1, 12, tzinfo=timezone.utc),
            price_usd=Decimal("5.25"),
        )
        for expected in (1, 0):
            with warehouse.managed_cursor() as cur:
                assert load(cur, BACKFILL.table, [point]) == expected
    assert query(
        unpartitioned,
        "SELECT count(*) FROM coincap.asset_history_p201905",
    ) == [(1,)]


def test_the_read_role_can_read_the_partitioned_tables_and_new_months(unpartitioned):
    with WarehouseConnection(unpartitioned) as warehouse:
        migrate(warehouse)
    for table in PARTITIONED:
        assert query(
            unpartitioned,
            "SELECT has_table_privilege('coincap_read', %s, 'SELECT')",
            (table,),
        ) == [(True,)]


def test_a_row_inserted_by_hand_into_a_month_without_partition_is_kept(db):
    # Not through the loader: the default partition takes it...
    query(
        db,
        "INSERT INTO coincap.assets (asset_id, snapshot_at) VALUES"
        " ('bitcoin', '2021-03-04 05:06+00'), ('bitcoin', '2021-04-01 00:00+00')",
    )
    assert query(db, "SELECT count(*) FROM coincap.assets_pdefault") == [(2,)]
    # ...until its month is created, which moves it there.
    with WarehouseConnection(db) as warehouse, warehouse.managed_cursor() as cur:
        cur.execute(
            "SELECT coincap.create_month_partitions('coincap.assets',"
            " array['2021-03-31 23:59+00'::timestamptz])"
        )
    assert query(db, "SELECT count(*) FROM coincap.assets_pdefault") == [(1,)]
    assert query(db, "SELECT snapshot_at FROM coincap.assets_p202103") == [
        (datetime(2021, 3, 4, 5, 6, tzinfo=timezone.utc),)
    ]
