"""A run ended by a signal is accounted for, rolled back and unlocked."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from conftest import query


def start(env, *argv):
    return subprocess.Popen(
        [sys.executable, "-m", "crypto_etl.cli", *argv],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(db, sql, deadline_s=60):
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        rows = query(db, sql)
        if rows and rows[0][0]:
            return rows[0][0]
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for: {sql}")


def runs(db, pipeline):
    return query(
        db,
        "SELECT status, error_message FROM coincap.etl_runs WHERE pipeline = %s"
        " ORDER BY run_id",
        (pipeline,),
    )


def test_sigterm_mid_snapshot_rolls_back_records_the_run_and_exits_143(
    env, simulator, db
):
    simulator.delay_next(30, times=1, path="/markets")
    proc = start(env, "run", "markets")
    wait_for(db, "SELECT count(*) FROM coincap.etl_runs WHERE status = 'running'")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143
    assert err.strip().splitlines()[-1] == "interrupted by SIGTERM"
    assert runs(db, "markets") == [("failed", "interrupted by SIGTERM")]
    assert query(db, "SELECT count(*) FROM coincap.markets") == [(0,)]
    # The lock went with it: the next run goes ahead and loads.
    simulator.clear_faults()
    again = start(env, "run", "markets")
    assert again.wait(timeout=60) == 0
    assert runs(db, "markets")[-1] == ("succeeded", None)


def test_sigterm_mid_backfill_keeps_finished_windows_and_resumes(env, simulator, db):
    simulator.delay_next(0.3, times=1000, path="/assets/bitcoin/history")
    # 37 windows: with 8 calls in flight, several rounds of 0.3 s are left
    # when the signal comes.
    args = ["backfill", "--asset", "bitcoin", "--interval", "m5"]
    args += ["--start", "2024-01-01", "--end", "2024-07-01"]
    proc = start(env, *args)
    wait_for(db, "SELECT count(*) >= 2 FROM coincap.backfill_windows")
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == 143
    assert runs(db, "backfill") == [("failed", "interrupted by SIGTERM")]
    done = query(db, "SELECT count(*) FROM coincap.backfill_windows")[0][0]
    simulator.clear_faults()
    resumed = start(env, *args)
    assert resumed.wait(timeout=60) == 0
    assert query(db, "SELECT count(*) FROM coincap.backfill_windows")[0][0] > done
    assert query(
        db,
        "SELECT count(*) - count(DISTINCT (asset_id, interval, time))"
        " FROM coincap.asset_history",
    ) == [(0,)]


def test_a_sigkilled_run_is_marked_abandoned_by_the_next_run(env, simulator, db):
    simulator.delay_next(30, times=1, path="/exchanges")
    proc = start(env, "run", "exchanges")
    wait_for(db, "SELECT count(*) FROM coincap.etl_runs WHERE status = 'running'")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert runs(db, "exchanges") == [("running", None)]
    simulator.clear_faults()
    again = start(env, "run", "exchanges")
    assert again.wait(timeout=60) == 0
    statuses = runs(db, "exchanges")
    assert statuses[0][0] == "failed" and statuses[0][1].startswith("abandoned")
    assert statuses[1] == ("succeeded", None)
