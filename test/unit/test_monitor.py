"""The monitoring's pure parts: settings, ping URLs, freshness, problems, labels."""

import logging
import signal
from datetime import datetime, timedelta, timezone

import pytest

from crypto_etl.config import Secret, load_settings
from crypto_etl.errors import (
    ConfigError,
    CryptoEtlError,
    DataQualityError,
    Interrupted,
    RunSkipped,
)
from crypto_etl.logs import RedactSecrets
from crypto_etl.monitor import notify, problems
from crypto_etl.monitor.freshness import assess, human_age
from crypto_etl.monitor.checks import Outcome
from crypto_etl.monitor.pings import ping_url, targets
from crypto_etl.monitor.watch import command_outcome, exit_code_of
from crypto_etl.warehouse.status import CreditUsage

BASE = {
    "WAREHOUSE_HOST": "h",
    "WAREHOUSE_PORT": "5432",
    "WAREHOUSE_DB": "d",
    "WAREHOUSE_USER": "u",
    "WAREHOUSE_PASSWORD": "pw-unit-test",
}
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def settings(tmp_path, **values):
    return load_settings({**BASE, **values}, tmp_path / "no-env")


def test_alert_urls_split_on_spaces_and_commas(tmp_path):
    s = settings(tmp_path, ALERT_URLS=" json://a/x, slack://T/B/C  ntfys://n/t ")
    assert [u.reveal() for u in s.monitor.alert_urls] == [
        "json://a/x",
        "slack://T/B/C",
        "ntfys://n/t",
    ]


def test_monitoring_urls_are_secrets_hidden_from_repr_and_redacted_in_logs(
    tmp_path, caplog
):
    s = settings(
        tmp_path,
        ALERT_URLS="slack://TokA/TokB/TokC",
        HEALTHCHECK_URL="https://hc.example/ping/uuid-1234",
    )
    assert "TokA" not in repr(s) and "uuid-1234" not in repr(s)
    record = logging.LogRecord(
        "x", logging.INFO, "", 0, "to %s", (s.secrets()[-1],), None
    )
    RedactSecrets(s.secrets()).filter(record)
    assert "uuid-1234" not in record.getMessage()


def test_a_ping_url_that_is_not_http_is_refused_without_showing_it(tmp_path):
    with pytest.raises(ConfigError) as caught:
        settings(tmp_path, HEALTHCHECK_URL_RATES="hc-ping.com/secret-uuid")
    assert str(caught.value) == "HEALTHCHECK_URL_RATES must be an http(s) URL"


def test_a_command_pings_the_general_url_and_each_of_its_pipelines_own(tmp_path):
    s = settings(
        tmp_path,
        HEALTHCHECK_URL="https://hc/all",
        HEALTHCHECK_URL_EXCHANGES="https://hc/ex",
        HEALTHCHECK_URL_BACKFILL="https://hc/bf",
    )
    found = targets(s.monitor, ["exchanges", "assets"])
    assert [t.variable for t in found] == [
        "HEALTHCHECK_URL",
        "HEALTHCHECK_URL_EXCHANGES",
    ]


@pytest.mark.parametrize(
    "base, suffix, expected",
    [
        ("https://hc-ping.com/abc", "start", "https://hc-ping.com/abc/start?rid=r1"),
        ("https://hc-ping.com/abc/", "", "https://hc-ping.com/abc?rid=r1"),
        (
            "http://kuma/api/push/t?status=up",
            "fail",
            "http://kuma/api/push/t/fail?status=up&rid=r1",
        ),
    ],
)
def test_ping_urls_follow_the_healthchecks_convention(base, suffix, expected):
    assert ping_url(base, suffix, "r1") == expected


def test_freshness_states_follow_the_catalog_limits():
    newest = {
        "exchanges": NOW - timedelta(minutes=5),
        "assets": NOW - timedelta(minutes=20),
        "markets": NOW - timedelta(hours=2),
        "backfill": NOW - timedelta(hours=30),
    }
    states = {t.pipeline: t.state for t in assess(newest, NOW, {})}
    assert states == {
        "exchanges": "ok",
        "assets": "warn",
        "markets": "stale",
        "rates": "no_data",
        "backfill": "warn",
    }


def test_ages_read_in_the_largest_unit_that_fits():
    assert human_age(timedelta(minutes=40)) == "40 min"
    assert human_age(timedelta(hours=3)) == "3 h"
    assert human_age(timedelta(hours=26, minutes=30)) == "26.5 h"
    assert human_age(timedelta(days=4)) == "4 d"


@pytest.mark.parametrize(
    "spent, keys",
    [(79, []), (80, ["credits:80"]), (100, ["credits:80", "credits:100"])],
)
def test_credit_alerts_at_80_and_100_percent(spent, keys):
    found = problems.credit_problems(CreditUsage(today=0, month=spent, budget=100))
    assert [p.key for p in found] == keys
    assert all(
        p.subject == "credits" and "COINCAP_MONTHLY_CREDITS" in p.check for p in found
    )


def test_a_run_failure_message_is_one_line_with_what_to_check():
    p = problems.run_failed("markets", "GET /markets: HTTP 500\n  detail\n")
    assert p.title == "crypto-etl: markets run failed: GET /markets: HTTP 500 detail"
    assert p.body.endswith(
        "Check `crypto-etl status` and the etl log; the next scheduled run retries."
    )


def test_destination_labels_never_show_a_token_or_password():
    urls = [
        "slack://TokenAAA/TokenBBB/TokenCCC",
        "json://user:pw123456@host.example:8080/hook/abc123",
    ]

    labels = [d.label for d in notify.destinations([Secret(u) for u in urls])]
    assert labels[1] == "json://host.example:8080"
    assert not any(
        t in "".join(labels)
        for t in ("TokenAAA", "TokenBBB", "TokenCCC", "pw123456", "abc123")
    )


@pytest.mark.parametrize(
    "error, expected",
    [
        (None, Outcome("succeeded")),
        (
            RunSkipped("exchanges: another run is in progress; skipped"),
            Outcome("skipped"),
        ),
        (DataQualityError("2 data-quality check(s) failed"), Outcome("failed")),
        (
            ConfigError("COINCAP_API_KEY is not set"),
            Outcome("failed", "COINCAP_API_KEY is not set"),
        ),
        (Interrupted(signal.SIGTERM), Outcome("failed", "interrupted by SIGTERM")),
    ],
)
def test_how_a_command_ended_decides_the_ping_and_the_run_alert(error, expected):
    # A data-test failure pings /fail but is announced by its tests, not as
    # a failed run; a lock skip is a success for the dead-man's ping.
    assert command_outcome(error) == expected


def test_a_budget_skip_counts_as_success():
    class BudgetSkip(CryptoEtlError):
        exit_code = 15

    assert exit_code_of(BudgetSkip("over budget")) == 15
    assert command_outcome(BudgetSkip("over budget")) == Outcome("skipped")
    assert exit_code_of(Interrupted(signal.SIGTERM)) == 143
