"""Living within the CoinCap credit budget, against a CoinCap-sized simulator.

The simulator here serves the real API's estimated sizes (200 exchanges,
2,000 assets, ~10,000 markets, 40 rates); the CLI runs in-process with the
default settings (no env file), so what it spends is what `make run` spends.
"""

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests

from crypto_etl.cli import build_parser
from crypto_etl.coincap.client import CoinCapClient
from crypto_etl.config import FetchScope, Secret
from crypto_etl.dashboard.definition import load_definition
from crypto_etl.dashboard.server import DashboardServer
from crypto_etl.pipelines.catalog import PIPELINES
from crypto_etl.pipelines.cost import plan_requests
from crypto_etl.pipelines.schedule import (
    MONTH_END,
    MONTH_START,
    read_crontab,
    runs_between,
)
from crypto_etl.pipelines.snapshot import fetch
from crypto_etl.simulator import CoinCapSimulator
from crypto_etl.simulator.accounting import charge

from conftest import API_KEY, query
from dashboard_data import recent_simulator_start, with_reader

REPO = Path(__file__).resolve().parents[2]
CRONTAB = REPO / "scheduler" / "crontab"
FREE, PAID = 4000, 225_000


@pytest.fixture
def simulator():
    """A CoinCap-sized simulator (replaces conftest's small one for `env`)."""
    # Its clock near now, so the dashboard's time ranges hold its data.
    start = recent_simulator_start(1)
    with CoinCapSimulator(api_key=API_KEY, size="real", start_ms=start) as sim:
        yield sim


def runs(db, pipeline):
    return query(
        db,
        "SELECT status, api_calls, credits, error_message FROM coincap.etl_runs"
        " WHERE pipeline = %s ORDER BY run_id",
        (pipeline,),
    )


def spend(db, pipeline, credits):
    """Record a run that spent ``credits`` this month."""
    query(
        db,
        "INSERT INTO coincap.etl_runs (pipeline, started_at, finished_at, status,"
        " credits) VALUES (%s, now(), now(), 'succeeded', %s)",
        (pipeline, credits),
    )


MAKE_RUN = [
    "crypto-etl run all",
    "crypto-etl backfill --asset bitcoin,ethereum --interval h6"
    " --start $$(date -u -d '30 days ago' +%F)",
    "crypto-etl transform",
]


def refused(cli, db, monkeypatch, budget, spent, *argv):
    """Run ``argv`` with ``spent`` of a ``budget`` gone; it must exit 15."""
    monkeypatch.setenv("COINCAP_MONTHLY_CREDITS", str(budget))
    spend(db, "assets", spent)
    result = cli(*argv)
    assert result.code == 15, result.err
    return result


def test_make_run_spends_under_2_percent_and_loads_every_exchange_and_rate(
    cli, simulator, db, settings
):
    recipe = (REPO / "Makefile").read_text().split("\nrun: setup\n")[1]
    for command in MAKE_RUN:
        assert f"$(BIN)/{command}\n" in recipe
    month_ago = (datetime.now(timezone.utc) - timedelta(days=30)).date().isoformat()
    result = cli("run", "all")
    assert result.code == 0, result.err
    backfill = ["--asset", "bitcoin,ethereum", "--interval", "h6", "--start"]
    result = cli("backfill", *backfill, month_ago)
    assert result.code == 0, result.err
    ((spent,),) = query(db, "SELECT sum(credits) FROM coincap.etl_runs")
    assert spent <= 0.02 * FREE
    counts = dict(
        query(
            db,
            "SELECT 'exchanges', count(DISTINCT exchange_id) FROM coincap.exchanges"
            " UNION ALL SELECT 'rates', count(*) FROM coincap.rates"
            " UNION ALL SELECT 'assets', count(*) FROM coincap.assets"
            " UNION ALL SELECT 'markets', count(*) FROM coincap.markets",
        )
    )
    assert counts == {"exchanges": 200, "rates": 40, "assets": 100, "markets": 100}
    # Recorded credits are CoinCap's rule applied to the bytes received,
    # counted independently by the server.
    served = simulator.request_log
    assert (
        spent == simulator.credits_charged == sum(charge(r.body_bytes) for r in served)
    )
    ((calls, received),) = query(
        db, "SELECT sum(api_calls), sum(bytes_received) FROM coincap.etl_runs"
    )
    assert (calls, received) == (len(served), sum(r.body_bytes for r in served))
    # The dashboard draws every chart from that load.
    assert cli("transform").code == 0
    with DashboardServer(with_reader(settings), port=0) as server:
        for chart in load_definition().charts:
            url = f"{server.url.rstrip('/')}/api/charts/{chart.id}"
            answer = requests.get(url, timeout=10)
            assert answer.status_code == 200, (chart.id, answer.text)
            assert answer.json()["row_count"] > 0, chart.id


def test_a_run_over_the_budget_makes_no_call_and_records_the_skip(
    cli, simulator, db, monkeypatch
):
    result = refused(cli, db, monkeypatch, 100, 95, "run", "exchanges")
    assert simulator.calls == 0
    line = result.err.strip()
    assert "\n" not in line
    assert line.startswith("skipped: exchanges: the run would cost about 21 credits")
    assert "5 of the 100 monthly credits (COINCAP_MONTHLY_CREDITS) are left" in line
    ((status, calls, credits, message),) = runs(db, "exchanges")
    assert (status, calls, credits) == ("skipped", 0, 0)
    assert "COINCAP_MONTHLY_CREDITS" in message


def test_run_all_over_the_budget_skips_every_pipeline_with_exit_15(
    cli, simulator, db, monkeypatch
):
    refused(cli, db, monkeypatch, 10, 10, "run", "all")
    assert simulator.calls == 0
    statuses = query(
        db, "SELECT pipeline, status FROM coincap.etl_runs WHERE credits = 0"
    )
    assert sorted(statuses) == sorted(
        (p, "skipped") for p in ("exchanges", "assets", "markets", "rates")
    )


def test_ignore_budget_runs_once_anyway(cli, simulator, db, monkeypatch):
    monkeypatch.setenv("COINCAP_MONTHLY_CREDITS", "100")
    spend(db, "assets", 100)
    result = cli("run", "exchanges", "--ignore-budget")
    assert result.code == 0, result.err
    assert simulator.calls == 1
    assert runs(db, "exchanges")[0][0] == "succeeded"
    assert cli("run", "exchanges").code == 15


def test_the_guard_prices_a_pipeline_from_its_measured_runs(
    cli, simulator, db, monkeypatch
):
    assert cli("run", "rates").code == 0
    measured = runs(db, "rates")[0][2]
    monkeypatch.setenv("COINCAP_MONTHLY_CREDITS", str(measured * 2))
    assert cli("run", "rates").code == 0  # spent + measured: exactly the budget
    result = cli("run", "rates")
    assert result.code == 15
    assert f"about {measured} credits (measured)" in result.err


def test_a_backfill_is_refused_up_front_when_its_plan_does_not_fit(
    cli, simulator, db, monkeypatch
):
    monkeypatch.setenv("COINCAP_MONTHLY_CREDITS", "50")
    result = cli("backfill", "--top", "10", "--interval", "m5", "--start", "2024-08-01")
    assert result.code == 15
    assert simulator.calls == 0  # not even the /assets call for --top
    assert result.err.startswith("skipped: backfill: the run would cost about ")
    ((status, calls, _, message),) = runs(db, "backfill")
    assert (status, calls) == ("skipped", 0)
    assert "monthly credits" in message
    # The dry run still prices it, spending nothing on history.
    dry = cli(
        "backfill", "--top", "10", "--interval", "m5", "--start", "2024-08-01",
        "--end", "2024-09-01", "--dry-run",
    )  # fmt: skip
    assert dry.code == 0
    assert "of the 50 monthly credits are left" in dry.out


@pytest.mark.parametrize(
    "status, body",
    [
        (403, b'{"error":"Forbidden"}'),
        (429, b'{"error":"Monthly credit limit exceeded"}'),
        (429, b'{"message":"You have exceeded your plan quota"}'),
    ],
)
def test_out_of_credits_is_not_retried_and_says_so(cli, simulator, db, status, body):
    simulator.fail_next(status, times=5, body=body)
    result = cli("run", "exchanges")
    assert result.code == 14
    assert simulator.calls == 1
    line = result.err.strip()
    assert "\n" not in line
    assert f"CoinCap says the key's credits are used up (HTTP {status}): " in line
    assert "check your plan" in line
    ((state, calls, _, message),) = runs(db, "exchanges")
    assert (state, calls) == ("failed", 1)
    assert "credits are used up" in message


def test_a_plain_429_is_still_retried(cli, simulator):
    simulator.fail_next(429, retry_after="0", body=b'{"error":"Rate limit exceeded"}')
    result = cli("run", "exchanges")
    assert result.code == 0, result.err
    assert simulator.calls == 2


def test_401_is_a_bad_key_not_out_of_credits(cli, simulator):
    simulator.fail_always(401)
    result = cli("run", "exchanges")
    assert result.code == 4
    assert "refused the API key (HTTP 401)" in result.err


def test_the_simulator_answers_as_an_exhausted_key_once_its_allowance_is_spent(
    cli, simulator, db
):
    simulator.set_monthly_credits(30)
    assert cli("run", "exchanges").code == 0  # 21 credits
    result = cli("run", "assets")  # 17 more: the allowance runs out mid-month
    assert result.code == 0
    again = cli("run", "rates")
    assert again.code == 14
    assert "Monthly credit limit exceeded" in again.err


def test_run_takes_a_comma_list_of_pipelines(cli, simulator, db, capsys):
    result = cli("run", "exchanges,rates")
    assert result.code == 0, result.err
    assert [line.split(":")[0] for line in result.out.splitlines()] == [
        "exchanges",
        "rates",
    ]
    with pytest.raises(SystemExit) as refused:
        cli("run", "exchanges,bogus")
    assert refused.value.code == 2
    assert "(unknown: bogus)" in capsys.readouterr().err


def test_the_markets_scope_follows_the_settings(cli, simulator, db, monkeypatch):
    monkeypatch.setenv("COINCAP_MARKETS", "exchange:kraken,bitstamp")
    monkeypatch.setenv("COINCAP_MARKETS_LIMIT", "none")
    assert cli("run", "markets").code == 0
    exchanges = query(db, "SELECT DISTINCT exchange_id FROM coincap.markets")
    assert sorted(exchanges) == [("bitstamp",), ("kraken",)]
    params = [r.params for r in simulator.request_log]
    assert [p["exchangeId"] for p in params] == ["kraken", "bitstamp"]


def test_the_shipped_crontab_is_the_schedule_for_the_default_budget(cli):
    # An empty warehouse: every cost is the request plan's estimate.
    assert cli("schedule").out == CRONTAB.read_text()
    assert cli("schedule", "--estimate").out == CRONTAB.read_text()


def _measure_every_line(cli):
    """Run what the schedule runs, so every cost below is measured."""
    assert cli("run", "all").code == 0
    # What the daily line fetches: from two days ago (00:00 UTC) to now.
    start = (datetime.now(timezone.utc) - timedelta(days=2)).date().isoformat()
    result = cli("backfill", "--top", "10", "--interval", "h1", "--start", start)
    assert result.code == 0, result.err


@pytest.mark.parametrize("budget", [FREE, PAID])
def test_the_schedule_fits_90_percent_at_measured_costs(cli, simulator, db, budget):
    _measure_every_line(cli)
    measured = dict(
        query(
            db,
            "SELECT DISTINCT ON (pipeline) pipeline, credits FROM coincap.etl_runs"
            " WHERE status = 'succeeded' ORDER BY pipeline, run_id DESC",
        )
    )
    result = cli("schedule", "--monthly-credits", str(budget))
    assert result.code == 0, result.err
    assert "measured from recent runs" in result.out
    month = 0
    cadence = {}
    for cron, command in read_crontab(result.out):
        times = runs_between(cron, MONTH_START, MONTH_END)
        if command.startswith("crypto-etl run "):
            names = command.split()[2].rstrip(";").split(",")
            month += times * sum(measured[n] for n in names)
            cadence.update({n: times for n in names})
        elif command.startswith("crypto-etl backfill "):
            month += times * measured["backfill"]
    assert month <= 0.9 * budget
    assert cadence["exchanges"] >= 31  # at least daily
    if budget == PAID:
        assert cadence["exchanges"] >= 31 * 24 * 4  # at least every 15 minutes
    else:
        prose = " ".join(result.out.replace("#", " ").split())
        assert "every few minutes needs a paid plan" in prose


def test_status_shows_the_spend_projection_and_the_day_it_runs_out(
    cli, simulator, db, monkeypatch
):
    assert cli("run", "all").code == 0
    result = cli("status")
    assert result.code == 0
    assert f"the schedule in {Path('scheduler/crontab')}" in result.out or (
        "the schedule `crypto-etl schedule` writes" in result.out
    )
    assert "projection: " in result.out
    monkeypatch.setenv("COINCAP_MONTHLY_CREDITS", "100")
    tight = cli("status")
    assert "at that pace the budget runs out on " in tight.out


def test_the_real_size_simulator_serves_the_apis_estimated_sizes(simulator):
    full = FetchScope()
    with CoinCapClient(simulator.base_url, Secret(API_KEY)) as client:
        served = {}
        for name, pipeline in PIPELINES.items():
            before = client.stats.copy()
            rows, _ = fetch(pipeline, client, plan_requests(pipeline, full))
            served[name] = (len(rows), client.stats.since(before).credits)
    assert served["exchanges"][0] == 200
    assert served["assets"][0] == 2000
    assert 9_500 <= served["markets"][0] <= 11_000
    assert served["rates"][0] == 40
    # The README's "full lists" column: ~1,700 credits for one run all.
    assert 1_500 <= sum(credits for _, credits in served.values()) <= 1_900


def test_simulate_takes_a_size_and_a_credit_allowance():
    args = build_parser().parse_args(
        ["simulate", "--size", "real", "--monthly-credits", "4000"]
    )
    assert (args.size, args.monthly_credits) == ("real", 4000)


def test_status_still_reports_when_no_schedule_fits_the_budget(
    cli, simulator, monkeypatch, tmp_path
):
    monkeypatch.setenv("CRYPTO_ETL_CRONTAB", str(tmp_path / "no-crontab"))
    monkeypatch.setenv("COINCAP_MONTHLY_CREDITS", "100")
    result = cli("status")
    assert result.code == 0
    assert "projection: no schedule fits (a budget of 100 credits a month" in (
        result.out
    )
