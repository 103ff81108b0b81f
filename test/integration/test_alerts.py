"""Alerts and dead-man's pings over real HTTP, with the state in PostgreSQL.

The receiver stands in for Slack (Apprise's ``json://`` posts to /alerts)
and for healthchecks.io (pings to /ping and /ping-<name>).
"""

from datetime import datetime, timedelta, timezone

import pytest

from crypto_etl.simulator import CoinCapSimulator

from conftest import API_KEY, TEST_PASSWORD, free_port, holding_lock, query
from receiver import Receiver

# Each table's limits are the catalog's (see the fixture).
pytestmark = pytest.mark.usefixtures("every_five_minutes")


WRONG_KEY = "wrong-key-abcdef123456"


@pytest.fixture
def simulator():
    """A simulator whose market time is now, so freshly loaded data is fresh."""
    now_ms = int(datetime.now(timezone.utc).timestamp() * 1000)
    sim = CoinCapSimulator(
        api_key=API_KEY, n_exchanges=60, n_assets=120, start_ms=now_ms
    )
    with sim:
        yield sim


@pytest.fixture
def receiver():
    with Receiver() as r:
        yield r


@pytest.fixture
def watched(cli, monkeypatch, receiver):
    """The CLI with ALERT_URLS and HEALTHCHECK_URL pointing at the receiver."""
    host = receiver.url.removeprefix("http://")
    monkeypatch.setenv("ALERT_URLS", f"json://{host}/alerts")
    monkeypatch.setenv("HEALTHCHECK_URL", f"{receiver.url}/ping")
    return cli


def titles(receiver):
    return [a["title"] for a in receiver.alerts()]


def test_a_failing_run_sends_one_alert_and_one_fail_ping(
    watched, monkeypatch, receiver
):
    monkeypatch.setenv("COINCAP_API_KEY", WRONG_KEY)
    result = watched("run", "exchanges")
    assert result.code == 4
    assert receiver.pings() == ["start", "fail"]
    [alert] = receiver.alerts()
    assert alert["type"] == "failure"
    assert alert["title"].startswith("crypto-etl: exchanges run failed: GET /exchanges")
    assert "COINCAP_API_KEY" in alert["message"] and "Check" in alert["message"]
    fail = [r for r in receiver.requests if r.path == "/ping/fail"][0]
    assert b"CoinCap refused the API key" in fail.body


def test_a_repeated_failure_sends_no_new_alert_and_recovery_sends_resolved(
    watched, monkeypatch, receiver
):
    monkeypatch.setenv("COINCAP_API_KEY", WRONG_KEY)
    assert watched("run", "exchanges").code == 4
    receiver.clear()
    assert watched("run", "exchanges").code == 4
    assert receiver.alerts() == []
    assert receiver.pings() == ["start", "fail"]

    monkeypatch.setenv("COINCAP_API_KEY", API_KEY)
    receiver.clear()
    assert watched("run", "exchanges").code == 0
    assert receiver.pings() == ["start", "success"]
    [resolved] = receiver.alerts()
    assert resolved["type"] == "success"
    assert resolved["title"].startswith("crypto-etl: resolved: exchanges run failed")
    receiver.clear()
    assert watched("run", "exchanges").code == 0
    assert receiver.alerts() == []


def test_the_same_failure_after_recovery_is_announced_again(
    watched, monkeypatch, receiver
):
    for key in (WRONG_KEY, API_KEY, WRONG_KEY):
        monkeypatch.setenv("COINCAP_API_KEY", key)
        watched("run", "exchanges")
    assert [t.split(":")[1].strip() for t in titles(receiver)] == [
        "exchanges run failed",
        "resolved",
        "exchanges run failed",
    ]


def test_an_unreachable_alert_url_changes_neither_exit_code_nor_data(
    cli, monkeypatch, db
):
    port = free_port()
    monkeypatch.setenv("ALERT_URLS", f"json://127.0.0.1:{port}/hook/s3cret-token")
    monkeypatch.setenv("HEALTHCHECK_URL", f"http://127.0.0.1:{port}/ping/tok3n")
    monkeypatch.setenv("COINCAP_MONTHLY_CREDITS", "1")  # an alert is due
    result = cli("run", "exchanges", "--ignore-budget")
    assert result.code == 0
    assert result.out.startswith("exchanges: fetched 60, inserted 60")
    assert query(db, "SELECT count(*) FROM coincap.exchanges") == [(60,)]
    assert query(db, "SELECT status FROM coincap.etl_runs") == [("succeeded",)]
    assert f"alerts: not delivered to json://127.0.0.1:{port}" in result.err
    assert "ping HEALTHCHECK_URL /start failed" in result.err
    assert "s3cret-token" not in result.err and "tok3n" not in result.err
    # Not delivered, so it is still due: the next check tries again.
    stored = "SELECT alert_key, opened_sent FROM coincap.alert_state ORDER BY 1"
    assert query(db, stored) == [
        ("credits:100", False),
        ("credits:80", False),
    ]


def test_an_undelivered_alert_is_sent_on_the_next_check(
    watched, monkeypatch, receiver, db
):
    monkeypatch.setenv("COINCAP_MONTHLY_CREDITS", "1")
    host = receiver.url.removeprefix("http://")
    monkeypatch.setenv("ALERT_URLS", f"json://127.0.0.1:{free_port()}/alerts")
    watched("run", "exchanges", "--ignore-budget")
    assert receiver.alerts() == []
    monkeypatch.setenv("ALERT_URLS", f"json://{host}/alerts")
    watched("run", "rates", "--ignore-budget")
    [(spent,)] = query(db, "SELECT sum(credits) FROM coincap.etl_runs")
    # Sent with the figures of the check that delivered it.
    assert sorted(titles(receiver)) == [
        f"crypto-etl: credits: {spent} of the 1 monthly budget spent (100% reached)",
        f"crypto-etl: credits: {spent} of the 1 monthly budget spent (80% reached)",
    ]


def test_a_lock_skip_counts_as_success(watched, db, receiver):
    with holding_lock(db, "exchanges"):
        result = watched("run", "exchanges")
    assert result.code == 10
    assert receiver.pings() == ["start", "success"]
    assert receiver.alerts() == []


def test_run_all_pings_each_pipeline_its_own_url(
    watched, monkeypatch, receiver, simulator
):
    for name in ("exchanges", "rates"):
        monkeypatch.setenv(f"HEALTHCHECK_URL_{name.upper()}", f"{receiver.url}/{name}")
    simulator.fail_always(404, path="/rates")
    result = watched("run", "all")
    assert result.code == 8
    assert receiver.pings() == ["start", "fail"]
    assert receiver.pings("exchanges") == ["start", "success"]
    assert receiver.pings("rates") == ["start", "fail"]
    rids = {r.query["rid"][0] for r in receiver.requests if "rid" in r.query}
    assert len(rids) == 1  # one command: one run id on every ping
    [alert] = receiver.alerts()
    assert alert["title"].startswith("crypto-etl: rates run failed: GET /rates")


def test_an_abandoned_run_is_announced_once(watched, db, receiver):
    query(
        db,
        "INSERT INTO coincap.etl_runs (pipeline, started_at, status)"
        " VALUES ('rates', now() - interval '1 hour', 'running')",
    )
    assert watched("run", "rates").code == 0
    [alert] = receiver.alerts()
    assert alert["title"].startswith("crypto-etl: rates run 1 (started ")
    assert alert["title"].endswith("was abandoned")
    assert "killed" in alert["message"]
    receiver.clear()
    assert watched("run", "rates").code == 0
    assert receiver.alerts() == []


def test_stale_data_is_announced_then_resolved(watched, db, receiver):
    assert watched("run", "rates").code == 0
    query(db, "UPDATE coincap.rates SET snapshot_at = snapshot_at - interval '3 hours'")
    receiver.clear()
    assert watched("run", "exchanges").code == 0
    [alert] = receiver.alerts()
    assert alert["title"] == (
        "crypto-etl: rates data is stale: coincap.rates: newest row 3 h old"
        " (limit 60 min)"
    )
    receiver.clear()
    assert watched("run", "rates").code == 0
    [resolved] = receiver.alerts()
    assert resolved["title"].startswith("crypto-etl: resolved: rates data is stale")


def test_a_failed_error_severity_data_test_is_announced(watched, db, receiver):
    query(
        db,
        "INSERT INTO coincap.dq_results (run_at, invocation_id, test_name, model,"
        " status, severity, failures, execution_time_s, message) VALUES"
        " (now(), 'inv-1', 'unique_assets_current_asset_id', 'assets_current',"
        "  'fail', 'error', 3, 0.1, 'Got 3 results, configured to fail if != 0'),"
        " (now(), 'inv-1', 'not_null_rates_rate_id', 'rates', 'warn', 'warn', 1,"
        "  0.1, NULL)",
    )
    assert watched("run", "rates").code == 0
    assert titles(receiver) == [
        "crypto-etl: transform: data test unique_assets_current_asset_id on"
        " assets_current failed: Got 3 results, configured to fail if != 0"
    ]


def test_no_secret_appears_in_any_alert_or_ping(watched, monkeypatch, receiver, db):
    monkeypatch.setenv("COINCAP_API_KEY", WRONG_KEY)
    monkeypatch.setenv("COINCAP_MONTHLY_CREDITS", "1")
    query(
        db,
        "INSERT INTO coincap.etl_runs (pipeline, started_at, finished_at, status,"
        " credits, error_message) VALUES ('exchanges', now(), now(), 'failed', 5,"
        " %s)",
        (f"boom {WRONG_KEY} {TEST_PASSWORD}",),
    )
    query(
        db,
        "INSERT INTO coincap.etl_runs (pipeline, started_at, status)"
        " VALUES ('exchanges', now(), 'running')",
    )
    watched("run", "exchanges", "--ignore-budget")
    monkeypatch.setenv("COINCAP_API_KEY", API_KEY)
    watched("run", "exchanges", "--ignore-budget")
    assert len(receiver.alerts()) >= 4
    everything = b"".join(r.body + r.path.encode() for r in receiver.requests)
    for secret in (WRONG_KEY, API_KEY, TEST_PASSWORD):
        assert secret.encode() not in everything


def test_without_alert_urls_nothing_is_stored_or_sent(cli, db, receiver, monkeypatch):
    monkeypatch.setenv("HEALTHCHECK_URL", f"{receiver.url}/ping")
    assert cli("run", "rates").code == 0
    assert receiver.pings() == ["start", "success"]
    assert query(db, "SELECT count(*) FROM coincap.alert_state") == [(0,)]


def test_a_dry_run_backfill_pings_nothing(watched, receiver):
    result = watched(
        "backfill",
        "--asset",
        "bitcoin",
        "--interval",
        "h1",
        "--start",
        "2024-01-01",
        "--end",
        "2024-01-02",
        "--dry-run",
    )
    assert result.code == 0
    assert receiver.requests == []


def test_a_warehouse_that_is_down_still_gets_the_fail_ping(
    watched, monkeypatch, receiver
):
    monkeypatch.setenv("WAREHOUSE_PORT", str(free_port()))
    result = watched("run", "rates")
    assert result.code == 6
    assert receiver.pings() == ["start", "fail"]
    assert "alerts: cannot read the runs' outcomes" in result.err


def _ago(hours: float) -> datetime:
    return datetime.now(timezone.utc) - timedelta(hours=hours)
