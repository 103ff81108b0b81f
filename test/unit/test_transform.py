"""Pure transforms: exact decimals, nulls, unknown timestamps, rejects, time zones."""

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from crypto_etl.records.rows import Asset, Exchange, HistoryPoint, Market, Rate

from crypto_etl.records.parse import (
    RowError,
    get_utc_from_unix_time,
    parse_row,
    parse_rows,
)

# Copies of ../shared/coincap/examples, so a clean checkout has them.
EXAMPLES = Path(__file__).resolve().parents[1] / "fixtures"


def example(name):
    return json.loads((EXAMPLES / name).read_text(), parse_float=Decimal)


def test_decimals_keep_every_digit_of_the_string():
    row = parse_row(Exchange, example("exchanges.json")["data"][0])
    assert row.percent_total_volume == Decimal("0.030137272308384732000000000000000000")
    assert str(row.percent_total_volume) == "0.030137272308384732000000000000000000"
    assert str(row.volume_usd) == "3728334.2170733349680754"
    assert row.rank == 10 and row.trading_pairs == 155 and row.socket is False


def test_nulls_stay_null_and_updated_zero_means_unknown_time():
    row = parse_row(Exchange, example("exchanges.json")["data"][1])
    assert row.percent_total_volume is None
    assert row.volume_usd is None
    assert row.socket is None
    assert row.updated_unix_ms == 0
    assert row.updated_at is None


def test_updated_becomes_aware_utc_to_the_millisecond():
    row = parse_row(Exchange, example("exchanges.json")["data"][0])
    assert row.updated_at == datetime(2024, 9, 11, 19, 53, 27, 276000, timezone.utc)
    assert row.updated_at is not None
    assert row.updated_at.utcoffset() == timedelta(0)


def test_unknown_extra_fields_are_ignored():
    raw = {**example("exchanges.json")["data"][0], "brandNewField": [1, 2]}
    assert parse_row(Exchange, raw).exchange_id == "binanceus"


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"exchangeId": None}, "missing exchangeId"),
        ({"volumeUsd": "lots"}, "volumeUsd 'lots' is not a number"),
        ({"volumeUsd": "NaN"}, "volumeUsd 'NaN' is not a finite number"),
        ({"rank": "1.5"}, "rank '1.5' is not a whole number"),
        ({"updated": -5}, "updated -5 is negative"),
        ({"socket": "maybe"}, "socket 'maybe' is not a boolean"),
    ],
)
def test_bad_rows_are_rejected_with_the_reason_and_the_rest_parse(change, reason):
    good, bad = example("exchanges.json")["data"]
    bad = {**bad, **change}
    parsed = parse_rows(Exchange, [good, bad])
    assert [r.exchange_id for r in parsed.records] == ["binanceus"]
    assert len(parsed.rejects) == 1
    assert parsed.rejects[0].reason == reason
    assert parsed.rejects[0].raw is bad


def test_a_row_that_is_not_an_object_is_rejected():
    parsed = parse_rows(Exchange, ["binance"])
    assert parsed.records == []
    assert parsed.rejects[0].reason == "row is a str, not an object"


def test_rate_usd_accepts_a_string_or_a_json_number_exactly():
    payload = json.loads(
        '{"data": [{"id": "a", "rateUsd": "1.10"}, {"id": "b", "rateUsd": 0.1}],'
        ' "timestamp": 1726084787747}',
        parse_float=Decimal,
    )
    parsed = parse_rows(Rate, payload["data"], {"snapshot_at": payload["timestamp"]})
    assert [r.rate_usd for r in parsed.records] == [Decimal("1.10"), Decimal("0.1")]
    assert parsed.records[0].snapshot_at == datetime(
        2024, 9, 11, 19, 59, 47, 747000, timezone.utc
    )


def test_assets_markets_and_history_examples_parse_without_rejects():
    assets = example("assets.json")
    parsed_assets = parse_rows(
        Asset, assets["data"], {"snapshot_at": assets["timestamp"]}
    )
    assert parsed_assets.rejects == []
    assert parsed_assets.records[0].price_usd == Decimal("57435.2862859343831301")
    markets = parse_rows(Market, example("markets.json")["data"])
    assert markets.rejects == [] and markets.records[0].trades_count_24hr is None
    history = parse_rows(
        HistoryPoint,
        example("assets_id_history.json")["data"],
        {"asset_id": "bitcoin", "interval": "h1"},
    )
    assert history.records[0].time == datetime(2024, 9, 9, 21, 0, tzinfo=timezone.utc)
    assert history.records[0].interval == "h1"


def test_get_utc_from_unix_time_handles_none_zero_and_strings():
    assert get_utc_from_unix_time(None) is None
    assert get_utc_from_unix_time(0) is None
    assert get_utc_from_unix_time("1625787943298") == datetime(
        2021, 7, 8, 23, 45, 43, 298000, timezone.utc
    )
    assert get_utc_from_unix_time(1625787943, second=1) == datetime(
        2021, 7, 8, 23, 45, 43, tzinfo=timezone.utc
    )
    with pytest.raises(RowError):
        get_utc_from_unix_time("yesterday")


def test_utc_conversion_is_the_same_instant_in_any_machine_time_zone():
    code = (
        "from crypto_etl.records.parse import get_utc_from_unix_time as f;"
        "print(f(1625787943298).isoformat())"
    )
    outputs = set()
    for tz in ("UTC", "America/New_York", "Asia/Kolkata"):
        env = {**os.environ, "TZ": tz}
        done = subprocess.run(
            [sys.executable, "-c", code],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        outputs.add(done.stdout.strip())
    assert outputs == {"2021-07-08T23:45:43.298000+00:00"}
