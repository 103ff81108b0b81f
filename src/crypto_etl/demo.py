"""`make demo`: the whole product offline, with no API key.

Starts a local warehouse of its own (``.data/demo``) and the CoinCap
simulator, then warms up before serving, so that every chart has a line and
every link answers from the first minute:

1. the simulator's clock starts 24 hours ago; it is stepped to now, and at
   every step (``WARM_STEP``) the exchanges and assets pipelines run, so the
   hourly marts have a day of history (every pipeline runs at the start
   and at the end: markets and rates are not drawn over time);
2. a week of hourly price history for the top 5 assets is backfilled;
3. the dbt models are built with their docs site (served at ``/docs/``).

It then keeps running the pipelines and the models on a short schedule in the
background, with the simulator's clock on wall time, and serves the built-in
dashboard until Ctrl-C. Nothing here spends real CoinCap credits.
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
from crypto_etl.errors import CryptoEtlError, DataQualityError
from crypto_etl.local.cluster import LocalWarehouse
from crypto_etl.pipelines.batch import BatchResult
from crypto_etl.pipelines.snapshot import run_many
from crypto_etl.warehouse.runlog import now_utc
from crypto_etl.simulator import CoinCapSimulator
from crypto_etl.pipelines.catalog import ASSETS, EXCHANGES, PIPELINES
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
        # The demo's docs site sits beside its cluster, apart from `make run`'s.
        docs_dir = data_dir.with_name(data_dir.name + "-docs")
        _run(settings, dashboard_port, schedule_seconds, on_ready, docs_dir)
    finally:
        # The demo leaves no process behind; its data stays for next time.
        cluster.stop()


# The warm start: how much simulated past, and how often a snapshot is taken
# in it. 15 minutes gives the hourly marts four snapshots an hour while the
# whole day loads in well under a minute (96 runs each of two pipelines).
WARM_HOURS = 24
WARM_STEP = timedelta(minutes=15)
# How often the simulator's market moves once the demo serves.
TICK_SECONDS = 10.0


def _run(
    settings: Settings,
    dashboard_port: int,
    schedule_seconds: float,
    on_ready: Callable[[str], None],
    docs_dir: Path,
) -> None:
    w = settings.warehouse
    start = now_utc() - timedelta(hours=WARM_HOURS)
    with CoinCapSimulator(api_key=DEMO_KEY, start_ms=to_ms(start)) as sim:
        on_ready(f"simulated CoinCap API: {sim.base_url}")
        demo = replace(settings, coincap_base_url=sim.base_url)
        with (
            CoinCapClient(sim.base_url, Secret(DEMO_KEY)) as client,
            WarehouseConnection(w) as warehouse,
        ):
            prepare_warehouse(warehouse, settings.reader)
            on_ready(f"loading the last {WARM_HOURS} hours of simulated market...")
            _warm_up(sim, client, warehouse)
            sim.start_ticking(TICK_SECONDS)
            end = now_utc()
            windows = plan_windows(
                top_assets(client, 5), "h1", to_ms(end - timedelta(days=7)), to_ms(end)
            )
            run_backfill(client, warehouse, windows)
            _transform(demo, docs_dir)
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
            dashboard = DashboardServer(
                settings, "127.0.0.1", dashboard_port, docs_dir=docs_dir
            )
            try:
                dashboard.serve_forever(lambda url: on_ready(f"dashboard: {url}"))
            finally:
                stop.set()
                worker.join(timeout=schedule_seconds)


def _warm_up(
    sim: CoinCapSimulator, client: CoinCapClient, warehouse: WarehouseConnection
) -> None:
    """Step the simulator from its start to the wall clock, loading as it goes.

    Raises:
        CryptoEtlError: a run failed (the demo cannot show a broken start).
    """
    step = WARM_STEP // timedelta(milliseconds=1)
    _check(run_many(PIPELINES.values(), client, warehouse))
    while sim.clock_ms + step <= to_ms(now_utc()):
        sim.tick(step_ms=step)
        _check(run_many([EXCHANGES, ASSETS], client, warehouse))
    sim.tick(step_ms=max(1, to_ms(now_utc()) - sim.clock_ms))
    _check(run_many(PIPELINES.values(), client, warehouse))


def _check(batch: BatchResult) -> None:
    error = batch.error()
    if error is not None:
        raise error


def _load_once(
    client: CoinCapClient, warehouse: WarehouseConnection, settings: Settings
) -> None:
    error = run_many(PIPELINES.values(), client, warehouse).error()
    if error is not None:
        # The demo keeps going; the dashboard's health panel shows the failure.
        log.error("demo load: %s", error)
    try:
        _transform(settings)
    except CryptoEtlError as exc:
        # Before the next schedule; the page shows the marts as they were.
        log.error("demo transform: %s", exc)


def _transform(settings: Settings, docs_dir: Path | None = None) -> None:
    try:
        run_transform(settings, docs=docs_dir is not None, docs_dir=docs_dir)
    except DataQualityError as exc:
        # A failed data test is shown on the dashboard; the demo goes on.
        log.error("demo transform: %s", exc)


def _every(seconds: float, stop: threading.Event, job: Callable[[], None]) -> None:
    while not stop.wait(seconds):
        job()
