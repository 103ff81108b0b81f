"""Warehouse contents for the dashboard's tests and benchmark.

``load_from_simulator`` fills the raw tables by running the real pipelines
against the simulator; ``build_marts`` builds the marts the dashboard reads
with the project's dbt models (``crypto_etl.analytics.dbt_runner.run_transform``).
"""

from __future__ import annotations

import dataclasses
import os
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

from crypto_etl.pipelines.backfill import plan_windows, run_backfill, to_ms
from crypto_etl.coincap.client import CoinCapClient, RetryPolicy
from crypto_etl.config import (
    ReaderSettings,
    Secret,
    Settings,
    WarehouseSettings,
    load_settings,
)
from crypto_etl.analytics.dbt_runner import run_transform
from crypto_etl.pipelines.snapshot import run_snapshot
from crypto_etl.simulator import CoinCapSimulator
from crypto_etl.pipelines.catalog import PIPELINES
from crypto_etl.warehouse.connection import WarehouseConnection
from crypto_etl.warehouse.migrations import prepare_warehouse

from conftest import API_KEY, admin_connection, warehouse_settings

READER_USER = "dashboard_reader_test"
READER_PASSWORD = "reader-test-password"
FAST = RetryPolicy(max_attempts=3, backoff_base=0.01, backoff_cap=0.02)


def build_marts(settings: Settings) -> None:
    """Build the marts and record their data tests, as `crypto-etl transform` does."""
    run_transform(settings)


def with_reader(settings: Settings) -> Settings:
    """Create the read-only role and return settings that name it."""
    reader = ReaderSettings(READER_USER, Secret(READER_PASSWORD))
    with WarehouseConnection(settings.warehouse) as warehouse:
        prepare_warehouse(warehouse, reader)
    return dataclasses.replace(settings, reader=reader)


def recent_simulator_start(hours: int) -> int:
    """Unix ms ``hours`` ago: a simulator started there and ticked once a
    minute for ``hours`` ends at about the wall clock, so the dashboard's
    time ranges (which end at now) cover its data."""
    return to_ms(datetime.now(timezone.utc) - timedelta(hours=hours))


def load_from_simulator(
    simulator: object, settings: Settings, api_key: str, *, hours: int
) -> None:
    """Run the real pipelines against ``simulator`` for ``hours`` of its time.

    The exchanges pipeline runs every 20 simulated minutes; the others run
    at the start and the end; the backfill loads 10 days of hourly bitcoin
    and ethereum prices before the simulator's clock.
    """
    base_url: str = simulator.base_url  # type: ignore[attr-defined]
    tick = simulator.tick  # type: ignore[attr-defined]
    with (
        CoinCapClient(base_url, Secret(api_key), retry=FAST) as client,
        WarehouseConnection(settings.warehouse) as warehouse,
    ):
        for pipeline in PIPELINES.values():
            run_snapshot(pipeline, client, warehouse)
        for _ in range(hours * 3):
            for _ in range(20):
                tick()
            run_snapshot(PIPELINES["exchanges"], client, warehouse)
        for pipeline in PIPELINES.values():
            if pipeline.name != "exchanges":
                run_snapshot(pipeline, client, warehouse)
        end = simulator.clock_ms  # type: ignore[attr-defined]
        windows = plan_windows(
            ["bitcoin", "ethereum"], "h1", end - 10 * 86_400_000, end
        )
        run_backfill(client, warehouse, windows)


def settings_for(db: WarehouseSettings, tmp: Path) -> Settings:
    """Project settings for the database ``db`` (no env file, no reader yet)."""
    return load_settings(
        {
            "WAREHOUSE_HOST": db.host,
            "WAREHOUSE_PORT": str(db.port),
            "WAREHOUSE_DB": db.dbname,
            "WAREHOUSE_USER": db.user,
            "WAREHOUSE_PASSWORD": db.password.reveal(),
        },
        tmp / "no-env-file",
    )


@contextmanager
def loaded_warehouse(
    port: int, name: str, tmp: Path, *, hours: int = 3
) -> Iterator[Settings]:
    """A new database the pipelines filled from ``hours`` of a simulator's
    market (ending now), with the marts built.

    Yields settings with the reader role; drops the database afterwards.
    """
    name = f"{name}_{os.getpid()}"
    admin = admin_connection(port)
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}" TEMPLATE template_crypto')
    try:
        settings = settings_for(warehouse_settings(port, name), tmp)
        with CoinCapSimulator(
            api_key=API_KEY,
            n_exchanges=30,
            n_assets=40,
            start_ms=recent_simulator_start(hours),
        ) as sim:
            load_from_simulator(sim, settings, API_KEY, hours=hours)
        build_marts(settings)
        yield with_reader(settings)
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
