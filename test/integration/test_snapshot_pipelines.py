"""Assets, markets and rates: each loads and reloads idempotently; `run all`."""

from decimal import Decimal

import pytest

from crypto_etl import errors
from crypto_etl.coincap.client import CoinCapClient, RetryPolicy
from crypto_etl.config import Secret
from crypto_etl.pipelines.snapshot import run_many, run_snapshot
from crypto_etl.pipelines.catalog import PIPELINES

from conftest import API_KEY, query

FAST = RetryPolicy(max_attempts=2, backoff_base=0.01, backoff_cap=0.02)
KEYS = {
    "exchanges": "exchange_id, updated_unix_ms",
    "assets": "asset_id, snapshot_at",
    "markets": "exchange_id, base_id, quote_id, updated_unix_ms",
    "rates": "rate_id, snapshot_at",
}


def client(sim):
    return CoinCapClient(sim.base_url, Secret(API_KEY), retry=FAST)


def count(db, name):
    return query(db, f"SELECT count(*) FROM coincap.{name}")[0][0]


@pytest.mark.parametrize("name", ["assets", "markets", "rates"])
def test_each_pipeline_loads_every_row_once(name, simulator, warehouse, db):
    with client(simulator) as c:
        first = run_snapshot(PIPELINES[name], c, warehouse)
    assert first.rows_fetched > 0
    assert first.rows_inserted == first.rows_fetched == count(db, name)
    assert first.rows_rejected == 0
    dupes = query(
        db,
        f"SELECT count(*) FROM (SELECT {KEYS[name]} FROM coincap.{name}"
        f" GROUP BY {KEYS[name]} HAVING count(*) > 1) d",
    )
    assert dupes == [(0,)]


def test_markets_are_read_across_all_pages(simulator, warehouse, db):
    with client(simulator) as c:
        run = run_snapshot(PIPELINES["markets"], c, warehouse)
    assert run.rows_fetched > 2000  # more than one page of 2000
    assert run.spent.calls == simulator.calls >= 2


def test_markets_rerun_on_an_unchanged_api_adds_nothing(simulator, warehouse, db):
    with client(simulator) as c:
        run_snapshot(PIPELINES["markets"], c, warehouse)
        again = run_snapshot(PIPELINES["markets"], c, warehouse)
    assert again.rows_inserted == 0


@pytest.mark.parametrize("name", ["assets", "rates"])
def test_snapshot_tables_are_keyed_by_the_envelope_timestamp(
    name, simulator, warehouse, db
):
    with client(simulator) as c:
        first = run_snapshot(PIPELINES[name], c, warehouse)
        simulator.tick()
        second = run_snapshot(PIPELINES[name], c, warehouse)
    # Every page of one run shares one snapshot time, and a new run is a new
    # snapshot.
    assert query(db, f"SELECT count(DISTINCT snapshot_at) FROM coincap.{name}") == [
        (2,)
    ]
    assert count(db, name) == first.rows_inserted + second.rows_inserted


@pytest.mark.parametrize("name", ["assets", "rates"])
def test_reloading_the_same_snapshot_adds_nothing(name, simulator, warehouse, db):
    # The simulator's clock stands still between ticks, so a second run
    # sees the same envelope timestamp: the same snapshot.
    with client(simulator) as c:
        first = run_snapshot(PIPELINES[name], c, warehouse)
        again = run_snapshot(PIPELINES[name], c, warehouse)
    assert again.rows_fetched == first.rows_fetched
    assert again.rows_inserted == 0
    assert count(db, name) == first.rows_inserted


def test_asset_numbers_are_stored_exactly(simulator, warehouse, db):
    with client(simulator) as c:
        raw = c.get("/assets", {"limit": 1}).data[0]
        run_snapshot(PIPELINES["assets"], c, warehouse)
    stored = query(
        db,
        "SELECT price_usd::text, supply::text, market_cap_usd FROM coincap.assets"
        " WHERE asset_id = %s",
        (raw["id"],),
    )
    assert stored[0][0] == raw["priceUsd"]
    assert stored[0][1] == raw["supply"]
    assert stored[0][2] == Decimal(raw["marketCapUsd"])


def test_run_all_keeps_going_when_one_endpoint_fails(simulator, warehouse, db):
    simulator.fail_always(500, path="/markets")
    with client(simulator) as c:
        result = run_many(PIPELINES.values(), c, warehouse)
    error = result.error()
    assert isinstance(error, errors.PartialFailure)
    assert str(error).startswith("1 of 4 pipelines did not load: markets: ")
    assert [o.status for o in result.outcomes] == [
        "loaded",
        "loaded",
        "failed",
        "loaded",
    ]
    assert count(db, "exchanges") > 0
    assert count(db, "assets") > 0
    assert count(db, "rates") > 0
    assert count(db, "markets") == 0
    statuses = dict(query(db, "SELECT pipeline, status FROM coincap.etl_runs"))
    assert statuses == {
        "exchanges": "succeeded",
        "assets": "succeeded",
        "markets": "failed",
        "rates": "succeeded",
    }


def test_run_all_from_the_cli_exits_8_when_something_failed(cli, simulator, db):
    simulator.fail_always(500, path="/rates")
    result = cli("run", "all")
    assert result.code == 8
    assert result.err.splitlines()[-1].startswith(
        "error: 1 of 4 pipelines did not load: rates: CoinCap server error (HTTP 500)"
    )
    assert result.out.splitlines()[-1] == "rates: failed, nothing loaded"
    assert count(db, "exchanges") == 60


def test_run_all_records_credits_that_match_the_bytes_served(cli, simulator, db):
    assert cli("run", "all").code == 0
    rows = query(db, "SELECT sum(api_calls), sum(bytes_received) FROM coincap.etl_runs")
    assert rows == [(simulator.calls, simulator.bytes_sent)]
    from crypto_etl.coincap.credits import credits_for

    expected = sum(credits_for(e.body_bytes) for e in simulator.request_log)
    assert query(db, "SELECT sum(credits) FROM coincap.etl_runs") == [(expected,)]
    status = cli("status")
    assert f"credits: {expected} today, {expected} this month" in status.out
