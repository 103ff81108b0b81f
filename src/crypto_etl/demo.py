"""`make demo`: the whole product offline, with no API key.

Starts a local warehouse of its own (``.data/demo``), the CoinCap simulator
with a moving market, loads every pipeline, backfills a week of hourly
history for the top assets, builds the dbt models, keeps running the
pipelines and the models on a short schedule in the background, and serves
the built-in dashboard until Ctrl-C.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Callable

from crypto_etl.pipelines.backfill import plan_windows, run_backfill, to_ms, top_assets
from crypto_etl.coincap.client import CoinCapClient
from crypto_etl.config import Secret, Settings
from crypto_etl.dashboard.server import DashboardServer
from crypto_etl.analytics.dbt_runner import run_transform
from crypto_etl.errors import CryptoEtlError
from crypto_etl.local.cluster import LocalWarehouse
from crypto_etl.pipelines.snapshot import run_many
from crypto_etl.warehouse.runlog import now_utc
from crypto_etl.simulator import CoinCapSimulator
from crypto_etl.pipelines.catalog import PIPELINES
from crypto_etl.warehouse.connection import WarehouseConnection
from crypto_etl.warehouse.migrations import prepare_warehouse

log = logging.getLogger(__name__)

DEMO_KEY = "demo-key"


def run_demo(
    settings: Settings,
    *,
    data_dir: Path,
    dashboard_port: int = 8050,
    schedule_seconds: float = 60.0,
    on_ready: Callable[[str], None] = print,
) -> None:
    """Run the offline demo until interrupted (blocking).

    Args:
        settings: warehouse settings for the demo's own cluster (port, user,
            password, reader role); the API settings are ignored.
        data_dir: where the demo's PostgreSQL cluster lives.
        dashboard_port: the dashboard's port on 127.0.0.1.
        schedule_seconds: how often the pipelines and models run again.
        on_ready: called with each line worth showing the user.

    Raises:
        ConfigError: no reader role configured (the dashboard needs it).
        CryptoEtlError: the warehouse, the first load or the models failed.
    """
    # Asked before anything starts: the dashboard at the end needs the role.
    settings.require_reader("the demo's dashboard")
    w = settings.warehouse
    cluster = LocalWarehouse.for_settings(data_dir, w)
    cluster.start()
    on_ready(f"warehouse: {w.describe()} (data in {data_dir})")
    try:
        _run(settings, dashboard_port, schedule_seconds, on_ready)
    finally:
        # The demo leaves no process behind; its data stays for next time.
        cluster.stop()


def _run(
    settings: Settings,
    dashboard_port: int,
    schedule_seconds: float,
    on_ready: Callable[[str], None],
) -> None:
    w = settings.warehouse
    with CoinCapSimulator(api_key=DEMO_KEY, auto_tick_seconds=10) as sim:
        on_ready(f"simulated CoinCap API: {sim.base_url}")
        demo = replace(settings, coincap_base_url=sim.base_url)
        with (
            CoinCapClient(sim.base_url, Secret(DEMO_KEY)) as client,
            WarehouseConnection(w) as warehouse,
        ):
            prepare_warehouse(warehouse, settings.reader)
            error = run_many(PIPELINES.values(), client, warehouse).error()
            if error is not None:
                raise error
            end = now_utc()
            windows = plan_windows(
                top_assets(client, 5), "h1", to_ms(end - timedelta(days=7)), to_ms(end)
            )
            run_backfill(client, warehouse, windows)
            _transform(demo)
            stop = threading.Event()
            worker = threading.Thread(
                target=_every,
                args=(
                    schedule_seconds,
                    stop,
                    lambda: _load_once(client, warehouse, demo),
                ),
                daemon=True,
            )
            worker.start()
            dashboard = DashboardServer(settings, "127.0.0.1", dashboard_port)
            try:
                dashboard.serve_forever(lambda url: on_ready(f"dashboard: {url}"))
            finally:
                stop.set()
                worker.join(timeout=schedule_seconds)


def _load_once(
    client: CoinCapClient, warehouse: WarehouseConnection, settings: Settings
) -> None:
    error = run_many(PIPELINES.values(), client, warehouse).error()
    if error is not None:
        # The demo keeps going; the dashboard's health panel shows the failure.
        log.error("demo load: %s", error)
    _transform(settings)


def _transform(settings: Settings) -> None:
    try:
        run_transform(settings)
    except CryptoEtlError as exc:
        # A failed data test is shown on the dashboard; the demo goes on.
        log.error("demo transform: %s", exc)


def _every(seconds: float, stop: threading.Event, job: Callable[[], None]) -> None:
    while not stop.wait(seconds):
        job()
