"""A backfill request is checked whole before the first history call:
dates, asset ids (one priced /assets?ids= call), and whether anything is
left to fetch."""

from datetime import datetime, timedelta, timezone

from conftest import query

BASE = ["backfill", "--interval", "d1"]
TWO_MONTHS = ["--start", "2024-01-01", "--end", "2024-03-01"]


def _day(offset_days: int) -> str:
    return (datetime.now(timezone.utc) + timedelta(days=offset_days)).strftime(
        "%Y-%m-%d"
    )


def _nothing_happened(simulator, db) -> bool:
    return (
        simulator.calls == 0
        and query(db, "SELECT count(*) FROM coincap.asset_history") == [(0,)]
        and query(db, "SELECT count(*) FROM coincap.etl_runs") == [(0,)]
    )


def test_a_future_start_alone_says_it_is_in_the_future(cli, simulator, db):
    result = cli(*BASE, "--asset", "bitcoin", "--start", _day(30))
    assert result.code == 3
    assert "is in the future" in result.err
    assert "the end must be after the start" not in result.err
    assert _nothing_happened(simulator, db)


def test_a_range_wholly_in_the_future_is_refused_without_a_call(cli, simulator, db):
    result = cli(*BASE, "--asset", "bitcoin", "--start", _day(10), "--end", _day(20))
    assert result.code == 3
    assert "is in the future" in result.err
    assert _nothing_happened(simulator, db)


def test_an_end_in_the_future_is_cut_to_now(cli, simulator):
    before = datetime.now(timezone.utc)
    result = cli(
        *BASE,
        "--asset",
        "bitcoin",
        "--start",
        _day(-3),
        "--end",
        _day(400),
        "--dry-run",
    )
    assert result.code == 0, result.err
    history = [line for line in result.out.splitlines() if "/history?" in line]
    assert len(history) == 1
    end_ms = int(history[0].rsplit("end=", 1)[1])
    assert end_ms < (before + timedelta(days=2)).timestamp() * 1000
    assert simulator.calls == 0


def test_an_unknown_asset_stops_the_backfill_before_any_window(cli, simulator, db):
    result = cli(*BASE, "--asset", "bitcoin,nosuchcoin", *TWO_MONTHS)
    assert result.code == 4
    assert result.err.splitlines()[-1] == (
        "error: backfill: CoinCap has no asset nosuchcoin; ids are slugs like"
        " bitcoin (see /assets); nothing was fetched"
    )
    assert simulator.calls_by_route == {"/assets": 1}
    assert query(db, "SELECT count(*) FROM coincap.asset_history") == [(0,)]
    assert query(db, "SELECT count(*) FROM coincap.backfill_windows") == [(0,)]
    runs = query(db, "SELECT status, api_calls, credits FROM coincap.etl_runs")
    assert runs == [("failed", 1, 1)]


def test_the_dry_run_prices_the_id_check_and_spends_nothing(cli, simulator, db):
    result = cli(*BASE, "--asset", "bitcoin,ethereum", *TWO_MONTHS, "--dry-run")
    assert result.code == 0
    lines = result.out.splitlines()
    assert lines[0] == "GET /assets?ids=bitcoin%2Cethereum&limit=2"
    # One window per asset, 60 daily points (~5,400 bytes: 3 credits), plus
    # the id check (2 rows, ~850 bytes: 1 credit).
    assert lines[-1].startswith("3 calls, about 7 credits (0 windows already loaded);")
    assert _nothing_happened(simulator, db)


def test_nothing_to_fetch_exits_0_without_a_call_and_says_so(cli, simulator, db):
    args = [*BASE, "--asset", "bitcoin", "--start", "2024-01-01", "--end", "2024-02-01"]
    assert cli(*args).code == 0
    simulator.reset_stats()
    runs = query(db, "SELECT count(*) FROM coincap.etl_runs")
    again = cli(*args)
    assert again.code == 0
    assert again.out == "backfill: nothing to fetch: all 1 windows already loaded\n"
    assert simulator.calls == 0
    assert query(db, "SELECT count(*) FROM coincap.etl_runs") == runs
