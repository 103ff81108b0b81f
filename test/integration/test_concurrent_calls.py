"""Calls in flight: the backfill and `run all` overlap the network, under one gate.

Counted at the simulator (arrival times of each request), never by timing
how long a run took: the limits here are high, or the calls few, so the
suite stays fast.
"""

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone

import pytest

from crypto_etl import errors
from crypto_etl.coincap.client import CoinCapClient, RetryPolicy
from crypto_etl.coincap.ratelimit import RateLimiter
from crypto_etl.config import Secret
from crypto_etl.pipelines.backfill import plan_windows, run_backfill, to_ms
from crypto_etl.pipelines.catalog import PIPELINES
from crypto_etl.pipelines.snapshot import run_many
from crypto_etl.simulator import CoinCapSimulator

from conftest import API_KEY, query

HISTORY = "/v3/assets/"
FAST = RetryPolicy(max_attempts=3, backoff_base=0.01, backoff_cap=0.02)
DAY_POINTS = 1440  # one m1 window


def ms(text):
    return to_ms(datetime.fromisoformat(text).replace(tzinfo=timezone.utc))


def m1_windows(assets, days):
    # Whole days before the simulator's clock (2024-09-11): every window is
    # complete, so every one is checkpointed.
    return plan_windows(assets, "m1", ms("2024-08-01"), ms("2024-08-01") + days * 864e5)


@pytest.fixture
def slow_sim():
    """A simulator that answers every call after 30 ms, as a network would."""
    with CoinCapSimulator(api_key=API_KEY, n_assets=20, latency_ms=30) as sim:
        yield sim


def client_for(sim, in_flight, limiter=None):
    return CoinCapClient(
        sim.base_url,
        Secret(API_KEY),
        retry=FAST,
        limiter=limiter,
        max_in_flight=in_flight,
    )


def history_arrivals(sim):
    return sorted(r.received_at for r in sim.request_log if r.path.startswith(HISTORY))


def most_at_once(log):
    """The most calls the server held at once (from arrival to answer).

    One call at a time, a client sends each call after the last answer, so
    this is 1 whatever the latency or the machine's load.
    """
    return max(
        sum(1 for r in log if r.received_at <= t.received_at < r.answered_at)
        for t in log
    )


def points(db):
    return query(db, "SELECT count(*) FROM coincap.asset_history")[0][0]


def checkpoints(db):
    return query(db, "SELECT count(*) FROM coincap.backfill_windows")[0][0]


def every_checkpoint_is_whole(db):
    """Each checkpointed window holds all its points, and no point is elsewhere."""
    partial = query(
        db,
        "SELECT w.asset_id, w.window_start, w.rows_loaded, count(h.time)"
        " FROM coincap.backfill_windows w LEFT JOIN coincap.asset_history h"
        " ON h.asset_id = w.asset_id AND h.interval = w.interval"
        " AND h.time >= w.window_start AND h.time < w.window_end"
        " GROUP BY 1, 2, 3 HAVING count(h.time) <> %s OR w.rows_loaded <> %s",
        (DAY_POINTS, DAY_POINTS),
    )
    assert partial == []
    assert points(db) == DAY_POINTS * checkpoints(db)


def test_many_calls_in_flight_never_pass_the_rate_limit_counted_at_the_server(
    slow_sim, warehouse, db
):
    # 10 calls a second with a burst of 5, 8 in flight: without the one gate
    # these 30 calls of 30 ms would all arrive within about 0.15 s.
    windows = m1_windows(["bitcoin"], 30)
    limiter = RateLimiter(600, burst=5)
    with client_for(slow_sim, 8, limiter) as client:
        run = run_backfill(client, warehouse, windows)
    arrivals = history_arrivals(slow_sim)
    assert len(arrivals) == 30
    busiest = max(
        sum(1 for t in arrivals if start <= t < start + 1.0) for start in arrivals
    )
    # Any 1 s holds at most 10 calls plus the burst (plus one for jitter
    # between the limiter and the server).
    assert busiest <= 10 + 5 + 1
    assert points(db) == 30 * DAY_POINTS == run.rows_inserted
    # The counters stayed exact with 8 threads counting at once.
    assert run.spent.calls == slow_sim.calls
    assert run.spent.bytes == slow_sim.bytes_sent


def test_calls_overlap_and_memory_holds_only_the_windows_in_flight(
    slow_sim, warehouse, db
):
    windows = m1_windows(["bitcoin", "ethereum"], 12)
    started_ahead = []

    def on_progress(done, total, rows, label):
        # Calls the server has seen, beyond the windows already loaded: the
        # windows held in memory (in flight, or fetched and waiting).
        started_ahead.append(slow_sim.calls - done)

    with client_for(slow_sim, 4) as client:
        run_backfill(client, warehouse, windows, on_progress=on_progress)
    assert len(started_ahead) == 24
    assert max(started_ahead) <= 4
    # Calls overlapped: some arrived while another was still being answered.
    assert most_at_once(slow_sim.request_log) >= 2
    every_checkpoint_is_whole(db)
    assert checkpoints(db) == 24


def test_a_429_with_retry_after_pauses_every_worker(slow_sim, warehouse, db):
    windows = m1_windows(["bitcoin"], 20)
    slow_sim.fail_next(429, retry_after="1", path="/assets/bitcoin/history")
    limiter = RateLimiter(60_000, burst=4)  # not the limit that holds them here
    with client_for(slow_sim, 4, limiter) as client:
        run_backfill(client, warehouse, windows)
    log = [r for r in slow_sim.request_log if r.path.startswith(HISTORY)]
    (refused,) = [r.received_at for r in log if r.status == 429]
    after = sorted(r.received_at - refused for r in log if r.received_at > refused)
    # The calls already on the wire arrive at once; then nothing until the
    # Retry-After second has passed, from any of the four workers.
    assert [t for t in after if 0.3 < t < 0.95] == []
    assert len([t for t in after if t >= 0.95]) >= 16
    assert points(db) == 20 * DAY_POINTS
    assert len(log) == 21


def test_a_failed_call_with_calls_in_flight_leaves_whole_windows_and_resumes(
    slow_sim, warehouse, db
):
    windows = m1_windows(["bitcoin", "ethereum", "tether"], 10)
    slow_sim.fail_next(400, path="/assets/ethereum/history")
    with client_for(slow_sim, 4) as client:
        with pytest.raises(errors.BadRequestError, match="asset ethereum"):
            run_backfill(client, warehouse, windows)
    done = checkpoints(db)
    # No new call after the failure; every call in flight came back and was
    # loaded (its credits were spent): only the refused one has no window.
    assert 10 <= done < 30
    assert slow_sim.calls == done + 1
    every_checkpoint_is_whole(db)
    status = query(db, "SELECT status, error_message FROM coincap.etl_runs")
    assert status[0][0] == "failed" and "ethereum" in status[0][1]

    slow_sim.reset_stats()
    with client_for(slow_sim, 4) as client:
        resumed = run_backfill(client, warehouse, windows)
    assert resumed.spent.calls == slow_sim.calls == 30 - done
    assert checkpoints(db) == 30
    every_checkpoint_is_whole(db)


def test_a_warehouse_failure_discards_the_calls_in_flight_and_resumes(
    slow_sim, warehouse, db
):
    windows = m1_windows(["bitcoin", "ethereum", "tether"], 10)
    with warehouse.managed_cursor() as cur:
        cur.execute(
            "CREATE FUNCTION refuse_tether() RETURNS trigger LANGUAGE plpgsql AS"
            " $$BEGIN RAISE EXCEPTION 'no tether today'; END$$;"
            " CREATE TRIGGER refuse_tether BEFORE INSERT ON coincap.asset_history"
            " FOR EACH ROW WHEN (NEW.asset_id = 'tether')"
            " EXECUTE FUNCTION refuse_tether()"
        )
    with client_for(slow_sim, 4) as client:
        with pytest.raises(errors.CryptoEtlError, match="no tether today"):
            run_backfill(client, warehouse, windows)
    done = checkpoints(db)
    assert done == 20  # every bitcoin and ethereum window, no tether one
    assert slow_sim.calls > done  # tether windows were fetched, then dropped
    every_checkpoint_is_whole(db)
    assert query(db, "SELECT status FROM coincap.etl_runs") == [("failed",)]

    with warehouse.managed_cursor() as cur:
        cur.execute("DROP TRIGGER refuse_tether ON coincap.asset_history")
    with client_for(slow_sim, 4) as client:
        resumed = run_backfill(client, warehouse, windows)
    assert resumed.spent.calls == 10
    assert checkpoints(db) == 30
    every_checkpoint_is_whole(db)


def test_run_all_fetches_its_pipelines_at_once_each_counting_its_own_calls(
    warehouse, db
):
    with (
        CoinCapSimulator(api_key=API_KEY, n_assets=120, latency_ms=50) as sim,
        client_for(sim, 4) as client,
    ):
        batch = run_many(PIPELINES.values(), client, warehouse)
    assert batch.error() is None
    runs = batch.runs
    assert [r.pipeline for r in runs] == list(PIPELINES)
    log = sim.request_log
    # Pipelines were fetched at once: calls of several were at the server
    # together (their first calls go out together; under load, at least two).
    assert most_at_once(log) >= 2
    assert len({r.path for r in log}) == 4
    stored = dict(query(db, "SELECT pipeline, api_calls FROM coincap.etl_runs"))
    served = {
        name: sum(1 for r in log if r.path == f"/v3{p.path}")
        for name, p in PIPELINES.items()
    }
    assert stored == served
    assert sum(r.spent.bytes for r in runs) == sim.bytes_sent


def test_ctrl_c_with_calls_in_flight_stops_at_once_and_records_the_run(
    env, simulator, db
):
    args = [sys.executable, "-m", "crypto_etl.cli", "backfill", "--asset", "bitcoin"]
    args += ["--interval", "m1", "--start", "2024-07-01", "--end", "2024-08-01"]
    simulator.delay_next(0.2, times=1000, path="/assets/bitcoin/history")
    proc = subprocess.Popen(
        args,
        env={**os.environ, **env, "COINCAP_MAX_IN_FLIGHT": "4"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    while checkpoints(db) < 3:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    # From now on each answer takes a minute: a Ctrl-C that waited for the
    # calls in flight would wait that long.
    simulator.clear_faults()
    simulator.delay_next(60, times=1000, path="/assets/bitcoin/history")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert query(db, "SELECT status, error_message FROM coincap.etl_runs") == [
        ("failed", "interrupted by SIGINT")
    ]
    every_checkpoint_is_whole(db)
