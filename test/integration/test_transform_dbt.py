"""dbt models and data-quality tests against a real PostgreSQL.

Data comes from the real pipelines reading the simulator over HTTP, or, where
the marts' numbers are checked against hand-computed values, from the small
fixed dataset in test/fixtures/dbt/fixed_dataset.sql.
"""

from dataclasses import replace
import logging
import os
import uuid
from datetime import date, datetime, timezone
from decimal import Decimal

import psycopg2
import pytest

from crypto_etl.pipelines.backfill import plan_windows, run_backfill
from crypto_etl.coincap.client import CoinCapClient, RetryPolicy
from crypto_etl.config import Secret, Settings, WarehouseSettings
from crypto_etl.analytics.dbt_runner import (
    PROFILE_VARIABLES,
    TransformResult,
    find_project_dir,
    run_transform,
)
from crypto_etl.analytics.dq import DqResult, latest_dq_results, store_results
from crypto_etl.errors import (
    ConfigError,
    DataQualityError,
    RunSkipped,
    WarehouseError,
    WarehouseUnavailable,
)
from crypto_etl.pipelines.snapshot import run_snapshot
from crypto_etl.pipelines.catalog import PIPELINES

from conftest import API_KEY, FIXTURES, TEST_PASSWORD, free_port, query

FAST = RetryPolicy(max_attempts=3, backoff_base=0.01, backoff_cap=0.02)
MARTS = [
    "exchange_volume_hourly",
    "exchange_volume_daily",
    "exchanges_current",
    "assets_current",
    "asset_snapshots_hourly",
    "asset_price_history",
    "asset_ohlc_daily",
    "market_summary",
    "pipeline_health_daily",
]


def settings_for(warehouse: WarehouseSettings) -> Settings:
    return Settings(
        warehouse=warehouse,
        coincap_base_url="http://127.0.0.1:9/v3",
        coincap_api_key=None,
    )


@pytest.fixture
def wh_settings(db) -> Settings:
    return settings_for(db)


@pytest.fixture
def fixed(db, wh_settings) -> Settings:
    """The fixed dataset loaded into this test's database."""
    query(db, (FIXTURES / "dbt" / "fixed_dataset.sql").read_text())
    settings: Settings = wh_settings
    return settings


def load_snapshots(simulator, warehouse, *, rounds=1, pipelines=tuple(PIPELINES)):
    """Run the real snapshot pipelines ``rounds`` times, ticking in between."""
    with CoinCapClient(simulator.base_url, Secret(API_KEY), retry=FAST) as client:
        for n in range(rounds):
            if n:
                simulator.tick()
            for name in pipelines:
                run_snapshot(PIPELINES[name], client, warehouse)


def by_name(results) -> dict[str, DqResult]:
    return {r.test_name: r for r in results}


def test_transform_builds_every_mart_from_pipeline_data_and_stores_the_results(
    simulator, warehouse, db, wh_settings, tmp_path, caplog
):
    load_snapshots(simulator, warehouse, rounds=3)
    end = simulator.clock_ms
    windows = plan_windows(["bitcoin", "ethereum"], "h1", end - 2 * 86_400_000, end)
    with CoinCapClient(simulator.base_url, Secret(API_KEY), retry=FAST) as client:
        run_backfill(client, warehouse, windows)
    caplog.set_level(logging.DEBUG, logger="crypto_etl.dbt")

    result = run_transform(wh_settings, docs=True, docs_dir=tmp_path / "docs")

    assert set(MARTS) <= set(result.models)
    assert set(result.models.values()) == {"success"}
    assert {r.status for r in result.results} == {"pass"}
    for mart in MARTS:
        assert query(db, f"SELECT count(*) FROM analytics.{mart}")[0][0] > 0, mart
    # The current marts hold exactly the latest raw row of each key.
    assert query(db, "SELECT count(*) FROM analytics.exchanges_current") == [(60,)]
    assert query(
        db,
        "SELECT count(*) FROM analytics.exchanges_current c JOIN ("
        " SELECT DISTINCT ON (exchange_id) exchange_id, volume_usd FROM"
        " coincap.exchanges ORDER BY exchange_id, updated_unix_ms DESC) r"
        " USING (exchange_id) WHERE c.volume_usd IS NOT DISTINCT FROM r.volume_usd",
    ) == [(60,)]
    assert query(db, "SELECT count(*) FROM analytics.assets_current") == [(120,)]
    assert query(db, "SELECT count(*) FROM analytics.market_summary") == query(
        db,
        "SELECT count(DISTINCT (exchange_id, base_id, quote_id)) FROM coincap.markets",
    )
    assert query(
        db, "SELECT sum(runs), sum(credits) FROM analytics.pipeline_health_daily"
    ) == query(db, "SELECT count(*), sum(credits) FROM coincap.etl_runs")
    assert query(
        db, "SELECT DISTINCT source FROM analytics.asset_ohlc_daily ORDER BY 1"
    ) == [("history",), ("snapshots",)]
    # Every test and freshness check is stored under this run's id.
    stored = query(
        db,
        "SELECT count(*), min(invocation_id), max(invocation_id)"
        " FROM coincap.dq_results",
    )
    assert stored == [(len(result.results), result.invocation_id, result.invocation_id)]
    names = {r.test_name for r in result.results}
    assert "unique_exchanges_current_exchange_id" in names
    assert "source_freshness_coincap_assets" in names
    # The docs site the dashboard serves.
    assert result.docs_dir == tmp_path / "docs"
    for name in ("index.html", "catalog.json", "manifest.json"):
        assert (tmp_path / "docs" / name).stat().st_size > 0
    assert (
        "model.crypto_etl.exchanges_current"
        in (tmp_path / "docs" / "catalog.json").read_text()
    )
    # Credentials went to dbt only for the run, and never into a log line;
    # dbt wrote nothing into the project.
    assert not any(name in os.environ for name in PROFILE_VARIABLES.values())
    assert caplog.records and TEST_PASSWORD not in caplog.text
    project = find_project_dir()
    assert not (project / "target").exists() and not (project / "logs").exists()


def test_marts_match_hand_computed_values_for_a_fixed_dataset(fixed, db):
    run_transform(fixed)

    assert query(
        db,
        "SELECT to_char(hour AT TIME ZONE 'UTC', 'HH24'), exchange_id, exchange_name,"
        " volume_usd, share_pct FROM analytics.exchange_volume_hourly"
        " ORDER BY hour, exchange_id",
    ) == [
        ("10", "alpha", "Alpha", 300, 75),
        ("10", "beta", "Beta", 100, 25),
        ("11", "alpha", "Alpha", 200, 40),
        ("11", "beta", "Beta", 300, 60),
        ("12", "alpha", "Alpha", 500, Decimal("62.5")),
        ("12", "beta", "Beta", 300, Decimal("37.5")),
    ]
    assert query(
        db,
        "SELECT day, exchange_id, volume_usd, share_pct"
        " FROM analytics.exchange_volume_daily ORDER BY exchange_id",
    ) == [
        (date(2024, 1, 1), "alpha", 500, Decimal("62.5")),
        (date(2024, 1, 1), "beta", 300, Decimal("37.5")),
    ]
    assert query(
        db,
        "SELECT exchange_id, exchange_name, rank, volume_usd, share_pct,"
        " trading_pairs, updated_at FROM analytics.exchanges_current ORDER BY 1",
    ) == [
        ("alpha", "Alpha", 1, 500, Decimal("62.5"), 12, utc(2024, 1, 1, 12, 10)),
        ("beta", "Beta", 2, 300, Decimal("37.5"), 21, utc(2024, 1, 1, 12, 10)),
    ]
    assert query(
        db,
        "SELECT asset_id, symbol, asset_name, rank, price_usd, market_cap_usd,"
        " snapshot_at FROM analytics.assets_current ORDER BY rank",
    ) == [
        ("bitcoin", "BTC", "Bitcoin", 1, 1005, 10050, utc(2024, 1, 1, 11, 25)),
        ("ethereum", "ETH", "Ethereum", 2, 9, 450, utc(2024, 1, 1, 11, 25)),
    ]
    assert query(
        db,
        "SELECT to_char(hour AT TIME ZONE 'UTC', 'HH24'), asset_id, price_usd,"
        " market_cap_usd FROM analytics.asset_snapshots_hourly ORDER BY 1, 2",
    ) == [
        ("10", "bitcoin", 1010, 10100),
        ("10", "ethereum", 12, 600),
        ("11", "bitcoin", 1005, 10050),
        ("11", "ethereum", 9, 450),
    ]
    assert query(
        db,
        "SELECT day, asset_id, open, high, low, close, source"
        " FROM analytics.asset_ohlc_daily ORDER BY asset_id",
    ) == [
        (date(2024, 1, 1), "bitcoin", 100, 130, 90, 110, "history"),
        (date(2024, 1, 1), "ethereum", 10, 12, 8, 9, "snapshots"),
    ]
    assert query(db, "SELECT count(*) FROM analytics.asset_price_history") == [(5,)]
    assert query(
        db,
        "SELECT exchange_id, base_id, quote_id, base_symbol, quote_symbol, price_usd,"
        " volume_usd_24hr, percent_exchange_volume, trades_count_24hr, updated_at"
        " FROM analytics.market_summary",
    ) == [
        (
            "alpha",
            "bitcoin",
            "tether",
            "BTC",
            "USDT",
            1001,
            260,
            Decimal("86.6"),
            42,
            utc(2024, 1, 1, 11),
        )
    ]
    assert query(
        db,
        "SELECT day, pipeline, runs, succeeded, failed, skipped, rows_inserted,"
        " rows_rejected, credits FROM analytics.pipeline_health_daily ORDER BY 1, 2",
    ) == [
        (date(2024, 1, 1), "assets", 1, 1, 0, 0, 2, 1, 2),
        (date(2024, 1, 1), "exchanges", 2, 1, 1, 0, 2, 0, 2),
        (date(2024, 1, 2), "assets", 1, 0, 0, 1, 0, 0, 0),
    ]


def utc(year, month, day, hour=0, minute=0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=timezone.utc)


def test_a_second_run_reads_only_recent_rows_and_a_full_refresh_rebuilds(fixed, db):
    early = (
        "INSERT INTO coincap.exchanges (exchange_id, name, percent_total_volume,"
        " volume_usd, updated_unix_ms, updated_at) VALUES"
        " ('alpha', 'Alpha', 50, 100, 1704087000000, '2024-01-01 05:30+00'),"
        " ('beta', 'Beta', 50, 100, 1704087000000, '2024-01-01 05:30+00')"
    )
    query(db, early)
    run_transform(fixed)
    # Hour 05 lies before the lookback of the next run: a change made to the
    # mart there survives an incremental run, which never reads those rows.
    query(
        db,
        "UPDATE analytics.exchange_volume_hourly SET volume_usd = 999"
        " WHERE exchange_id = 'alpha' AND hour = '2024-01-01 05:00+00'",
    )
    query(
        db,
        "INSERT INTO coincap.exchanges (exchange_id, name, percent_total_volume,"
        " volume_usd, updated_unix_ms, updated_at) VALUES"
        " ('alpha', 'Alpha', 70, 700, 1704114600000, '2024-01-01 13:10+00'),"
        " ('beta', 'Beta', 30, 300, 1704114600000, '2024-01-01 13:10+00')",
    )

    def hourly_alpha():
        return query(
            db,
            "SELECT to_char(hour AT TIME ZONE 'UTC', 'HH24'), volume_usd"
            " FROM analytics.exchange_volume_hourly WHERE exchange_id = 'alpha'"
            " ORDER BY hour",
        )

    run_transform(fixed)
    assert hourly_alpha() == [
        ("05", 999),
        ("10", 300),
        ("11", 200),
        ("12", 500),
        ("13", 700),
    ]
    assert query(
        db, "SELECT volume_usd FROM analytics.exchanges_current ORDER BY exchange_id"
    ) == [(700,), (300,)]
    assert query(
        db,
        "SELECT day, volume_usd FROM analytics.exchange_volume_daily"
        " WHERE exchange_id = 'alpha'",
    ) == [(date(2024, 1, 1), 700)]

    run_transform(fixed, full_refresh=True)
    assert hourly_alpha() == [
        ("05", 100),
        ("10", 300),
        ("11", 200),
        ("12", 500),
        ("13", 700),
    ]


def test_bad_rows_are_caught_recorded_as_failures_and_raise(fixed, db, warehouse):
    first = run_transform(fixed)
    assert first.count("fail") == 0
    # A share of 150 %, a negative price, and a duplicate key in a model.
    query(
        db,
        "INSERT INTO coincap.exchanges (exchange_id, name, percent_total_volume,"
        " volume_usd, updated_unix_ms, updated_at) VALUES"
        " ('alpha', 'Alpha', 150, 500, 1704111600000, '2024-01-01 12:20+00')",
    )
    query(
        db,
        "INSERT INTO coincap.assets (asset_id, snapshot_at, symbol, supply, price_usd,"
        " market_cap_usd) VALUES"
        " ('bitcoin', '2024-01-01 11:40+00', 'BTC', 10, -5, -50),"
        " ('ethereum', '2024-01-01 11:40+00', 'ETH', 50, 9, 450)",
    )
    query(
        db,
        'INSERT INTO analytics.asset_price_history (asset_id, "interval", "time",'
        " price_usd) VALUES ('bitcoin', 'h1', '2024-01-01 06:00+00', 130)",
    )

    with pytest.raises(DataQualityError) as caught:
        run_transform(fixed)

    latest = by_name(latest_dq_results(warehouse))
    expected_failures = {
        "accepted_range_exchanges_current_share_pct__100__0": 1,
        "accepted_range_exchange_volume_hourly_share_pct__100__0": 1,
        "accepted_range_assets_current_price_usd__0": 1,
        "accepted_range_assets_current_market_cap_usd__0": 1,
        "accepted_range_asset_snapshots_hourly_price_usd__0": 1,
        "accepted_range_asset_snapshots_hourly_market_cap_usd__0": 1,
        "unique_combination_asset_price_history_asset_id___interval____time_": 1,
    }
    for name, failures in expected_failures.items():
        assert (latest[name].status, latest[name].failures) == ("fail", failures)
        assert latest[name].severity == "error"
        assert name in str(caught.value)
    assert {r.test_name for r in latest.values() if r.status == "fail"} == set(
        expected_failures
    )
    # The hour with the bad share no longer sums to 100: a warning only.
    sums = latest["sums_to_about_exchange_volume_hourly_share_pct__hour__100__1"]
    assert (sums.status, sums.severity, sums.failures) == ("warn", "warn", 1)
    # dbt build does not build on a model whose tests failed: the daily mart
    # and its tests are skipped, and say so.
    assert latest[
        "unique_combination_exchange_volume_daily_day__exchange_id"
    ].status == ("skipped")
    assert latest["unique_exchanges_current_exchange_id"].status == "pass"
    assert caught.value.exit_code == 7


def test_a_gap_in_recent_snapshots_is_recorded_as_a_warning(
    simulator, warehouse, db, wh_settings
):
    load_snapshots(simulator, warehouse, pipelines=["assets"])
    for _ in range(25):  # 25 simulated minutes without a run
        simulator.tick()
    load_snapshots(simulator, warehouse, pipelines=["assets"])

    result = run_transform(wh_settings)

    gaps = by_name(result.results)[
        "source_no_recent_gaps_coincap_assets_snapshot_at__20__24"
    ]
    assert (gaps.status, gaps.severity, gaps.failures) == ("warn", "warn", 1)
    assert gaps.model == "coincap.assets"
    assert result.count("fail") == result.count("error") == 0


def freshness_results(db):
    return {
        r[0]: r[1:]
        for r in query(
            db,
            "SELECT model, status, severity, message FROM coincap.dq_results"
            " WHERE starts_with(test_name, 'source_freshness_')",
        )
    }


def test_on_a_five_minute_schedule_stale_sources_warn_after_15_minutes_and_fail_after_an_hour(  # noqa: E501
    fixed, db, tmp_path
):
    crontab = tmp_path / "crontab"
    crontab.write_text(
        "*/5 * * * * crypto-etl run all\n0 3 * * * crypto-etl backfill\n"
    )
    query(db, "UPDATE coincap.exchanges SET loaded_at = now() - interval '20 minutes'")
    query(db, "UPDATE coincap.assets SET loaded_at = now() - interval '2 hours'")

    with pytest.raises(DataQualityError, match="source_freshness_coincap_assets"):
        run_transform(replace(fixed, crontab=crontab))

    fresh = freshness_results(db)
    assert fresh["coincap.assets"] == (
        "fail",
        "error",
        "newest row loaded 2.0 h ago (warn after 15 minutes, error after 1 hour)",
    )
    assert fresh["coincap.exchanges"][:2] == ("warn", "warn")
    assert fresh["coincap.markets"][:2] == ("pass", None)


def test_on_the_free_plans_daily_schedule_a_day_old_snapshot_is_fresh(
    fixed, db, tmp_path
):
    crontab = tmp_path / "crontab"
    crontab.write_text("1 0 * * * crypto-etl run exchanges,assets,markets,rates\n")
    query(db, "UPDATE coincap.exchanges SET loaded_at = now() - interval '20 hours'")
    query(db, "UPDATE coincap.assets SET loaded_at = now() - interval '40 hours'")
    query(db, "UPDATE coincap.markets SET loaded_at = now() - interval '3 days'")

    with pytest.raises(DataQualityError, match="source_freshness_coincap_markets"):
        run_transform(replace(fixed, crontab=crontab))

    fresh = freshness_results(db)
    assert fresh["coincap.exchanges"][:2] == ("pass", None)
    assert fresh["coincap.assets"] == (
        "warn",
        "warn",
        "newest row loaded 40.0 h ago (warn after 36 hours, error after 49 hours)",
    )
    assert fresh["coincap.markets"][:2] == ("fail", "error")


def test_select_builds_only_the_selection_and_checks_its_sources(fixed, db):
    result = run_transform(fixed, select="+exchanges_current")

    assert set(result.models) == {"stg_exchanges", "exchanges_current"}
    assert {r.model for r in result.results} == {
        "exchanges_current",
        "coincap.exchanges",
    }
    assert query(
        db,
        "SELECT count(*) FROM information_schema.tables"
        " WHERE table_schema = 'analytics'",
    ) == [(1,)]


def test_a_selection_that_matches_nothing_is_a_config_error(fixed):
    with pytest.raises(ConfigError, match="matches no model"):
        run_transform(fixed, select="no_such_model")


def test_a_model_that_fails_to_build_is_terminal_after_storing_the_results(fixed, db):
    run_transform(fixed)
    # An incremental model whose insert the database refuses.
    query(
        db,
        "CREATE FUNCTION analytics.refuse() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN RAISE EXCEPTION 'insert refused'; END $$;"
        " CREATE TRIGGER refuse BEFORE INSERT ON analytics.exchanges_current"
        " FOR EACH ROW EXECUTE FUNCTION analytics.refuse()",
    )

    with pytest.raises(
        WarehouseError, match="exchanges_current: .*insert refused"
    ) as e:
        run_transform(fixed)
    assert e.value.exit_code == 11  # a SQL error: waiting will not fix it

    statuses = dict(
        query(
            db,
            "SELECT test_name, status FROM coincap.dq_results WHERE invocation_id ="
            " (SELECT invocation_id FROM coincap.dq_results ORDER BY run_at DESC"
            "  LIMIT 1)",
        )
    )
    assert statuses["unique_exchanges_current_exchange_id"] == "skipped"
    assert statuses["unique_assets_current_asset_id"] == "pass"


def test_the_marts_and_results_are_readable_by_the_reader_role(fixed, db):
    run_transform(fixed)
    reader, password = f"reader_{uuid.uuid4().hex[:8]}", "reader-pw-1"
    query(db, f"CREATE ROLE {reader} LOGIN PASSWORD '{password}' IN ROLE coincap_read")
    try:
        conn = psycopg2.connect(
            host=db.host, port=db.port, dbname=db.dbname, user=reader, password=password
        )
        with conn, conn.cursor() as cur:
            for mart in MARTS:
                cur.execute(f"SELECT count(*) FROM analytics.{mart}")
                assert cur.fetchone() is not None
            cur.execute("SELECT count(*) FROM coincap.dq_results")
            row = cur.fetchone()
            assert row is not None and row[0] > 0
        conn.close()
    finally:
        query(db, f"DROP OWNED BY {reader}; DROP ROLE {reader}")


def test_a_warehouse_that_cannot_be_reached_raises_a_warehouse_error(db):
    closed = WarehouseSettings("127.0.0.1", free_port(), "nope", "nobody", Secret("x"))

    with pytest.raises(WarehouseUnavailable, match="cannot connect .* refused"):
        run_transform(settings_for(closed))

    assert query(db, "SELECT count(*) FROM coincap.dq_results") == [(0,)]


def test_a_transform_while_another_holds_the_lock_is_skipped_at_once(
    fixed, db, warehouse
):
    with warehouse.pipeline_lock("transform"):
        with pytest.raises(RunSkipped, match="another run"):
            run_transform(fixed)

    assert query(db, "SELECT count(*) FROM coincap.dq_results") == [(0,)]


def test_latest_results_are_those_of_the_newest_run_worst_first(warehouse, db):
    def result(run, name, status, minute):
        return DqResult(
            utc(2024, 1, 1, 10, minute),
            run,
            name,
            "m",
            status,
            "error",
            0,
            Decimal("0.1"),
            None,
        )

    store_results(
        warehouse, [result("old", "a", "fail", 0), result("old", "b", "pass", 0)]
    )
    store_results(
        warehouse,
        [
            result("new", "a", "pass", 5),
            result("new", "b", "error", 5),
            result("new", "c", "warn", 5),
        ],
    )

    latest = latest_dq_results(warehouse)

    assert [(r.invocation_id, r.test_name, r.status) for r in latest] == [
        ("new", "b", "error"),
        ("new", "c", "warn"),
        ("new", "a", "pass"),
    ]


def test_no_results_yet_gives_an_empty_list(warehouse):
    assert latest_dq_results(warehouse) == []


def test_the_summary_counts_models_and_checks():
    run_at = utc(2024, 1, 1)
    results = tuple(
        DqResult(run_at, "i", n, None, s, None, None, Decimal(0), None)
        for n, s in [("a", "pass"), ("b", "pass"), ("c", "warn")]
    )
    result = TransformResult("i", run_at, {"x": "success", "y": "skipped"}, results)
    assert (
        result.summary() == "transform: built 1 of 2 models; 3 checks: 2 pass, 1 warn"
    )
