"""Freshness limits follow the schedule in force."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from crypto_etl.pipelines.catalog import SNAPSHOT_FRESHNESS
from crypto_etl.pipelines.freshness import limits_in_force, run_gaps

SHIPPED = (Path(__file__).parents[2] / "scheduler" / "crontab").read_text()


def test_runs_every_five_minutes_keep_the_catalogs_limits():
    limits = limits_in_force("*/5 * * * * crypto-etl run all\n")
    assert limits["exchanges"] == SNAPSHOT_FRESHNESS
    assert limits["rates"] == SNAPSHOT_FRESHNESS


def test_a_daily_run_warns_after_a_missed_day_and_fails_after_two():
    limits = limits_in_force("1 0 * * * crypto-etl run exchanges,assets\n")
    assert limits["exchanges"].warn_after == timedelta(hours=36)
    assert limits["exchanges"].error_after == timedelta(hours=49)
    assert limits["assets"] == limits["exchanges"]
    # Not in this crontab: the catalog's limits.
    assert limits["rates"] == SNAPSHOT_FRESHNESS


def test_the_longest_gap_counts_not_the_average():
    gaps = run_gaps("0 9,10,11 * * * crypto-etl run rates\n")
    assert gaps == {"rates": timedelta(hours=22)}


def test_weekday_only_runs_leave_the_weekend_gap():
    gaps = run_gaps("0 6 * * 1-5 crypto-etl run markets\n")
    assert gaps == {"markets": timedelta(days=3)}


def test_the_shipped_crontab_gives_every_pipeline_a_limit_past_its_gap():
    gaps = run_gaps(SHIPPED)
    limits = limits_in_force(SHIPPED)
    assert set(gaps) == {"exchanges", "assets", "markets", "rates", "backfill"}
    for name, gap in gaps.items():
        assert limits[name].warn_after > gap
        assert limits[name].error_after > 2 * gap


def test_an_unreadable_cron_line_is_an_error():
    with pytest.raises(ValueError, match="out of range"):
        limits_in_force("61 0 * * * crypto-etl run rates\n")
