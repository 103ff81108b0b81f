"""`run all` as cron sees it: skips are skips, one cause is one line, stdout
always says what each pipeline did."""

import re

import psycopg2
import pytest

from crypto_etl.pipelines.catalog import PIPELINES
from crypto_etl.warehouse.connection import lock_key

from conftest import query


@pytest.fixture
def hold_locks(db):
    """Hold the advisory locks of the named pipelines, as a running run would."""
    holder = psycopg2.connect(
        host=db.host,
        port=db.port,
        dbname=db.dbname,
        user=db.user,
        password=db.password.reveal(),
    )

    def hold(*names: str) -> None:
        with holder.cursor() as cur:
            for name in names:
                cur.execute("SELECT pg_advisory_lock(%s)", (lock_key(name),))

    yield hold
    holder.close()


def test_an_overlapping_run_is_skipped_with_exit_code_10(cli, db, hold_locks):
    hold_locks("exchanges")
    result = cli("run", "exchanges")
    assert result.code == 10
    assert result.err == "skipped: exchanges: another run is in progress\n"
    assert query(db, "SELECT status FROM coincap.etl_runs") == [("skipped",)]
    assert query(db, "SELECT count(*) FROM coincap.exchanges") == [(0,)]


def test_a_run_all_overlapping_another_is_skipped_with_exit_10(cli, db, hold_locks):
    hold_locks(*PIPELINES)
    result = cli("run", "all")
    assert result.code == 10
    assert result.err == (
        "skipped: exchanges, assets, markets, rates: another run is in progress\n"
    )
    assert result.out.splitlines() == [
        f"{name}: skipped (another run is in progress)" for name in PIPELINES
    ]
    statuses = query(db, "SELECT DISTINCT status FROM coincap.etl_runs")
    assert statuses == [("skipped",)]


def test_one_pipeline_skipped_and_the_rest_loaded_exits_10_and_lists_all(
    cli, db, hold_locks
):
    hold_locks("markets")
    result = cli("run", "all")
    assert result.code == 10
    assert result.err.splitlines()[-1] == "skipped: markets: another run is in progress"
    assert " ERROR " not in result.err
    lines = result.out.splitlines()
    assert [line.split(":")[0] for line in lines] == list(PIPELINES)
    assert lines[2] == "markets: skipped (another run is in progress)"
    assert lines[0].startswith("exchanges: fetched 60, inserted 60")
    assert query(db, "SELECT count(*) FROM coincap.rates")[0][0] > 0


def test_the_same_401_everywhere_is_one_line_with_exit_4(cli, monkeypatch):
    monkeypatch.setenv("COINCAP_API_KEY", "wrong-key")
    result = cli("run", "all")
    assert result.code == 4
    assert result.err.count("\n") == 1
    assert result.err.count("HTTP 401") == 1
    assert result.err.startswith(
        "error: exchanges, assets, markets, rates: CoinCap refused the API key"
    )
    assert result.out.splitlines() == [
        f"{name}: failed, nothing loaded" for name in PIPELINES
    ]


def test_a_failure_beside_loaded_pipelines_exits_8_and_stdout_lists_the_loads(
    cli, simulator, db
):
    simulator.fail_always(400, path="/markets")
    result = cli("run", "all")
    assert result.code == 8
    assert result.err.splitlines()[-1].startswith(
        "error: 1 of 4 pipelines did not load: markets: CoinCap rejected the request"
    )
    assert " ERROR " not in result.err
    lines = result.out.splitlines()
    assert lines[0].startswith("exchanges: fetched 60, inserted 60")
    assert re.match(r"assets: fetched (\d+), inserted \1, rejected 0 ", lines[1])
    assert lines[2] == "markets: failed, nothing loaded"
    assert lines[3].startswith("rates: fetched ")
    assert query(db, "SELECT count(*) FROM coincap.markets") == [(0,)]


def test_different_failures_and_a_skip_are_each_named_once(cli, simulator, hold_locks):
    simulator.fail_always(400, path="/markets")
    simulator.fail_always(404, path="/rates")
    hold_locks("exchanges", "assets")
    result = cli("run", "all")
    assert result.code == 8
    message = result.err.splitlines()[-1].removeprefix(
        "error: 2 of 4 pipelines did not load: "
    )
    parts = message.split(" | ")
    assert [p.split(": ")[0] for p in parts] == [
        "markets",
        "rates",
        "exchanges, assets",
    ]
    assert parts[2] == "exchanges, assets: skipped (another run is in progress)"
