"""Provisioning with a Metabase API key (METABASE_API_KEY), over real HTTP
against the fake Metabase: the key replaces the admin's login where the
server has API keys (v0.49+), and the admin login is the fallback."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from fake_metabase import FakeMetabase

from crypto_etl.config import (
    MetabaseSettings,
    ReaderSettings,
    Secret,
    Settings,
    WarehouseSettings,
    load_settings,
)
from crypto_etl.dashboard.definition import load_definition
from crypto_etl.dashboard.metabase import provision_metabase
from crypto_etl.errors import MetabaseAuthError

ADMIN = ("admin@example.com", "mb-admin-secret-42")
API_KEY = "mb-fake-key-1"  # a test value, not a real key


@pytest.fixture
def fake() -> Iterator[FakeMetabase]:
    with FakeMetabase() as server:
        yield server


@pytest.fixture
def settings() -> Settings:
    return Settings(
        warehouse=WarehouseSettings("127.0.0.1", 5432, "coincap", "etl", Secret("e")),
        coincap_base_url="https://rest.coincap.io/v3",
        coincap_api_key=None,
        reader=ReaderSettings("coincap_reader", Secret("reader-pw")),
    )


def _metabase(fake: FakeMetabase, api_key: str | None) -> MetabaseSettings:
    return MetabaseSettings(
        url=fake.url,
        admin_email=ADMIN[0],
        admin_password=Secret(ADMIN[1]),
        api_key=None if api_key is None else Secret(api_key),
    )


def _set_up(fake: FakeMetabase, settings: Settings) -> None:
    """First boot: the admin exists (only an admin can then make a key)."""
    provision_metabase(settings, _metabase(fake, None), load_definition())
    fake.api_keys.add(API_KEY)
    fake.requests.clear()


def test_provisioning_uses_the_api_key_and_never_logs_the_admin_in(fake, settings):
    _set_up(fake, settings)
    report = provision_metabase(settings, _metabase(fake, API_KEY), load_definition())
    assert ("POST", "/api/session") not in fake.requests
    assert report.names("unchanged", "login") == ["METABASE_API_KEY"]
    assert not report.changed
    assert API_KEY not in report.summary() + repr(report)


def test_a_refused_api_key_says_to_check_it(fake, settings):
    _set_up(fake, settings)
    with pytest.raises(MetabaseAuthError, match="check METABASE_API_KEY") as refused:
        provision_metabase(settings, _metabase(fake, "wrong"), load_definition())
    assert "wrong" not in str(refused.value)


def test_a_metabase_without_api_keys_gets_the_admin_login(fake, settings, caplog):
    _set_up(fake, settings)
    fake.version_tag = "v0.48.9"
    with caplog.at_level(logging.WARNING):
        report = provision_metabase(
            settings, _metabase(fake, API_KEY), load_definition()
        )
    assert ("POST", "/api/session") in fake.requests
    assert report.names("unchanged", "admin") == [ADMIN[0]]
    assert "no API keys" in caplog.text


def test_first_boot_sets_up_the_admin_even_with_a_key(fake, settings):
    provision_metabase(settings, _metabase(fake, API_KEY), load_definition())
    assert fake.users == {ADMIN[0]: ADMIN[1]}


def test_the_api_key_is_read_from_metabase_api_key_and_never_shown(tmp_path):
    env = {
        "WAREHOUSE_HOST": "h",
        "WAREHOUSE_PORT": "5432",
        "WAREHOUSE_DB": "d",
        "WAREHOUSE_USER": "u",
        "WAREHOUSE_PASSWORD": "p",
        "METABASE_URL": "http://127.0.0.1:3000",
        "METABASE_ADMIN_EMAIL": ADMIN[0],
        "METABASE_ADMIN_PASSWORD": ADMIN[1],
        "METABASE_API_KEY": API_KEY,
    }
    loaded = load_settings(env, tmp_path / "no-env-file")
    metabase = loaded.require_metabase()
    assert metabase.api_key == Secret(API_KEY)
    assert API_KEY not in repr(loaded) + repr(metabase)
    assert API_KEY in loaded.secrets()  # so the log filter redacts it
