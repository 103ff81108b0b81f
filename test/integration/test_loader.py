"""The loader on a real PostgreSQL: new rows, reruns, overlaps, duplicates, rollback."""

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from crypto_etl.pipelines.catalog import BACKFILL
from crypto_etl.errors import WarehouseError
from crypto_etl.warehouse.loader import load
from crypto_etl.records.rows import HistoryPoint

from conftest import query

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def points(start, count, price="1.5"):
    return [
        HistoryPoint("bitcoin", "m1", T0 + timedelta(minutes=i), Decimal(price))
        for i in range(start, start + count)
    ]


def stored(db):
    return query(
        db, 'SELECT count(*), min("time"), max("time") FROM coincap.asset_history'
    )


def load_all(warehouse, records, **kwargs):
    chunks = []
    with warehouse.managed_cursor() as cur:
        inserted = load(
            cur, BACKFILL.table, records, on_chunk=lambda *c: chunks.append(c), **kwargs
        )
    return inserted, chunks


def test_new_rows_load_in_chunks_and_report_each(warehouse, db):
    inserted, chunks = load_all(warehouse, points(0, 250), chunk_rows=100)
    assert inserted == 250
    assert chunks == [(100, 100), (100, 100), (50, 50)]
    assert stored(db)[0][0] == 250


def test_a_rerun_inserts_nothing(warehouse, db):
    load_all(warehouse, points(0, 250), chunk_rows=100)
    inserted, chunks = load_all(warehouse, points(0, 250), chunk_rows=100)
    assert inserted == 0
    assert chunks == [(100, 0), (100, 0), (50, 0)]
    assert stored(db)[0][0] == 250


def test_partial_overlap_inserts_only_new_keys(warehouse, db):
    load_all(warehouse, points(100, 100))
    # The first key is new, a later one is not: the COPY fails on it, the
    # chunk is merged instead, and only the new keys land.
    inserted, _ = load_all(warehouse, points(0, 300), chunk_rows=150)
    assert inserted == 200
    assert stored(db) == [(300, T0, T0 + timedelta(minutes=299))]


def test_existing_rows_are_not_overwritten(warehouse, db):
    load_all(warehouse, points(0, 10, price="1.5"))
    load_all(warehouse, points(0, 20, price="9.9"))
    prices = query(
        db,
        "SELECT price_usd, count(*) FROM coincap.asset_history GROUP BY 1 ORDER BY 1",
    )
    assert prices == [(Decimal("1.5"), 10), (Decimal("9.9"), 10)]


def test_duplicate_keys_in_one_input_are_inserted_once(warehouse, db):
    inserted, _ = load_all(warehouse, points(0, 5) + points(0, 5))
    assert inserted == 5
    assert stored(db)[0][0] == 5


def test_empty_input_loads_nothing(warehouse, db):
    assert load_all(warehouse, []) == (0, [])
    assert stored(db)[0][0] == 0


def test_a_failure_after_the_load_rolls_everything_back(warehouse, db):
    with pytest.raises(WarehouseError):
        with warehouse.managed_cursor() as cur:
            load(cur, BACKFILL.table, points(0, 500), chunk_rows=100)
            cur.execute("SELECT 1 / 0")
    assert stored(db)[0][0] == 0


def test_text_with_tabs_newlines_and_backslashes_round_trips(warehouse, db):
    from crypto_etl.exchange_data_etl import EXCHANGES
    from crypto_etl.records.rows import Exchange

    tricky = "a\tb\nc\\d\re ünï €"
    row = Exchange("x", tricky, 1, None, Decimal("1E+3"), 2, True, None, 5, None)
    with warehouse.managed_cursor() as cur:
        assert load(cur, EXCHANGES.table, [row]) == 1
    assert query(db, "SELECT name, volume_usd FROM coincap.exchanges") == [
        (tricky, Decimal("1E+3"))
    ]


def test_rejected_rows_keep_their_numbers_exactly(warehouse, db):
    import json

    from crypto_etl.warehouse.loader import raw_json, store_rejects
    from crypto_etl.records.rows import CallStats, Rejected
    from crypto_etl.warehouse.runlog import tracked_run

    text = (
        '{"exchangeId": null, "volumeUsd": 12712561147.7913049212358699, "n": [1, "ü"]}'
    )
    raw = json.loads(text, parse_float=Decimal)
    assert json.loads(raw_json(raw), parse_float=Decimal) == raw
    with tracked_run(warehouse, "exchanges", CallStats(), atomic=True) as tracker:
        with warehouse.managed_cursor() as cur:
            assert tracker.run.run_id is not None
            store_rejects(
                cur,
                "exchanges",
                tracker.run.run_id,
                [Rejected(raw, "missing exchangeId")],
            )
            tracker.succeed(cur)
    assert query(
        db,
        "SELECT raw->>'volumeUsd', jsonb_typeof(raw->'volumeUsd') FROM coincap.rejects",
    ) == [("12712561147.7913049212358699", "number")]
