"""The built-in dashboard's HTTP API over a real warehouse, without a browser.

The warehouse is filled by the real pipelines from the simulator, the marts
by dbt (`crypto-etl transform`), and the dashboard reads it through the
read-only role over HTTP on 127.0.0.1.
"""

import csv
import dataclasses
import io
import json
from decimal import Decimal
from pathlib import Path

import pytest
import requests

from crypto_etl.dashboard.definition import load_definition
from crypto_etl.dashboard.server import DashboardServer
from crypto_etl.analytics.dbt_runner import run_transform
from crypto_etl.errors import ConfigError, WarehouseError

from conftest import admin_connection, free_port, query, warehouse_settings
from dashboard_data import (
    READER_PASSWORD,
    build_marts,
    loaded_warehouse,
    settings_for,
    with_reader,
)

CHART_IDS = [c.id for c in load_definition().charts]


@pytest.fixture(scope="module")
def loaded(pg_server, tmp_path_factory):
    """A database the pipelines filled from the simulator, with its marts built."""
    with loaded_warehouse(pg_server[1], "dash", tmp_path_factory.mktemp("d")) as s:
        yield s


@pytest.fixture(scope="module")
def dashboard(loaded):
    with DashboardServer(loaded, port=0) as server:
        yield server


def get(server, path, **params):
    return requests.get(server.url.rstrip("/") + path, params=params, timeout=10)


@pytest.mark.parametrize("chart_id", CHART_IDS)
def test_every_chart_answers_with_rows_from_the_pipelines_data(dashboard, chart_id):
    response = get(dashboard, f"/api/charts/{chart_id}")
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["chart"] == chart_id
    assert data["row_count"] == len(data["rows"]) > 0
    assert all(len(row) == len(data["columns"]) for row in data["rows"])


def test_numeric_values_keep_every_digit_postgres_stored(dashboard, loaded):
    data = get(dashboard, "/api/charts/top_assets").json()
    prices = {row[1]: row[3] for row in data["rows"]}  # symbol -> price_usd
    stored = dict(
        query(
            loaded.warehouse,
            "SELECT symbol, price_usd::text FROM analytics.assets_current",
        )
    )
    assert prices == {symbol: stored[symbol] for symbol in prices}
    # More significant digits than a float holds, so they were not floats.
    assert any(len(p.replace(".", "").lstrip("0")) > 17 for p in prices.values())
    assert data["kinds"][data["columns"].index("price_usd")] == "number"


def test_the_time_range_bounds_the_rows_server_side(dashboard, loaded):
    counts = {
        since: get(dashboard, "/api/charts/price_history", since=since).json()[
            "row_count"
        ]
        for since in ("24h", "7d", "30d", "all")
    }
    stored = query(
        loaded.warehouse,
        "SELECT count(*) FILTER (WHERE time >= now() - interval '24 hours'),"
        " count(*) FILTER (WHERE time >= now() - interval '7 days'),"
        " count(*) FILTER (WHERE time >= now() - interval '30 days'), count(*)"
        " FROM analytics.asset_price_history WHERE asset_id = 'bitcoin'",
    )[0]
    assert tuple(counts.values()) == stored
    assert 0 < counts["24h"] < counts["7d"] < counts["all"]
    data = get(dashboard, "/api/charts/price_history", since="24h", asset="ethereum")
    assert data.json()["filters"] == {"asset": "ethereum", "since": "24h"}


def test_the_exchange_filter_narrows_the_total_volume(dashboard, loaded):
    exchange_id, hours = query(
        loaded.warehouse,
        "SELECT exchange_id, count(*) FROM analytics.exchange_volume_hourly"
        " GROUP BY 1 ORDER BY 1 LIMIT 1",
    )[0]
    one = get(dashboard, "/api/charts/total_volume", since="all", exchange=exchange_id)
    volumes = query(
        loaded.warehouse,
        "SELECT volume_usd::text FROM analytics.exchange_volume_hourly"
        " WHERE exchange_id = %s ORDER BY hour",
        (exchange_id,),
    )
    assert [row[1] for row in one.json()["rows"]] == [v for (v,) in volumes]
    assert one.json()["row_count"] == hours


@pytest.mark.parametrize(
    "attempt",
    [
        "binance' OR '1'='1",
        "x'; DROP TABLE analytics.exchange_volume_hourly; --",
        "%(since)s",
        "{{since}}",
    ],
)
def test_an_injection_attempt_in_a_filter_is_just_a_value_that_matches_nothing(
    dashboard, loaded, attempt
):
    response = get(dashboard, "/api/charts/total_volume", since="all", exchange=attempt)
    assert response.status_code == 200, response.text
    assert response.json()["rows"] == []
    assert (
        query(
            loaded.warehouse, "SELECT count(*) FROM analytics.exchange_volume_hourly"
        )[0][0]
        > 0
    )


@pytest.mark.parametrize(
    "path, params, message",
    [
        ("/api/charts/total_volume", {"since": "1y"}, "since must be one of"),
        ("/api/charts/total_volume", {"since": "7 days'"}, "since must be one of"),
        ("/api/charts/no_such_chart", {}, "unknown chart"),
        ("/api/charts/no_such_chart.csv", {}, "unknown chart"),
        ("/api/charts/total_volume", {"limit": "5"}, "unknown parameter"),
        ("/api/charts/total_volume", {"since": ["7d", "24h"]}, "more than once"),
        ("/api/charts/total_volume", {"exchange": "x" * 201}, "longer than"),
        ("/api/filters/no_such_filter", {}, "unknown filter"),
    ],
)
def test_bad_requests_answer_400_with_a_json_error(dashboard, path, params, message):
    response = get(dashboard, path, **params)
    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("application/json")
    assert message in response.json()["error"]


def test_csv_download_has_the_same_rows_as_the_json(dashboard):
    data = get(dashboard, "/api/charts/top_exchanges").json()
    response = get(dashboard, "/api/charts/top_exchanges.csv")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    assert 'filename="top_exchanges.csv"' in response.headers["Content-Disposition"]
    header, *rows = list(csv.reader(io.StringIO(response.text)))
    assert header == data["columns"]
    assert rows == [[str(v) for v in row] for row in data["rows"]]
    assert all(Decimal(share) > 0 for _, share in rows)


def test_filter_options_come_from_the_marts(dashboard, loaded):
    options = get(dashboard, "/api/filters/exchange").json()["options"]
    ids = {o["value"] for o in options}
    assert ids == {
        r[0]
        for r in query(
            loaded.warehouse, "SELECT exchange_id FROM analytics.exchanges_current"
        )
    }
    assets = get(dashboard, "/api/filters/asset").json()["options"]
    assert {"value": "bitcoin", "label": "BTC Bitcoin"} in assets
    ranges = get(dashboard, "/api/filters/since").json()["options"]
    assert [o["value"] for o in ranges] == ["24h", "7d", "30d", "all"]


def test_the_dashboard_connection_cannot_write(dashboard, loaded):
    runs = "SELECT count(*), max(status) FROM coincap.etl_runs"
    before = query(loaded.warehouse, runs)
    with pytest.raises(WarehouseError, match="read-only transaction"):
        dashboard.pool.query("UPDATE coincap.etl_runs SET status = 'failed'", {})
    # Even a transaction that asks to write is refused: the role may only read.
    with pytest.raises(WarehouseError, match="permission denied"):
        dashboard.pool.query(
            "BEGIN READ WRITE; UPDATE coincap.etl_runs SET status = 'failed'; COMMIT",
            {},
        )
    assert query(loaded.warehouse, runs) == before
    # The failed transaction block did not stay open on a pooled connection.
    assert dashboard.pool.query("SELECT 1 AS one", {}).rows == [(1,)]
    assert dashboard.pool.settings.user == loaded.reader.user != loaded.warehouse.user


def test_a_dropped_connection_is_replaced_without_an_error(dashboard, pg_server):
    assert get(dashboard, "/api/charts/top_exchanges").status_code == 200
    admin = admin_connection(pg_server[1])
    with admin.cursor() as cur:
        cur.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = 'crypto-etl-dashboard'"
        )
        assert cur.fetchone()[0] >= 1
    admin.close()
    assert get(dashboard, "/api/charts/top_exchanges").status_code == 200


def test_the_page_has_the_filters_and_one_card_per_chart(dashboard):
    response = get(dashboard, "/")
    assert response.status_code == 200
    html = response.text
    assert "<title>CoinCap market overview</title>" in html
    for chart_id in CHART_IDS:
        assert f'data-chart="{chart_id}"' in html
    for name in ("since", "exchange", "asset"):
        assert f'name="{name}"' in html
    assert '<option value="7d" selected>' in html
    assert '<body data-ready="0"' in html
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]


def test_the_page_escapes_what_the_request_carries(dashboard):
    html = get(dashboard, "/", asset='"><script>alert(1)</script>').text
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_static_files_are_served_by_exact_name_only(dashboard):
    script = get(dashboard, "/static/uPlot.iife.min.js")
    assert script.status_code == 200 and "javascript" in script.headers["Content-Type"]
    assert "uPlot" in script.text
    assert get(dashboard, "/static/uPlot.LICENSE").status_code == 200
    for path in ("/static/../server.py", "/static/%2e%2e/server.py", "/static/"):
        assert get(dashboard, path).status_code == 404


def test_health_check_reports_the_warehouse_and_fresh_data(dashboard):
    response = get(dashboard, "/healthz")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["warehouse"], body["stale"]) == ("ok", "ok", [])
    assert body["tables"]["coincap.exchanges"]["state"] in ("ok", "warn")


def test_it_binds_to_localhost_unless_told_otherwise(loaded):
    with DashboardServer(loaded, port=0) as server:
        assert server.url.startswith("http://127.0.0.1:")


def test_it_refuses_to_start_without_the_reader_role(db, tmp_path):
    with pytest.raises(ConfigError, match="WAREHOUSE_READER_USER"):
        DashboardServer(settings_for(db, tmp_path), port=0)


def test_a_port_in_use_is_a_config_error(loaded):
    with DashboardServer(loaded, port=0) as first:
        port = int(first.url.rsplit(":", 1)[1].strip("/"))
        with pytest.raises(ConfigError, match="cannot listen"):
            DashboardServer(loaded, port=port).start()


def test_an_empty_warehouse_answers_empty_charts_not_errors(db, tmp_path):
    settings = with_reader(settings_for(db, tmp_path))
    build_marts(settings)
    with DashboardServer(settings, port=0) as server:
        for chart_id in CHART_IDS:
            if chart_id == "data_quality":
                continue  # the transform itself records its data tests
            response = get(server, f"/api/charts/{chart_id}")
            assert response.status_code == 200, (chart_id, response.text)
            assert response.json()["rows"] == [], chart_id


def test_missing_marts_answer_503_with_the_transform_hint(db, tmp_path):
    settings = with_reader(settings_for(db, tmp_path))
    with DashboardServer(settings, port=0) as server:
        response = get(server, "/api/charts/total_volume")
        assert response.status_code == 503
        body = response.json()
        assert body["state"] == "not_ready"
        assert "crypto-etl transform" in body["error"]
        # Pipeline health reads the raw run log, which exists from `migrate` on.
        assert get(server, "/api/charts/pipeline_health").status_code == 200


def test_with_the_database_down_the_page_renders_and_charts_say_why(db, tmp_path):
    settings = with_reader(settings_for(db, tmp_path))
    down = dataclasses.replace(
        settings, warehouse=warehouse_settings(free_port(), db.dbname)
    )
    with DashboardServer(down, port=0) as server:
        page = get(server, "/")
        assert page.status_code == 200 and 'data-chart="total_volume"' in page.text
        response = get(server, "/api/charts/total_volume")
        assert response.status_code == 503
        body = response.json()
        assert body["state"] == "unavailable"
        assert "cannot connect to the warehouse" in body["error"]
        assert READER_PASSWORD not in response.text and "Traceback" not in response.text
        health = get(server, "/healthz")
        assert health.status_code == 503
        assert health.json()["status"] == "unavailable"
        assert health.json()["warehouse"].startswith("cannot connect")
        assert READER_PASSWORD not in health.text
        assert get(server, "/livez").status_code == 200


def test_the_vendored_chart_library_is_the_locked_npm_release():
    root = Path(__file__).resolve().parents[2]
    pinned = json.loads((root / "package.json").read_text())["dependencies"]["uplot"]
    lock = json.loads((root / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/uplot"]["version"] == pinned
    static = root / "src" / "crypto_etl" / "dashboard" / "static"
    header = (static / "uPlot.iife.min.js").read_text()[:80]
    assert f"(v{pinned})" in header
    assert "MIT License" in (static / "uPlot.LICENSE").read_text()


def test_dbt_docs_are_served_once_generated(loaded, tmp_path):
    docs = tmp_path / "docs"
    with DashboardServer(loaded, port=0, docs_dir=docs) as server:
        missing = get(server, "/docs/")
        assert missing.status_code == 404
        assert "crypto-etl transform --docs" in missing.json()["error"]
        run_transform(loaded, docs=True, docs_dir=docs)
        page = get(server, "/docs/")
        assert page.status_code == 200 and "dbt" in page.text.lower()
        manifest = get(server, "/docs/manifest.json")
        assert "model.crypto_etl.exchanges_current" in manifest.json()["nodes"]
        assert get(server, "/docs/../../etc/passwd").status_code == 404
        assert get(server, "/docs/profiles.yml").status_code == 404
    assert 'href="/docs/"' in get_page_html(loaded)


def get_page_html(settings):
    with DashboardServer(settings, port=0) as server:
        return get(server, "/").text


def test_a_request_for_another_host_name_is_refused(dashboard):
    # DNS rebinding: a page elsewhere points its own name at 127.0.0.1.
    url = dashboard.url.rstrip("/") + "/api/charts/top_exchanges"
    refused = requests.get(url, headers={"Host": "evil.example:8050"}, timeout=10)
    assert refused.status_code == 421
    assert requests.get(url, headers={"Host": "localhost"}, timeout=10).ok
    assert requests.get(url, timeout=10).ok
