"""The fault matrix, CoinCap side: every way the API can fail a scheduled run.

Each case runs ``crypto-etl run exchanges`` (in-process, real HTTP to the
simulator, real PostgreSQL) after a first good run and a market tick, with
one fault injected, and proves what the README's fault table promises:

- the documented exit code and one clear line on stderr;
- the warehouse holds none of the failed run's rows (all or none);
- ``etl_runs`` stores the run ``failed`` with the same reason;
- once the fault clears, the next normal run succeeds and catches up (it
  loads exactly the rows the failed run would have).

Schema drift does not fail a run: it is either absorbed (a new field, a
missing optional one, a null number) or quarantined row by row in
``coincap.rejects``, and the next run loads what was held back.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import os
import time
from dataclasses import dataclass
from typing import Callable

import pytest

from conftest import query

pytestmark = pytest.mark.postgres

# The simulator's 60 exchanges, 40 of which report a new snapshot per tick.
CHANGED = 40
MIB = 1024 * 1024
HTML_PAGE = b"<html><body><h1>Sorry, something went wrong</h1></body></html>"


@pytest.fixture
def fast_env(env, monkeypatch):
    """Two tries per call and short timeouts, so retries run out in seconds."""
    fast = {
        "COINCAP_MAX_ATTEMPTS": "2",
        "COINCAP_CONNECT_TIMEOUT": "0.5",
        "COINCAP_READ_TIMEOUT": "1",
    }
    for key, value in fast.items():
        monkeypatch.setenv(key, value)
    return {**env, **fast}


@dataclass(frozen=True)
class Fault:
    """One failing case: how to inject it, the exit code, the reason's words."""

    name: str
    inject: Callable[..., None]
    code: int
    reason: str


def _always(status: int, **kw: object) -> Callable[..., None]:
    return lambda sim: sim.fail_next(status, times=10, path="/exchanges", **kw)


FAULTS = [
    Fault("401", _always(401), 4, "refused the API key (HTTP 401)"),
    Fault("403: out of credits", _always(403), 14, "credits are used up (HTTP 403)"),
    Fault("404", _always(404), 4, "not found (HTTP 404"),
    Fault(
        "429 with Retry-After",
        _always(429, retry_after="0"),
        5,
        "rate limited (HTTP 429)",
    ),
    Fault("429 without Retry-After", _always(429), 5, "rate limited (HTTP 429)"),
    Fault("500", _always(500), 5, "server error (HTTP 500)"),
    Fault("502", _always(502), 5, "server error (HTTP 502)"),
    Fault("503", _always(503), 5, "server error (HTTP 503)"),
    Fault(
        "read timeout",
        lambda sim: sim.delay_next(3, times=2, path="/exchanges"),
        5,
        "no answer in time",
    ),
    Fault(
        "connection reset mid-body",
        lambda sim: sim.truncate_next(times=10, path="/exchanges", mode="reset"),
        5,
        "connection failed",
    ),
    Fault(
        "body cut short",
        lambda sim: sim.truncate_next(times=10, path="/exchanges"),
        5,
        "connection failed",
    ),
    Fault(
        "truncated JSON",
        lambda sim: sim.truncate_next(times=10, path="/exchanges", mode="bad_json"),
        5,
        "not valid JSON",
    ),
    Fault(
        "wrong content type",
        lambda sim: sim.content_type_next("text/plain", times=10, path="/exchanges"),
        4,
        "expected JSON, got text/plain",
    ),
    Fault(
        "HTML error page with status 200",
        _always(200, body=HTML_PAGE),
        4,
        "expected JSON, got text/html",
    ),
    Fault(
        "response far larger than expected",
        lambda sim: sim.pad_next(17 * MIB, times=10, path="/exchanges"),
        4,
        "larger than 16 MiB",
    ),
]


def exchange_rows(db) -> int:
    return int(query(db, "SELECT count(*) FROM coincap.exchanges")[0][0])


def runs(db) -> list[tuple[str, str | None, int]]:
    return query(
        db,
        "SELECT status, error_message, rows_inserted FROM coincap.etl_runs"
        " WHERE pipeline = 'exchanges' ORDER BY run_id",
    )


def one_line(text: str) -> str:
    """The one line that says why (log lines of the retries may precede it)."""
    lines = text.strip().splitlines()
    said = [line for line in lines if line.startswith(("error:", "skipped:"))]
    assert said == lines[-1:], text
    assert "Traceback" not in text
    return said[0]


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.name)
def test_an_api_fault_fails_the_run_cleanly_and_the_next_run_catches_up(
    cli, fast_env, simulator, db, fault
):
    assert cli("run", "exchanges").code == 0
    loaded = exchange_rows(db)
    simulator.tick(CHANGED)
    fault.inject(simulator)

    failed = cli("run", "exchanges")

    assert failed.code == fault.code, failed.err
    line = one_line(failed.err)
    assert line.startswith("error: ") and fault.reason in line
    assert exchange_rows(db) == loaded  # none of the failed run's rows
    status, message, inserted = runs(db)[-1]
    assert (status, inserted) == ("failed", 0)
    assert message is not None and fault.reason in message

    simulator.clear_faults()
    again = cli("run", "exchanges")
    assert again.code == 0, again.err
    assert exchange_rows(db) == loaded + CHANGED
    assert runs(db)[-1] == ("succeeded", None, CHANGED)


@pytest.fixture
def black_hole():
    """A port that accepts no connection: its accept queue is full.

    The kernel then drops new SYNs, so connecting times out, as it does
    when a firewall drops the packets.
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    yield f"http://127.0.0.1:{port}/v3"
    for s in (*fillers, listener):
        s.close()


def test_a_connect_timeout_is_exit_5_and_the_next_run_catches_up(
    cli, fast_env, simulator, db, black_hole, monkeypatch
):
    assert cli("run", "exchanges").code == 0
    loaded = exchange_rows(db)
    simulator.tick(CHANGED)
    monkeypatch.setenv("COINCAP_BASE_URL", black_hole)

    failed = cli("run", "exchanges")

    assert failed.code == 5
    assert "no answer in time (gave up after 2 attempts)" in one_line(failed.err)
    assert exchange_rows(db) == loaded
    assert runs(db)[-1][:2] == (
        "failed",
        "GET /exchanges: no answer in time (gave up after 2 attempts)",
    )
    monkeypatch.setenv("COINCAP_BASE_URL", simulator.base_url)
    assert cli("run", "exchanges").code == 0
    assert exchange_rows(db) == loaded + CHANGED


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_one_transient_answer_is_retried_within_the_same_run(
    cli, fast_env, simulator, db, status
):
    simulator.fail_next(status, retry_after="0" if status == 429 else None)
    result = cli("run", "exchanges")
    assert result.code == 0, result.err
    assert simulator.calls_by_route["/exchanges"] == 2
    assert runs(db) == [("succeeded", None, 60)]
    assert query(db, "SELECT api_calls FROM coincap.etl_runs") == [(2,)]


@pytest.mark.parametrize(
    "mode, field, column",
    [
        ("new_field", "", "exchange_id"),
        ("missing_field", "tradingPairs", "trading_pairs"),
        ("null_number", "volumeUsd", "volume_usd"),
    ],
)
def test_a_new_field_is_ignored_and_a_missing_or_null_optional_one_loads_as_null(
    cli, fast_env, simulator, db, mode, field, column
):
    simulator.drift_next(mode, field, path="/exchanges")
    result = cli("run", "exchanges")
    assert result.code == 0, result.err
    non_null = 60 if mode == "new_field" else 0
    assert query(db, f"SELECT count(*), count({column}) FROM coincap.exchanges") == [
        (60, non_null)
    ]
    assert runs(db) == [("succeeded", None, 60)]


@pytest.mark.parametrize(
    "mode, field, reason",
    [
        ("null_number", "updated", "missing updated"),
        ("number_for_string", "name", "name 12345 is not a string"),
    ],
)
def test_drift_that_breaks_a_row_quarantines_it_and_the_next_run_loads_it(
    cli, fast_env, simulator, db, mode, field, reason
):
    simulator.drift_next(mode, field, path="/exchanges")
    drifted = cli("run", "exchanges")
    assert drifted.code == 0, drifted.err
    assert "fetched 60, inserted 0, rejected 60" in drifted.out
    assert exchange_rows(db) == 0
    assert query(
        db, "SELECT count(*), min(reason), max(reason) FROM coincap.rejects"
    ) == [(60, reason, reason)]
    assert query(db, "SELECT status, rows_rejected FROM coincap.etl_runs") == [
        ("succeeded", 60)
    ]

    again = cli("run", "exchanges")
    assert again.code == 0 and exchange_rows(db) == 60


def test_two_runs_at_once_one_loads_the_other_is_skipped(env, simulator, db):
    # The first holds the pipeline's lock while its call is slowed down.
    simulator.delay_next(2, path="/exchanges")
    command = [sys.executable, "-m", "crypto_etl.cli", "run", "exchanges"]
    process_env = {**os.environ, **env}
    first = subprocess.Popen(
        command, env=process_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 60
    while not query(db, "SELECT 1 FROM coincap.etl_runs WHERE status = 'running'"):
        assert time.monotonic() < deadline, "the first run never started"
        time.sleep(0.05)
    second = subprocess.run(
        command, env=process_env, capture_output=True, text=True, timeout=60
    )
    assert first.wait(timeout=60) == 0
    assert second.returncode == 10
    assert one_line(second.stderr).startswith("skipped: exchanges: another run")
    assert query(
        db, "SELECT status, rows_inserted FROM coincap.etl_runs ORDER BY run_id"
    ) == [("succeeded", 60), ("skipped", 0)]
    assert exchange_rows(db) == 60
