"""Backfill: windows, checkpoints, resume after a kill, no repeated calls."""

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone

import pytest

from crypto_etl.pipelines.backfill import (
    INTERVAL_MS,
    MAX_WINDOW_MS,
    plan_windows,
    to_ms,
)
from crypto_etl.simulator import INTERVAL_MS as SIM_INTERVAL_MS
from crypto_etl.simulator import MAX_HISTORY_WINDOW_MS

from conftest import query


def ms(text):
    return to_ms(datetime.fromisoformat(text).replace(tzinfo=timezone.utc))


def test_windows_follow_the_grid_and_are_cut_to_the_request():
    start, end = ms("2024-08-02T13:02"), ms("2024-08-20T00:01")
    windows = plan_windows(["a", "b"], "m5", start, end)
    size, step = MAX_WINDOW_MS["m5"], INTERVAL_MS["m5"]
    per_asset = [w for w in windows if w.asset_id == "a"]
    # The ends are the request's, rounded out to the 5-minute grid...
    assert per_asset[0].start_ms == ms("2024-08-02T13:00")
    assert per_asset[-1].end_ms == ms("2024-08-20T00:05")
    # ...and every boundary in between is on the window grid.
    assert all(w.start_ms % size == 0 for w in per_asset[1:])
    assert all(a.end_ms == b.start_ms for a, b in zip(per_asset, per_asset[1:]))
    assert all(0 < w.end_ms - w.start_ms <= size for w in windows)
    assert (
        sum(w.points for w in per_asset)
        == (per_asset[-1].end_ms - per_asset[0].start_ms) // step
    )
    assert len(windows) == 2 * len(per_asset)


def test_bad_interval_or_range_is_refused():
    with pytest.raises(ValueError, match="interval must be one of"):
        plan_windows(["a"], "m2", 0, 10)
    with pytest.raises(ValueError, match="end must be after the start"):
        plan_windows(["a"], "h1", 10, 10)


def test_the_client_window_limits_agree_with_the_simulators():
    assert INTERVAL_MS == SIM_INTERVAL_MS
    assert MAX_WINDOW_MS == MAX_HISTORY_WINDOW_MS


def history_ok(db, asset, interval):
    """Return the number of points, after checking there is no gap or duplicate."""
    rows = query(
        db,
        'SELECT "time" FROM coincap.asset_history'
        ' WHERE asset_id = %s AND "interval" = %s ORDER BY "time"',
        (asset, interval),
    )
    times = [r[0] for r in rows]
    step = INTERVAL_MS[interval] / 1000
    gaps = [b - a for a, b in zip(times, times[1:]) if (b - a).total_seconds() != step]
    assert gaps == []
    assert len(times) == len(set(times))
    return len(times)


def test_backfill_loads_every_point_once_and_a_repeat_makes_no_calls(
    cli, simulator, db
):
    args = ["backfill", "--asset", "bitcoin,ethereum", "--interval", "h1"]
    args += ["--start", "2024-05-01", "--end", "2024-07-01"]
    first = cli(*args)
    assert first.code == 0, first.err
    windows = plan_windows(["bitcoin"], "h1", ms("2024-05-01"), ms("2024-07-01"))
    expected = sum(w.points for w in windows)
    assert expected == 61 * 24  # May and June, hourly: no more than asked for
    assert history_ok(db, "bitcoin", "h1") == expected
    assert history_ok(db, "ethereum", "h1") == expected
    # One /assets?ids= call checks both ids before any window is fetched.
    assert simulator.calls == 1 + 2 * len(windows)
    assert simulator.calls_by_route["/assets"] == 1
    assert f"inserted {2 * expected} points" in first.out
    simulator.reset_stats()
    again = cli(*args)
    assert again.code == 0
    assert simulator.calls == 0
    assert again.out == (
        f"backfill: nothing to fetch: all {2 * len(windows)} windows already loaded\n"
    )


def test_a_window_reaching_past_the_apis_clock_is_fetched_again(cli, simulator, db):
    # The simulator's clock is 2024-09-11 19:53: a window to 2024-09-13 is
    # loaded up to then but not checkpointed, since more points will come.
    args = ["backfill", "--asset", "bitcoin", "--interval", "h1"]
    args += ["--start", "2024-09-01", "--end", "2024-09-13"]
    assert cli(*args).code == 0
    assert query(db, "SELECT count(*) FROM coincap.backfill_windows") == [(0,)]
    simulator.reset_stats()
    assert "inserted 0 points (2 calls" in cli(*args).out
    assert simulator.calls_by_route == {"/assets": 1, "/assets/{slug}/history": 1}


def test_dry_run_prints_the_calls_and_credits_and_fetches_nothing(cli, simulator, db):
    result = cli(
        "backfill",
        "--asset",
        "bitcoin",
        "--interval",
        "d1",
        "--start",
        "2020-01-01",
        "--end",
        "2024-01-01",
        "--dry-run",
    )
    assert result.code == 0
    lines = result.out.splitlines()
    assert lines[0] == "GET /assets?ids=bitcoin&limit=1"
    assert lines[1].startswith("GET /assets/bitcoin/history?interval=d1&start=")
    assert lines[-1].startswith(f"{len(lines) - 1} calls, about ")
    assert simulator.calls == 0
    assert query(db, "SELECT count(*) FROM coincap.asset_history") == [(0,)]


def test_top_n_takes_the_highest_ranked_assets(cli, simulator, db):
    result = cli(
        "backfill",
        "--top",
        "3",
        "--interval",
        "d1",
        "--start",
        "2024-01-01",
        "--end",
        "2024-02-01",
    )
    assert result.code == 0, result.err
    with_history = {
        r[0] for r in query(db, "SELECT asset_id FROM coincap.asset_history")
    }
    assert with_history == {"bitcoin", "ethereum", "tether"}


def test_progress_is_logged_line_by_line_without_a_terminal(cli, simulator):
    result = cli(
        "backfill",
        "--asset",
        "bitcoin",
        "--interval",
        "m30",
        "--start",
        "2024-06-01",
        "--end",
        "2024-07-15",
    )
    progress = [x for x in result.err.splitlines() if "windows: bitcoin m30" in x]
    assert len(progress) >= 2
    assert "rows/s" in progress[0] and "ETA" in progress[0]


def test_a_bad_date_is_a_usage_error(cli):
    with pytest.raises(SystemExit) as info:
        cli("backfill", "--asset", "x", "--interval", "h1", "--start", "last week")
    assert info.value.code == 2


def test_a_backfill_killed_half_way_resumes_with_no_gap_and_no_duplicate(
    env, simulator, db
):
    # Slow each history call so the kill lands in the middle of the run.
    simulator.delay_next(0.4, times=1000, path="/assets/bitcoin/history")
    args = [sys.executable, "-m", "crypto_etl.cli", "backfill", "--asset", "bitcoin"]
    args += ["--interval", "m5", "--start", "2024-06-01", "--end", "2024-08-01"]
    planned = plan_windows(["bitcoin"], "m5", ms("2024-06-01"), ms("2024-08-01"))
    proc = subprocess.Popen(
        args, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 60
    done = 0
    while time.monotonic() < deadline and done < 3:
        done = query(db, "SELECT count(*) FROM coincap.backfill_windows")[0][0]
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = query(db, "SELECT count(*) FROM coincap.backfill_windows")[0][0]
    assert 3 <= done < len(planned)
    simulator.clear_faults()
    resumed = subprocess.run(args, env={**os.environ, **env}, capture_output=True)
    assert resumed.returncode == 0, resumed.stderr
    checkpointed = query(db, "SELECT count(*) FROM coincap.backfill_windows")[0][0]
    assert checkpointed == len(planned)
    # Only the windows not checkpointed before the kill were fetched again,
    # after the one call that checks the asset id. (Counted by the resumed
    # run itself: the killed one's last request may still be finishing on
    # the simulator.)
    calls = query(
        db, "SELECT api_calls FROM coincap.etl_runs WHERE status = 'succeeded'"
    )
    assert calls == [(1 + len(planned) - done,)]
    assert history_ok(db, "bitcoin", "m5") == sum(w.points for w in planned)


def test_on_a_terminal_progress_is_a_bar_with_rows_per_second(capsys):
    from crypto_etl.logs import Progress

    bar = Progress("window", tty=True)
    bar.advance(1, 2, 1440, "bitcoin h1 from 1970-01-01T00:00:00+00:00")
    bar.advance(2, 2, 1440, "bitcoin h1 from 1970-01-01T01:00:00+00:00")
    bar.close()
    drawn = capsys.readouterr().err
    assert "2/2" in drawn and "rows=2880" in drawn and "rows_s=" in drawn
