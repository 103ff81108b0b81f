"""``/healthz``, ``/metrics`` and ``crypto-etl status --check`` on real data.

The pipelines load from a simulator whose market time is now; "later" is a
dashboard whose clock runs ahead, so nothing is faked in the warehouse.
"""

import dataclasses
from datetime import datetime, timedelta, timezone

import pytest
import requests
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from crypto_etl.coincap.client import CoinCapClient
from crypto_etl.config import Secret
from crypto_etl.dashboard.server import DashboardServer
from crypto_etl.pipelines.catalog import PIPELINES
from crypto_etl.pipelines.snapshot import run_snapshot
from crypto_etl.simulator import CoinCapSimulator
from crypto_etl.warehouse.connection import WarehouseConnection

from conftest import API_KEY, TEST_PASSWORD, free_port, query, warehouse_settings
from dashboard_data import READER_PASSWORD, settings_for, with_reader

# Each table's limits are the catalog's (see the fixture).
pytestmark = pytest.mark.usefixtures("every_five_minutes")


def now_ms() -> int:
    return int(datetime.now(timezone.utc).timestamp() * 1000)


@pytest.fixture
def simulator():
    with CoinCapSimulator(
        api_key=API_KEY, n_exchanges=20, n_assets=30, start_ms=now_ms()
    ) as sim:
        yield sim


@pytest.fixture
def fresh(db, tmp_path, simulator, every_five_minutes):
    """Settings (with the reader role) for a database every snapshot just filled."""
    settings = dataclasses.replace(
        with_reader(settings_for(db, tmp_path)), crontab=every_five_minutes
    )
    with (
        CoinCapClient(simulator.base_url, Secret(API_KEY)) as client,
        WarehouseConnection(db) as warehouse,
    ):
        for pipeline in PIPELINES.values():
            run_snapshot(pipeline, client, warehouse)
    return settings


def serve(settings, ahead=timedelta(0)):
    clock = lambda: datetime.now(timezone.utc) + ahead  # noqa: E731
    return DashboardServer(settings, port=0, clock=clock)


def get(server, path, **headers):
    return requests.get(server.url.rstrip("/") + path, headers=headers, timeout=10)


def test_healthz_is_200_while_the_data_is_fresh(fresh):
    with serve(fresh) as server:
        response = get(server, "/healthz")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok" and body["stale"] == []
    assert body["tables"]["coincap.rates"]["state"] == "ok"
    assert body["tables"]["coincap.rates"]["error_after_seconds"] == 3600
    # No history loaded yet: not an outage.
    assert body["tables"]["coincap.asset_history"]["state"] == "no_data"


def test_healthz_turns_503_naming_the_stale_tables(fresh):
    with serve(fresh, ahead=timedelta(hours=2)) as server:
        response = get(server, "/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "stale"
    assert body["stale"] == [
        "coincap.exchanges",
        "coincap.assets",
        "coincap.markets",
        "coincap.rates",
    ]
    assert "coincap.rates: newest row 2 h old (limit 60 min)" in body["message"]


def test_healthz_past_the_warn_limit_is_still_200(fresh):
    with serve(fresh, ahead=timedelta(minutes=30)) as server:
        response = get(server, "/healthz")
    assert response.status_code == 200
    assert response.json()["tables"]["coincap.rates"]["state"] == "warn"


def test_healthz_is_503_saying_why_when_the_schema_is_missing(
    db, tmp_path, every_five_minutes
):
    settings = dataclasses.replace(
        with_reader(settings_for(db, tmp_path)), crontab=every_five_minutes
    )
    query(db, "DROP TABLE coincap.rates CASCADE")
    with serve(settings) as server:
        response = get(server, "/healthz")
    assert response.status_code == 503
    assert response.json()["status"] == "error"
    assert "coincap.rates" in response.json()["warehouse"]


def families(text):
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_metrics_parse_and_tell_runs_rows_credits_freshness(fresh, db):
    with serve(fresh) as server:
        response = get(server, "/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    found = families(response.text)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in found.values()
        for s in f.samples
    }
    assert samples[("crypto_etl_warehouse_up", ())] == 1
    runs = ("crypto_etl_runs_total", (("pipeline", "rates"), ("status", "succeeded")))
    assert samples[runs] == 1
    [(inserted,)] = query(db, "SELECT count(*) FROM coincap.exchanges")
    assert samples[("crypto_etl_rows_loaded_total", (("pipeline", "exchanges"),))] == (
        inserted
    )
    [(spent,)] = query(db, "SELECT sum(credits) FROM coincap.etl_runs")
    assert samples[("crypto_etl_credits_spent_month", ())] == spent
    assert samples[("crypto_etl_credits_budget_month", ())] == 4000
    age = (
        "crypto_etl_data_age_seconds",
        (("pipeline", "rates"), ("table", "coincap.rates")),
    )
    assert 0 <= samples[age] < 600
    assert samples[("crypto_etl_data_stale", (("table", "coincap.rates"),))] == 0
    assert samples[("crypto_etl_dq_tests", (("status", "pass"),))] == 0


def test_metrics_speak_openmetrics_when_asked(fresh):
    with serve(fresh) as server:
        response = get(server, "/metrics", Accept="application/openmetrics-text")
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    names = {f.name for f in openmetrics_families(response.text)}
    assert {"crypto_etl_runs", "crypto_etl_data_age_seconds"} <= names


def test_metrics_with_the_warehouse_down_say_so_and_leak_nothing(fresh, db):
    down = dataclasses.replace(
        fresh, warehouse=warehouse_settings(free_port(), db.dbname)
    )
    with serve(down) as server:
        response = get(server, "/metrics")
    assert response.status_code == 200
    [sample] = families(response.text)["crypto_etl_warehouse_up"].samples
    assert sample.value == 0
    for secret in (READER_PASSWORD, TEST_PASSWORD, API_KEY):
        assert secret not in response.text


def test_no_secret_appears_in_metrics_or_health(fresh):
    with serve(fresh) as server:
        text = get(server, "/metrics").text + get(server, "/healthz").text
    for secret in (READER_PASSWORD, TEST_PASSWORD, API_KEY):
        assert secret not in text


def test_status_check_exits_7_naming_stale_tables(cli, db, monkeypatch):
    assert cli("run", "rates").code == 0
    assert cli("status", "--check").code == 0
    query(db, "UPDATE coincap.rates SET snapshot_at = snapshot_at - interval '2 hours'")
    result = cli("status", "--check")
    assert result.code == 7
    assert "coincap.rates: newest row 2 h old (limit 60 min)" in result.err
    # Without --check it shows the same verdict and succeeds.
    plain = cli("status")
    assert plain.code == 0
    assert "stale" in plain.out and "coincap.rates" in plain.out
