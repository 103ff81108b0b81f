"""Which Host headers the dashboard answers for, and the settings behind it."""

from pathlib import Path

import pytest

from crypto_etl.config import load_settings
from crypto_etl.dashboard.asgi import LOOPBACK_NAMES, allowed_hosts, host_matches
from crypto_etl.errors import ConfigError

BASE = {
    "WAREHOUSE_HOST": "127.0.0.1",
    "WAREHOUSE_PORT": "5432",
    "WAREHOUSE_DB": "coincap",
    "WAREHOUSE_USER": "etl",
    "WAREHOUSE_PASSWORD": "x",
}


@pytest.mark.parametrize("bind", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_bound_to_loopback_the_loopback_names_are_the_default(bind):
    assert allowed_hosts(bind, None) == LOOPBACK_NAMES


@pytest.mark.parametrize("bind", ["0.0.0.0", "::", "192.0.2.10"])
def test_bound_elsewhere_the_list_is_required(bind):
    with pytest.raises(ConfigError, match="DASHBOARD_ALLOWED_HOSTS is not set"):
        allowed_hosts(bind, None)


@pytest.mark.parametrize("bad", [["*"], ["evil host"], ["a/b"], []])
def test_a_list_that_is_not_host_names_is_refused(bad):
    with pytest.raises(ConfigError, match="must list host names"):
        allowed_hosts("0.0.0.0", bad)


@pytest.mark.parametrize(
    "header, allowed",
    [
        ("localhost", True),
        ("localhost:8050", True),
        ("127.0.0.1:8050", True),
        ("[::1]:8050", True),
        ("LOCALHOST", True),
        ("evil.example", False),
        ("localhost.evil.example", False),
        ("", False),
        ("[::1", False),
        ("localhost@evil.example", False),
    ],
)
def test_host_headers_match_by_name_whatever_the_port(header, allowed):
    assert host_matches(header, LOOPBACK_NAMES) is allowed


def test_a_leading_star_allows_subdomains_only():
    names = allowed_hosts("0.0.0.0", ["*.corp.example", "Dash.Example.org"])
    assert host_matches("eu.corp.example:443", names)
    assert host_matches("dash.example.org", names)
    assert not host_matches("corp.example", names)
    assert not host_matches("corp.example.evil", names)


def test_the_new_settings_are_read_and_checked(tmp_path: Path):
    env = {
        **BASE,
        "DASHBOARD_ALLOWED_HOSTS": " dash.example.org , localhost ",
        "COINCAP_CONNECT_TIMEOUT": "2",
        "COINCAP_READ_TIMEOUT": "9.5",
        "COINCAP_MAX_ATTEMPTS": "3",
        "WAREHOUSE_LOCK_TIMEOUT": "5",
        "WAREHOUSE_STATEMENT_TIMEOUT": "60",
    }
    settings = load_settings(env, tmp_path / "none")
    assert settings.dashboard_allowed_hosts == ("dash.example.org", "localhost")
    assert settings.coincap_timeout == (2.0, 9.5)
    assert settings.coincap_max_attempts == 3
    assert settings.warehouse.lock_timeout_s == 5.0
    assert settings.warehouse.statement_timeout_s == 60.0
    defaults = load_settings(BASE, tmp_path / "none")
    assert defaults.dashboard_allowed_hosts is None
    assert defaults.coincap_timeout == (5.0, 30.0)
    with pytest.raises(ConfigError, match="WAREHOUSE_LOCK_TIMEOUT must be a positive"):
        load_settings({**BASE, "WAREHOUSE_LOCK_TIMEOUT": "soon"}, tmp_path / "none")
