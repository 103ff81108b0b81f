"""The fault matrix, warehouse side: PostgreSQL down, stopped, slow, locked, full.

Faults inside a database (a statement timeout, a lock held by another
session, the disk-full error class) are raised by the real server in the
test's own database. Stopping and restarting the server uses a throwaway
cluster of this test module (``LocalWarehouse``), never the suite's shared
one. Each case proves the README's fault table: the documented exit code and
one clear line, none of the run's rows (or all of them), ``etl_runs`` says
what happened, and the next normal run succeeds and catches up.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import psycopg2
import pytest

from conftest import (
    API_KEY,
    TEST_PASSWORD,
    TEST_USER,
    free_port,
    query,
    warehouse_settings,
)
from crypto_etl.coincap.client import CoinCapClient
from crypto_etl.config import Secret
from crypto_etl.local.cluster import LocalWarehouse
from crypto_etl.pipelines.catalog import EXCHANGES
from crypto_etl.pipelines.snapshot import run_snapshot
from crypto_etl.warehouse.connection import WarehouseConnection
from crypto_etl.warehouse.migrations import migrate

from test_fault_matrix import CHANGED, exchange_rows, one_line, runs

pytestmark = pytest.mark.postgres


def owner_connection(db):
    conn = psycopg2.connect(
        host=db.host,
        port=db.port,
        dbname=db.dbname,
        user=db.user,
        password=db.password.reveal(),
    )
    conn.autocommit = True
    return conn


def first_run_then_tick(cli, simulator, db) -> int:
    assert cli("run", "exchanges").code == 0
    simulator.tick(CHANGED)
    return exchange_rows(db)


def assert_failed_then_caught_up(cli, db, failed, loaded, code, reason):
    assert failed.code == code, failed.err
    assert reason in one_line(failed.err)
    assert exchange_rows(db) == loaded
    status, message, inserted = runs(db)[-1]
    assert (status, inserted) == ("failed", 0) and reason in (message or "")


def test_the_database_down_at_start_is_exit_6_in_one_line(cli, db, monkeypatch):
    monkeypatch.setenv("WAREHOUSE_PORT", str(free_port()))
    failed = cli("run", "exchanges")
    assert failed.code == 6
    assert "cannot connect to the warehouse" in one_line(failed.err)
    # Nothing could be stored: the run never reached the warehouse.
    monkeypatch.setenv("WAREHOUSE_PORT", str(db.port))
    assert query(db, "SELECT count(*) FROM coincap.etl_runs") == [(0,)]
    assert cli("run", "exchanges").code == 0
    assert runs(db) == [("succeeded", None, 60)]


@contextmanager
def load_trigger(db, body: str) -> Iterator[None]:
    """A trigger that runs ``body`` (PL/pgSQL) before every load of exchanges."""
    owner = owner_connection(db)
    with owner.cursor() as cur:
        cur.execute(
            "CREATE FUNCTION public.fault() RETURNS trigger LANGUAGE plpgsql AS"
            f" $$ BEGIN {body}; RETURN NULL; END $$;"
            " CREATE TRIGGER fault BEFORE INSERT ON coincap.exchanges"
            " FOR EACH STATEMENT EXECUTE FUNCTION public.fault()"
        )
    try:
        yield
    finally:
        with owner.cursor() as cur:
            cur.execute("DROP TRIGGER fault ON coincap.exchanges")
        owner.close()


@pytest.mark.parametrize(
    "body, setting, code, reason",
    [
        # A load slowed down past the timeout, as on an overloaded server.
        (
            "PERFORM pg_sleep(5)",
            {"WAREHOUSE_STATEMENT_TIMEOUT": "0.5"},
            6,
            "canceling statement due to statement timeout",
        ),
        # The error a full volume gives (SQLSTATE 53100), raised by the
        # server where a COPY would extend the table's file.
        (
            'RAISE EXCEPTION \'could not extend file "base/1/2": No space left'
            " on device' USING ERRCODE = 'disk_full'",
            {},
            11,
            "No space left on device",
        ),
    ],
    ids=["statement timeout", "disk full"],
)
def test_a_server_side_failure_mid_load_and_the_next_run_catches_up(
    cli, simulator, db, monkeypatch, body, setting, code, reason
):
    loaded = first_run_then_tick(cli, simulator, db)
    for key, value in setting.items():
        monkeypatch.setenv(key, value)
    with load_trigger(db, body):
        failed = cli("run", "exchanges")
        assert_failed_then_caught_up(cli, db, failed, loaded, code, reason)
    if code == 11:
        assert "free space" in one_line(failed.err)
    assert cli("run", "exchanges").code == 0
    assert exchange_rows(db) == loaded + CHANGED


def test_a_lock_held_by_another_session_times_out_instead_of_hanging(
    cli, simulator, db, monkeypatch
):
    loaded = first_run_then_tick(cli, simulator, db)
    holder = owner_connection(db)
    holder.autocommit = False
    with holder.cursor() as cur:
        cur.execute("LOCK TABLE coincap.exchanges IN ACCESS EXCLUSIVE MODE")
    monkeypatch.setenv("WAREHOUSE_LOCK_TIMEOUT", "0.5")
    failed = cli("run", "exchanges")
    holder.rollback()
    holder.close()
    assert_failed_then_caught_up(
        cli, db, failed, loaded, 6, "canceling statement due to lock timeout"
    )
    assert cli("run", "exchanges").code == 0
    assert exchange_rows(db) == loaded + CHANGED


@pytest.fixture
def own_cluster(pg_server):
    """A throwaway PostgreSQL of this test alone, safe to stop and restart."""
    root = Path(tempfile.mkdtemp(prefix="crypto-etl-faults-pg-", dir="/tmp"))
    root.chmod(0o755)
    cluster = LocalWarehouse(
        root / "data",
        port=free_port(),
        dbname="faults",
        user=TEST_USER,
        password=TEST_PASSWORD,
        # Durable commits: the crash test checks what a crash keeps.
        fast=False,
    )
    state = cluster.start()
    settings = warehouse_settings(state.port, "faults")
    with WarehouseConnection(settings) as warehouse:
        migrate(warehouse)
    yield cluster, settings
    cluster.stop(mode="immediate")
    shutil.rmtree(root, ignore_errors=True)


def test_the_server_stopped_mid_copy_leaves_no_row_and_the_run_is_accounted_for(
    own_cluster, env, simulator
):
    cluster, db = own_cluster
    process_env = {**os.environ, **env, "WAREHOUSE_PORT": str(db.port)}
    process_env["WAREHOUSE_DB"] = db.dbname
    command = [sys.executable, "-m", "crypto_etl.cli", "run", "exchanges"]
    assert subprocess.run(command, env=process_env, timeout=60).returncode == 0
    simulator.tick()  # every exchange new: the loader COPYs straight in
    loaded = exchange_rows(db)
    # Another session's SHARE lock lets the run read but holds its COPY.
    holder = owner_connection(db)
    holder.autocommit = False
    with holder.cursor() as cur:
        cur.execute("LOCK TABLE coincap.exchanges IN SHARE MODE")
    run = subprocess.Popen(command, env=process_env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    # Polled from another session: pg_stat_activity is frozen per transaction.
    watcher = owner_connection(db)
    with watcher.cursor() as cur:
        while True:
            cur.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type ="
                " 'Lock' AND query LIKE 'COPY%%coincap%%exchanges%%'"
            )
            if cur.fetchone()[0]:
                break
            assert time.monotonic() < deadline, "the run's COPY never started"
            time.sleep(0.05)
    watcher.close()
    cluster.stop(mode="immediate")
    _, err = run.communicate(timeout=60)

    assert run.returncode == 6, err
    assert "lost the connection to" in one_line(err)
    cluster.start()
    assert exchange_rows(db) == loaded  # crash recovery kept none of it
    assert runs(db)[-1][0] == "running"  # the row committed at its start
    assert subprocess.run(command, env=process_env, timeout=60).returncode == 0
    assert [status for status, _, _ in runs(db)] == ["succeeded", "failed"] + [
        "succeeded"
    ]
    assert "abandoned" in (runs(db)[1][1] or "")
    caught_up = runs(db)[-1][2]
    assert caught_up > CHANGED and exchange_rows(db) == loaded + caught_up


def test_a_restart_between_runs_does_not_fail_the_next_run(own_cluster, simulator):
    cluster, db = own_cluster
    client = CoinCapClient(simulator.base_url, Secret(API_KEY))
    # One long-lived connection, as the demo's scheduler keeps.
    with client, WarehouseConnection(db) as warehouse:
        run_snapshot(EXCHANGES, client, warehouse)
        cluster.stop()
        cluster.start()
        simulator.tick(CHANGED)
        again = run_snapshot(EXCHANGES, client, warehouse)
    assert again.rows_inserted == CHANGED
    assert runs(db) == [("succeeded", None, 60), ("succeeded", None, CHANGED)]
