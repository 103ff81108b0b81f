"""The credit cost model, the schedule generator and the scope settings, offline."""

from datetime import datetime, timezone
from pathlib import Path

import pytest

from crypto_etl.config import DEFAULT_SCOPE, FetchScope, load_settings
from crypto_etl.errors import ConfigError
from crypto_etl.pipelines.catalog import PIPELINES
from crypto_etl.pipelines.cost import estimate, plan_requests, scope_key
from crypto_etl.pipelines.schedule import (
    MONTH_END,
    MONTH_START,
    build_schedule,
    project,
    read_crontab,
    runs_between,
)

UTC = timezone.utc
BASE_ENV = {
    "WAREHOUSE_HOST": "127.0.0.1",
    "WAREHOUSE_PORT": "5432",
    "WAREHOUSE_DB": "coincap",
    "WAREHOUSE_USER": "etl",
    "WAREHOUSE_PASSWORD": "x",
}


def settings_with(tmp_path: Path, **extra: str):
    return load_settings({**BASE_ENV, **extra}, tmp_path / "no-env-file")


@pytest.mark.parametrize(
    "cron, runs",
    [
        ("*/5 * * * *", 8928),
        ("1-59/10 * * * *", 4464),
        ("2 */4 * * *", 186),
        ("17 3 * * *", 31),
        ("0 0 * * 1", 4),  # Mondays of January 2025
        ("0 0 1,15 * *", 2),
        ("@hourly", 744),
    ],
)
def test_runs_are_counted_in_a_31_day_month(cron, runs):
    assert runs_between(cron, MONTH_START, MONTH_END) == runs


def test_runs_are_counted_from_a_moment_inside_the_day():
    start = datetime(2025, 1, 31, 12, 2, tzinfo=UTC)
    assert runs_between("*/5 * * * *", start, MONTH_END) == 12 * 12 - 1


def test_an_unreadable_cron_field_is_a_clear_error():
    with pytest.raises(ValueError, match="out of range"):
        runs_between("61 * * * *", MONTH_START, MONTH_END)


def test_default_scope_asks_for_the_top_assets_in_one_call_and_bounded_markets():
    assets = plan_requests(PIPELINES["assets"], DEFAULT_SCOPE)
    assert [(r.path, r.params, r.paged) for r in assets] == [
        ("/assets", {"limit": 100, "offset": 0}, False)
    ]
    markets = plan_requests(PIPELINES["markets"], DEFAULT_SCOPE)
    assert [r.params for r in markets] == [
        {"baseId": "bitcoin", "limit": 50, "offset": 0},
        {"baseId": "ethereum", "limit": 50, "offset": 0},
    ]
    assert scope_key(PIPELINES["markets"], DEFAULT_SCOPE) == (
        "baseId=bitcoin,ethereum limit=50"
    )


def test_a_default_run_all_is_estimated_under_two_percent_of_the_free_plan():
    total = sum(
        estimate(p, plan_requests(p, DEFAULT_SCOPE)) for p in PIPELINES.values()
    )
    assert total <= 0.02 * 4000
    full = sum(estimate(p, plan_requests(p, FetchScope())) for p in PIPELINES.values())
    # The measurement of the full lists at CoinCap's sizes: ~1,700.
    assert 1500 <= full <= 1900


@pytest.mark.parametrize("budget", [4000, 75_000, 225_000, 5_000_000])
def test_the_schedule_projects_at_most_90_percent_of_the_budget(budget):
    schedule = build_schedule(None, DEFAULT_SCOPE, budget)
    jobs = read_crontab(schedule.render())
    assert len(jobs) == len(schedule.lines)
    assert schedule.credits_per_month <= 0.9 * budget
    every_day = [runs_between(cron, MONTH_START, MONTH_END) for cron, _ in jobs]
    assert min(every_day) >= 31  # every job runs at least daily


def test_a_paid_budget_runs_exchanges_at_least_every_15_minutes():
    schedule = build_schedule(None, DEFAULT_SCOPE, 225_000)
    assert schedule.cadences["exchanges"] <= 15
    assert "paid plan" not in schedule.render()


def test_the_free_budget_runs_exchanges_daily_and_says_minutes_need_a_paid_plan():
    schedule = build_schedule(None, DEFAULT_SCOPE, 4000)
    assert schedule.cadences["exchanges"] <= 1440
    prose = " ".join(schedule.render().replace("#", " ").split())
    assert "every few minutes needs a paid plan" in prose


def test_every_pipeline_is_run_by_exactly_one_line():
    for budget in (4000, 225_000):
        commands = [
            c
            for _, c in read_crontab(
                build_schedule(None, DEFAULT_SCOPE, budget).render()
            )
        ]
        listed = [
            name
            for command in commands
            if command.startswith("crypto-etl run ")
            for name in command.split()[2].rstrip(";").split(",")
        ]
        assert sorted(listed) == sorted(PIPELINES)


def test_a_budget_too_small_for_a_daily_run_says_what_to_change():
    with pytest.raises(ConfigError, match="COINCAP_MONTHLY_CREDITS"):
        build_schedule(None, DEFAULT_SCOPE, 500)


def test_scope_settings_default_to_the_cheap_scope(tmp_path):
    settings = settings_with(tmp_path)
    assert settings.scope == DEFAULT_SCOPE
    assert settings.monthly_credits == 4000


def test_scope_settings_are_read(tmp_path):
    settings = settings_with(
        tmp_path,
        COINCAP_ASSETS_TOP="all",
        COINCAP_MARKETS="exchange:binance, kraken",
        COINCAP_MARKETS_LIMIT="none",
    )
    assert settings.scope == FetchScope(None, "exchangeId", ("binance", "kraken"), None)
    assert settings_with(tmp_path, COINCAP_MARKETS="all").scope.markets_filter is None


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("COINCAP_ASSETS_TOP", "0", "COINCAP_ASSETS_TOP must be a number from 1"),
        ("COINCAP_ASSETS_TOP", "ten", "or 'all'"),
        ("COINCAP_MARKETS_LIMIT", "2001", "COINCAP_MARKETS_LIMIT must be"),
        ("COINCAP_MARKETS", "bitcoin", "COINCAP_MARKETS must be all, exchange:"),
        ("COINCAP_MARKETS", "asset:", "COINCAP_MARKETS must be all"),
        ("COINCAP_MONTHLY_CREDITS", "-5", "COINCAP_MONTHLY_CREDITS must be"),
    ],
)
def test_a_bad_scope_or_budget_setting_names_the_variable(
    tmp_path, name, value, message
):
    with pytest.raises(ConfigError, match=message):
        settings_with(tmp_path, **{name: value})


CRONTAB = """\
# a comment, and an environment line
PATH=/usr/bin
*/5 * * * * crypto-etl run exchanges; crypto-etl transform || [ $? -eq 10 ]
0 0 * * * crypto-etl run assets,rates
17 3 * * * crypto-etl backfill --top 10 --interval h1 --start $(date) || true
47 3 * * * crypto-etl transform --docs
"""


def test_a_crontab_is_priced_line_by_line_for_the_rest_of_the_month():
    now = datetime(2025, 1, 31, 0, 0, tzinfo=UTC)  # one day left
    found = project(None, CRONTAB, "the test crontab", DEFAULT_SCOPE, 10_000, 0, now)
    # Estimates: exchanges 21 x 288, assets + rates 19 x 1, backfill 42 x 1.
    assert found.projected == 21 * 288 + 19 + 42
    assert found.runs_out is None
    assert found.describe().endswith("the budget lasts the month")


def test_the_day_the_budget_runs_out_at_the_schedules_pace():
    now = datetime(2025, 1, 1, tzinfo=UTC)
    found = project(None, CRONTAB, "the test crontab", DEFAULT_SCOPE, 40_000, 0, now)
    per_day = 21 * 288 + 19 + 42
    assert found.projected == 31 * per_day
    assert 40_000 // per_day == 6  # six full days, then part of the seventh
    assert found.runs_out == datetime(2025, 1, 7).date()
    assert "at that pace the budget runs out on 2025-01-07" in found.describe()
    spent = project(None, CRONTAB, "x", DEFAULT_SCOPE, 4000, 4000, now)
    assert "the budget is spent" in spent.describe()
