"""The dashboard runs with the variables the Docker stack hands it, no more.

docker-compose.yml gives the dashboard service the warehouse's address and
the read-only login only (never the owner's WAREHOUSE_USER/PASSWORD). These
tests start the real ``crypto-etl dashboard`` with exactly that service's
variable names, filled for the suite's PostgreSQL, and check it serves.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml

from crypto_etl.warehouse.connection import WarehouseConnection
from crypto_etl.warehouse.roles import ensure_reader_role

from conftest import free_port

pytestmark = pytest.mark.postgres

REPO = Path(__file__).resolve().parents[2]
READER = ("least_privilege_reader", "least-privilege-test-password")


def _dashboard_variables() -> set[str]:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text("utf-8"))
    return set(compose["services"]["dashboard"]["environment"])


def _environment(db, tmp_path: Path) -> dict[str, str]:
    values = {
        "WAREHOUSE_HOST": db.host,
        "WAREHOUSE_PORT": str(db.port),
        "WAREHOUSE_DB": db.dbname,
        "WAREHOUSE_READER_USER": READER[0],
        "WAREHOUSE_READER_PASSWORD": READER[1],
        "DASHBOARD_ALLOWED_HOSTS": "localhost,127.0.0.1",
    }
    names = _dashboard_variables()
    assert names <= set(values), f"the test cannot fill {names - set(values)}"
    env = {name: values[name] for name in names}
    # No env file either: the container has none (.dockerignore drops it).
    env["CRYPTO_ETL_ENV_FILE"] = str(tmp_path / "no-env-file")
    env["PATH"] = os.environ["PATH"]
    return env


def test_the_dashboard_serves_with_only_the_reader_login(db, tmp_path):
    with WarehouseConnection(db) as warehouse:
        ensure_reader_role(warehouse, *READER)
    env = _environment(db, tmp_path)
    assert "WAREHOUSE_PASSWORD" not in env and "WAREHOUSE_USER" not in env
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "crypto_etl.cli", "dashboard", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        # The CLI prints the URL once the server accepts connections.
        ready = process.stdout.readline()
        assert ready.startswith("dashboard: http://127.0.0.1:"), (
            ready + process.stderr.read() if process.poll() is not None else ready
        )
        health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
        # The reader login alone answers the freshness check: no table is
        # stale (none has data yet) and the warehouse is reachable.
        assert health.status_code == 200
        assert health.json()["status"] == "ok"
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)


def test_other_commands_still_name_the_missing_owner_password(cli, env, monkeypatch):
    monkeypatch.delenv("WAREHOUSE_PASSWORD", raising=False)
    del env["WAREHOUSE_PASSWORD"]
    result = cli("status")
    assert result.code == 3
    assert "WAREHOUSE_PASSWORD" in result.err
