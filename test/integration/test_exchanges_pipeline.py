"""The exchanges pipeline end to end: simulator over HTTP into a real PostgreSQL."""

import csv
import json
import threading
from decimal import Decimal

import pytest

from crypto_etl import errors
from crypto_etl.coincap.client import CoinCapClient, RetryPolicy
from crypto_etl.config import Secret
from crypto_etl.exchange_data_etl import EXCHANGES, get_exchange_data, run
from crypto_etl.pipelines.snapshot import run_snapshot
from crypto_etl.warehouse.connection import WarehouseConnection, lock_key

from conftest import API_KEY, FIXTURES, query

FAST = RetryPolicy(max_attempts=3, backoff_base=0.01, backoff_cap=0.02)


def count(db, table="coincap.exchanges"):
    return query(db, f"SELECT count(*) FROM {table}")[0][0]


def runs(db):
    return query(
        db,
        "SELECT status, rows_fetched, rows_inserted, rows_rejected, api_calls,"
        " bytes_received, error_message FROM coincap.etl_runs ORDER BY run_id",
    )


def run_once(simulator, warehouse, key=API_KEY):
    with CoinCapClient(simulator.base_url, Secret(key), retry=FAST) as client:
        return run_snapshot(EXCHANGES, client, warehouse)


def test_first_run_loads_every_exchange_and_logs_the_run(simulator, warehouse, db):
    result = run_once(simulator, warehouse)
    assert count(db) == 60
    assert result.rows_inserted == 60
    [(status, fetched, inserted, rejected, calls, nbytes, error)] = runs(db)
    assert (status, fetched, inserted, rejected, error) == (
        "succeeded",
        60,
        60,
        0,
        None,
    )
    assert calls == simulator.calls == 1
    assert nbytes == simulator.bytes_sent


def test_rerun_against_an_unchanged_api_adds_no_rows(simulator, warehouse, db):
    run_once(simulator, warehouse)
    before = query(db, "SELECT * FROM coincap.exchanges ORDER BY 1, 9")
    second = run_once(simulator, warehouse)
    assert second.rows_inserted == 0
    assert query(db, "SELECT * FROM coincap.exchanges ORDER BY 1, 9") == before


def test_a_changed_snapshot_adds_exactly_the_changed_rows(simulator, warehouse, db):
    run_once(simulator, warehouse)
    simulator.tick(changed_exchanges=3)
    second = run_once(simulator, warehouse)
    assert second.rows_inserted == 3
    assert count(db) == 63
    per_exchange = query(
        db,
        "SELECT exchange_id FROM coincap.exchanges"
        " GROUP BY exchange_id HAVING count(*) > 1",
    )
    assert len(per_exchange) == 3


def test_the_original_seed_fixture_loads_to_exactly_its_values(
    simulator, warehouse, db
):
    with open(FIXTURES / "sample_raw_exchange_data.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    simulator.set_exchanges(rows)
    run_once(simulator, warehouse)
    stored = query(
        db,
        "SELECT exchange_id, name, rank, percent_total_volume::text, volume_usd::text,"
        " trading_pairs, socket, exchange_url, updated_unix_ms,"
        " to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS')"
        " FROM coincap.exchanges ORDER BY rank",
    )
    assert len(stored) == len(rows) == 4
    for row, got in zip(rows, stored):
        assert got[:9] == (
            row["exchangeId"],
            row["name"],
            int(row["rank"]),
            row["percentTotalVolume"],
            row["volumeUsd"],
            int(row["tradingPairs"]),
            row["socket"] == "1",
            row["exchangeUrl"],
            int(row["updated"]),
        )
    assert stored[0][9] == "2021-07-08T23:45:43.298"
    assert query(db, "SELECT volume_usd FROM coincap.exchanges WHERE rank = 1") == [
        (Decimal("12712561147.7913049212358699"),)
    ]


def test_bad_rows_are_quarantined_and_the_rest_of_the_batch_loads(
    simulator, warehouse, db
):
    good = json.loads((FIXTURES / "exchanges.json").read_text())["data"]
    bad = [
        {**good[0], "exchangeId": None},
        {**good[0], "exchangeId": "weird", "volumeUsd": "n/a"},
    ]
    simulator.set_exchanges(good + bad)
    result = run_once(simulator, warehouse)
    assert (result.rows_inserted, result.rows_rejected) == (2, 2)
    assert count(db) == 2
    rejects = query(
        db, "SELECT raw, reason, times_seen FROM coincap.rejects ORDER BY reason"
    )
    assert [(r[1], r[2]) for r in rejects] == [
        ("missing exchangeId", 1),
        ("volumeUsd 'n/a' is not a number", 1),
    ]
    assert rejects[1][0]["exchangeId"] == "weird"
    run_once(simulator, warehouse)
    assert query(db, "SELECT count(*), min(times_seen) FROM coincap.rejects") == [
        (2, 2)
    ]
    assert [r[3] for r in runs(db)] == [2, 2]


def test_a_payload_that_is_not_the_envelope_fails_and_writes_no_data(
    simulator, warehouse, db
):
    simulator.fail_next(200, body=b'{"data": {"unexpected": true}, "timestamp": 1}')
    with pytest.raises(errors.BadPayloadError):
        run_once(simulator, warehouse)
    assert count(db) == 0
    [(status, *_, error)] = runs(db)
    assert status == "failed" and "expected a list" in error


def test_a_failure_mid_load_leaves_nothing_half_written(simulator, warehouse, db):
    # A trigger that fails on one row, after many others were inserted.
    query(
        db,
        "CREATE FUNCTION coincap.boom() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN IF NEW.rank = 50 THEN RAISE EXCEPTION 'disk full'; END IF;"
        " RETURN NEW; END $$;"
        " CREATE TRIGGER boom BEFORE INSERT ON coincap.exchanges"
        " FOR EACH ROW EXECUTE FUNCTION coincap.boom()",
    )
    with pytest.raises(errors.WarehouseError, match="disk full"):
        run_once(simulator, warehouse)
    assert count(db) == 0
    assert count(db, "coincap.rejects") == 0
    [(status, *_, error)] = runs(db)
    assert status == "failed" and "disk full" in error


def test_401_fails_the_run_and_loads_nothing(simulator, warehouse, db):
    with pytest.raises(errors.AuthError):
        run_once(simulator, warehouse, key="not-the-key")
    assert count(db) == 0
    assert runs(db)[0][0] == "failed"


def test_a_second_run_while_one_holds_the_lock_is_skipped_at_once(
    simulator, warehouse, db
):
    simulator.delay_next(1.5)
    first_done = []
    first = threading.Thread(
        target=lambda: first_done.append(run_once(simulator, WarehouseConnection(db)))
    )
    first.start()
    # Wait (with a deadline) until the first run holds its lock.
    held = False
    for _ in range(200):
        rows = query(
            db,
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted",
        )
        if rows[0][0]:
            held = True
            break
        threading.Event().wait(0.01)
    assert held
    with pytest.raises(errors.RunSkipped):
        run_once(simulator, warehouse)
    first.join()
    assert first_done[0].rows_inserted == 60
    assert sorted(r[0] for r in runs(db)) == ["skipped", "succeeded"]


def test_the_lock_key_is_stable_and_per_pipeline():
    assert lock_key("exchanges") == lock_key("exchanges")
    assert lock_key("exchanges") != lock_key("assets")


def test_run_and_get_exchange_data_keep_their_original_names(settings, db):
    rows = get_exchange_data(
        CoinCapClient(settings.coincap_base_url, settings.api_key())
    )
    assert len(rows) == 60 and "exchangeId" in rows[0]
    result = run(settings)
    assert result.status == "succeeded" and count(db) == 60


def test_values_the_database_cannot_hold_are_rejected_not_fatal(
    simulator, warehouse, db
):
    good = json.loads((FIXTURES / "exchanges.json").read_text())["data"]
    big_rank = {**good[0], "exchangeId": "big", "rank": "3000000000"}
    simulator.set_exchanges(
        [
            big_rank,
            {**good[0], "exchangeId": "huge", "rank": "99999999999999999999"},
            {**good[0], "exchangeId": "nul", "name": "bad\u0000name"},
            {**good[0], "exchangeId": "wide", "volumeUsd": "1e200000"},
        ]
    )
    result = run_once(simulator, warehouse)
    assert (result.rows_inserted, result.rows_rejected) == (1, 3)
    assert query(db, "SELECT exchange_id, rank FROM coincap.exchanges") == [
        ("big", 3000000000)
    ]
    reasons = query(db, "SELECT raw->>'exchangeId', reason FROM coincap.rejects")
    assert sorted(reasons) == [
        ("huge", "rank '99999999999999999999' is out of range"),
        ("nul", "name contains a NUL character"),
        ("wide", "volumeUsd '1e200000' is out of range"),
    ]
    assert query(
        db, "SELECT raw->>'name' FROM coincap.rejects WHERE raw->>'exchangeId' = 'nul'"
    ) == [("bad\\u0000name",)]
