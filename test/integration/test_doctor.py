"""``crypto-etl doctor``: one line per check, exit 0 when nothing fails."""

import pytest

from conftest import free_port, query
from receiver import Receiver

# Each table's limits are the catalog's (see the fixture).
pytestmark = pytest.mark.usefixtures("every_five_minutes")


def lines(result):
    return {line[6:16].strip(): line for line in result.out.splitlines()}


def test_a_healthy_setup_passes_with_warnings_for_what_is_optional(cli, db):
    assert cli("run", "rates").code == 0
    result = cli("doctor")
    assert result.code == 0, result.out + result.err
    found = lines(result)
    assert list(found) == [
        "settings",
        "warehouse",
        "migrations",
        "reader",
        "api key",
        "credits",
        "schedule",
        "metabase",
        "alerts",
        "pings",
    ]
    assert found["warehouse"].startswith("ok    warehouse  etl_test@127.0.0.1:")
    assert found["migrations"].startswith("ok    migrations all ")
    assert found["reader"].startswith("warn  reader     WAREHOUSE_READER_USER")
    assert found["api key"] == (
        "ok    api key    CoinCap accepted it: GET /rates/bitcoin cost 1 credit"
        " (recorded as a `doctor` run)"
    )
    [(spent,)] = query(db, "SELECT sum(credits) FROM coincap.etl_runs")
    assert found["credits"].startswith(f"ok    credits    {spent} of 4000 this month")
    assert found["schedule"].endswith("; last run started 0 min ago")
    assert found["alerts"].startswith("warn  alerts     ALERT_URLS not set")
    assert found["pings"].startswith("warn  pings      HEALTHCHECK_URL not set")
    # The one call it made is accounted for like any run's.
    runs = "SELECT pipeline, status, credits FROM coincap.etl_runs ORDER BY run_id"
    assert query(db, runs)[-1] == ("doctor", "succeeded", 1)


def test_send_test_reaches_every_alert_and_ping_url(cli, monkeypatch):
    with Receiver() as receiver:
        host = receiver.url.removeprefix("http://")
        monkeypatch.setenv("ALERT_URLS", f"json://{host}/alerts")
        monkeypatch.setenv("HEALTHCHECK_URL", f"{receiver.url}/ping")
        monkeypatch.setenv("HEALTHCHECK_URL_RATES", f"{receiver.url}/rates")
        result = cli("doctor", "--send-test")
        assert result.code == 0, result.out
        assert [a["title"] for a in receiver.alerts()] == ["crypto-etl: test alert"]
        assert receiver.pings() == ["log"] and receiver.pings("rates") == ["log"]
    found = result.out.splitlines()
    assert f"ok    alerts     json://{host}: test alert delivered" in found
    assert "ok    pings      HEALTHCHECK_URL_RATES: /log ping delivered" in found


def test_an_undeliverable_test_alert_fails_with_exit_3(cli, monkeypatch):
    port = free_port()
    monkeypatch.setenv("ALERT_URLS", f"json://127.0.0.1:{port}/hook/t0ken-abc")
    result = cli("doctor", "--send-test")
    assert result.code == 3
    assert f"fail  alerts     json://127.0.0.1:{port}: test alert not delivered" in (
        result.out
    )
    assert "t0ken-abc" not in result.out + result.err


def test_a_wrong_key_fails_with_the_api_exit_code(cli, monkeypatch):
    monkeypatch.setenv("COINCAP_API_KEY", "wrong-key-0000000")
    result = cli("doctor")
    assert result.code == 4
    assert lines(result)["api key"].startswith(
        "fail  api key    GET /rates/bitcoin: CoinCap refused the API key"
    )
    assert "wrong-key-0000000" not in result.out + result.err


def test_a_warehouse_that_is_down_fails_with_exit_6_and_skips_the_paid_call(
    cli, monkeypatch, simulator
):
    monkeypatch.setenv("WAREHOUSE_PORT", str(free_port()))
    result = cli("doctor")
    assert result.code == 6
    found = lines(result)
    assert found["warehouse"].startswith("fail  warehouse  cannot connect")
    assert found["api key"].startswith("warn  api key    not tried")
    assert simulator.calls == 0


def test_a_bad_setting_is_the_first_and_only_line(cli, monkeypatch):
    monkeypatch.setenv("WAREHOUSE_PORT", "not-a-port")
    result = cli("doctor")
    assert result.code == 3
    assert result.out == (
        "fail  settings   WAREHOUSE_PORT must be a port number, got 'not-a-port'\n"
    )


def test_unknown_ping_names_and_alert_urls_fail_with_exit_3(cli, monkeypatch):
    monkeypatch.setenv("HEALTHCHECK_URL_EXCHANGE", "https://hc.example/x")
    monkeypatch.setenv("ALERT_URLS", "bogus://nothing")
    result = cli("doctor")
    assert result.code == 3
    assert "fail  alerts     ALERT_URLS entry 1 (bogus://) is not a URL Apprise" in (
        result.out
    )
    assert "fail  pings      HEALTHCHECK_URL_EXCHANGE names nothing that runs" in (
        result.out
    )
