"""No secret leaks: the API key and the passwords appear nowhere a person or a
log collector can read.

Every command runs as a real process with ``-v`` (DEBUG, the most verbose
level), in text and JSON log formats, through successes and failures (API
errors, a refused login, a database that is down, drifted rows); then every
``etl_runs`` and ``rejects`` row and every dashboard answer (each route, each
chart as JSON and CSV, the errors, a dashboard whose login is refused) is
searched for each secret.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import requests

from crypto_etl.config import load_settings
from crypto_etl.dashboard.definition import load_definition
from crypto_etl.dashboard.server import DashboardServer

from conftest import API_KEY, TEST_PASSWORD, free_port, query

pytestmark = pytest.mark.postgres

READER_PASSWORD = "reader-secret-Zq81"
WRONG_PASSWORD = "wrong-secret-Kx27"
SECRETS = (API_KEY, TEST_PASSWORD, READER_PASSWORD, WRONG_PASSWORD)


@pytest.fixture
def secret_env(env):
    return {
        **env,
        "WAREHOUSE_READER_USER": "leak_test_reader",
        "WAREHOUSE_READER_PASSWORD": READER_PASSWORD,
    }


def crypto_etl(env, *argv, **overrides) -> str:
    """Run the command at DEBUG; return everything it wrote."""
    done = subprocess.run(
        [sys.executable, "-m", "crypto_etl.cli", "-v", *argv],
        env={**os.environ, **env, **overrides},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"


def assert_no_secret(texts: list[str]) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, f"a secret leaked into: {text[:300]}"


def test_no_log_line_error_or_stored_row_holds_a_secret(secret_env, simulator, db):
    out = [crypto_etl(secret_env, "migrate")]
    out.append(crypto_etl(secret_env, "run", "all"))
    out.append(crypto_etl(secret_env, "--log-format", "json", "run", "all"))
    simulator.fail_next(500, path="/rates")
    simulator.fail_next(429, path="/rates")
    out.append(crypto_etl(secret_env, "run", "rates"))
    simulator.drift_next("number_for_string", "name", path="/exchanges")
    simulator.tick()
    out.append(crypto_etl(secret_env, "run", "exchanges"))
    simulator.fail_next(401, times=10)
    out.append(crypto_etl(secret_env, "--log-format", "json", "run", "assets"))
    simulator.clear_faults()
    out.append(
        crypto_etl(
            secret_env,
            "backfill",
            "--asset",
            "bitcoin",
            "--interval",
            "h1",
            "--start",
            "2024-01-01",
            "--end",
            "2024-01-03",
        )
    )
    out.append(crypto_etl(secret_env, "status"))
    out.append(
        crypto_etl(secret_env, "run", "exchanges", WAREHOUSE_PASSWORD=WRONG_PASSWORD)
    )
    out.append(crypto_etl(secret_env, "status", WAREHOUSE_PORT=str(free_port())))
    codes = [text.split("\n", 1)[0] for text in out]
    # Each path ran: successes, a partial failure, the refused key and login.
    assert codes.count("exit 0") >= 6 and "exit 4" in codes
    debug = ("DEBUG crypto_etl.coincap.client: GET", '"level": "debug"')
    assert sum(any(d in text for d in debug) for text in out) >= 5

    rows = query(db, "SELECT row_to_json(r)::text FROM coincap.etl_runs r")
    rows += query(db, "SELECT row_to_json(r)::text FROM coincap.rejects r")
    assert any("HTTP 401" in row for (row,) in rows)
    assert any("not a string" in row for (row,) in rows)
    assert_no_secret(out + [row for (row,) in rows])


def dashboard_paths() -> list[str]:
    paths = ["/", "/healthz", "/livez", "/metrics", "/static/dashboard.js"]
    paths += ["/docs/", "/nope", "/api/charts/nope", "/api/filters/nope"]
    for chart in load_definition().charts:
        paths += [f"/api/charts/{chart.id}", f"/api/charts/{chart.id}.csv"]
        paths.append(f"/api/charts/{chart.id}?since=bad")
    for name in ("since", "exchange", "asset"):
        paths.append(f"/api/filters/{name}")
    return paths


def test_no_dashboard_answer_holds_a_secret(secret_env, simulator, db):
    assert crypto_etl(secret_env, "migrate").startswith("exit 0")
    assert crypto_etl(secret_env, "run", "all").startswith("exit 0")
    settings = load_settings(secret_env)
    answers = []
    with DashboardServer(settings, port=0) as server:
        for path in dashboard_paths():
            response = requests.get(server.url.rstrip("/") + path, timeout=10)
            answers.append(f"{response.status_code} {response.headers} {response.text}")
        for method in ("POST", "DELETE"):
            response = requests.request(method, server.url, timeout=10)
            answers.append(f"{response.status_code} {response.text}")
    # A dashboard whose login is refused, and one whose warehouse is down.
    refused = load_settings({**secret_env, "WAREHOUSE_READER_PASSWORD": WRONG_PASSWORD})
    down = load_settings({**secret_env, "WAREHOUSE_PORT": str(free_port())})
    for broken in (refused, down):
        with DashboardServer(broken, port=0) as server:
            for path in ("/healthz", "/api/charts/pipeline_health", "/metrics"):
                response = requests.get(server.url.rstrip("/") + path, timeout=10)
                answers.append(f"{response.status_code} {response.text}")
    statuses = [int(answer.split(" ", 1)[0]) for answer in answers]
    assert 200 in statuses and 503 in statuses and 405 in statuses
    assert_no_secret(answers)
