"""Metabase provisioning over real HTTP against the fake Metabase v0.64 API."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from fake_metabase import FakeMetabase

from conftest import free_port
from crypto_etl.config import (
    MetabaseSettings,
    ReaderSettings,
    Secret,
    Settings,
    WarehouseSettings,
)
from crypto_etl.dashboard.definition import Dashboard, load_definition
from crypto_etl.dashboard.metabase import (
    COLLECTION_NAME,
    DATABASE_NAME,
    ProvisionReport,
    provision_metabase,
)
from crypto_etl.errors import (
    ConfigError,
    MetabaseAuthError,
    MetabaseError,
    MetabaseUnavailable,
)

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "mb-admin-secret-42"
ETL_PASSWORD = "etl-secret-pw-7"
READER_PASSWORD = "reader-secret-pw-9"
PASSWORDS = (ADMIN_PASSWORD, ETL_PASSWORD, READER_PASSWORD)


@pytest.fixture
def fake() -> Iterator[FakeMetabase]:
    with FakeMetabase() as server:
        yield server


@pytest.fixture
def etl_settings() -> Settings:
    return Settings(
        warehouse=WarehouseSettings(
            host="127.0.0.1",
            port=5432,
            dbname="coincap",
            user="etl",
            password=Secret(ETL_PASSWORD),
        ),
        coincap_base_url="https://rest.coincap.io/v3",
        coincap_api_key=None,
        reader=ReaderSettings("coincap_reader", Secret(READER_PASSWORD)),
    )


@pytest.fixture
def mb_settings(fake: FakeMetabase) -> MetabaseSettings:
    return MetabaseSettings(
        url=fake.url, admin_email=ADMIN_EMAIL, admin_password=Secret(ADMIN_PASSWORD)
    )


@pytest.fixture
def definition() -> Dashboard:
    return load_definition()


def _no_password_in(text: str) -> None:
    for password in PASSWORDS:
        assert password not in text


def _report_text(report: ProvisionReport) -> str:
    return report.summary() + repr(report)


def test_first_run_sets_up_admin_reader_database_cards_and_dashboard(
    fake: FakeMetabase,
    etl_settings: Settings,
    mb_settings: MetabaseSettings,
    definition: Dashboard,
) -> None:
    report = provision_metabase(etl_settings, mb_settings, definition)

    assert fake.users == {ADMIN_EMAIL: ADMIN_PASSWORD}
    assert fake.setup_token is None
    assert fake.settings["anon-tracking-enabled"] is False
    [database] = fake.databases.values()
    assert database["name"] == DATABASE_NAME
    assert database["details"] == {
        "host": "warehouse",
        "port": 5432,
        "dbname": "coincap",
        "user": "coincap_reader",
        "password": READER_PASSWORD,
        "ssl": False,
    }
    assert fake.syncs == [database["id"]]
    [collection] = fake.collections.values()
    assert collection["name"] == COLLECTION_NAME
    cards = {c["name"]: c for c in fake.cards.values()}
    assert sorted(cards) == sorted(c.title for c in definition.charts)
    assert {c["collection_id"] for c in cards.values()} == {collection["id"]}
    [dashboard] = fake.dashboards.values()
    assert dashboard["name"] == definition.title
    assert [p["id"] for p in dashboard["parameters"]] == ["since", "exchange", "asset"]
    dashcards = fake.dashcards_of(dashboard["id"])
    assert sorted(d["card_id"] for d in dashcards) == sorted(
        c["id"] for c in cards.values()
    )
    for chart in definition.charts:
        [dashcard] = [d for d in dashcards if d["card_id"] == cards[chart.title]["id"]]
        assert sorted(
            m["parameter_id"] for m in dashcard["parameter_mappings"]
        ) == sorted(chart.parameters)
    assert report.names("unchanged") == []
    assert report.names("created", "card") == [c.title for c in definition.charts]
    assert report.dashboard_url == f"{fake.url}/dashboard/{dashboard['id']}"
    _no_password_in(_report_text(report))


def test_cards_carry_the_definition_sql_with_typed_template_tags(
    fake: FakeMetabase,
    etl_settings: Settings,
    mb_settings: MetabaseSettings,
    definition: Dashboard,
) -> None:
    provision_metabase(etl_settings, mb_settings, definition)

    [card] = [c for c in fake.cards.values() if c["name"] == "Price history (USD)"]
    native = card["dataset_query"]["native"]
    assert native["query"] == definition.chart("price_history").sql
    tags = native["template-tags"]
    assert tags["asset"]["type"] == "text"
    assert tags["asset"]["required"] is True
    assert tags["asset"]["default"] == "bitcoin"
    assert tags["since"]["type"] == "date"
    assert tags["since"]["required"] is False
    [area] = [c for c in fake.cards.values() if c["display"] == "area"]
    assert area["visualization_settings"] == {
        "graph.dimensions": ["hour", "exchange_name"],
        "graph.metrics": ["share_pct"],
        "stackable.stack_type": "stacked",
    }


def test_rerun_creates_nothing_and_reports_unchanged(
    fake: FakeMetabase,
    etl_settings: Settings,
    mb_settings: MetabaseSettings,
    definition: Dashboard,
) -> None:
    provision_metabase(etl_settings, mb_settings, definition)
    before = len(fake.requests)

    report = provision_metabase(etl_settings, mb_settings, definition)

    assert not report.changed
    assert len(report.names("unchanged")) == len(definition.charts) + 4
    writes = fake.requests[before:]
    database_id = next(iter(fake.databases))
    assert [w for w in writes if w[0] != "GET"] == [
        ("POST", "/api/session"),
        ("POST", f"/api/database/{database_id}/sync_schema"),
    ]
    assert len(fake.cards) == len(definition.charts)
    assert len(fake.dashboards) == 1


def test_changed_sql_updates_exactly_that_card(
    fake: FakeMetabase,
    etl_settings: Settings,
    mb_settings: MetabaseSettings,
    definition: Dashboard,
) -> None:
    provision_metabase(etl_settings, mb_settings, definition)
    chart = definition.chart("top_exchanges")
    new_sql = chart.sql.replace("LIMIT 10", "LIMIT 15")
    charts = tuple(
        dataclasses.replace(c, sql=new_sql) if c.id == chart.id else c
        for c in definition.charts
    )
    edited = dataclasses.replace(definition, charts=charts)
    before = len(fake.requests)

    report = provision_metabase(etl_settings, mb_settings, edited)

    assert report.names("updated") == [chart.title]
    assert report.names("created") == []
    [card] = [c for c in fake.cards.values() if c["name"] == chart.title]
    assert card["dataset_query"]["native"]["query"] == new_sql
    card_writes = [w for w in fake.requests[before:] if "/api/card" in w[1]]
    assert card_writes == [("GET", "/api/card"), ("PUT", f"/api/card/{card['id']}")]


def test_dashboard_edited_by_hand_is_restored_keeping_its_dashcard_ids(
    fake: FakeMetabase,
    etl_settings: Settings,
    mb_settings: MetabaseSettings,
    definition: Dashboard,
) -> None:
    report = provision_metabase(etl_settings, mb_settings, definition)
    assert report.dashboard_id is not None
    original = {d["card_id"]: d["id"] for d in fake.dashcards_of(report.dashboard_id)}
    removed = min(original.values())
    del fake.dashcards[removed]

    again = provision_metabase(etl_settings, mb_settings, definition)

    assert again.names("updated") == [definition.title]
    restored = {d["card_id"]: d["id"] for d in fake.dashcards_of(report.dashboard_id)}
    assert set(restored) == set(original)
    kept = {card: id_ for card, id_ in original.items() if id_ != removed}
    assert {card: restored[card] for card in kept} == kept


def test_changed_warehouse_host_updates_the_database_with_the_password(
    fake: FakeMetabase,
    etl_settings: Settings,
    mb_settings: MetabaseSettings,
    definition: Dashboard,
) -> None:
    provision_metabase(etl_settings, mb_settings, definition)
    moved = dataclasses.replace(mb_settings, warehouse_host="db.internal")

    report = provision_metabase(etl_settings, moved, definition)

    assert report.names("updated") == [DATABASE_NAME]
    [database] = fake.databases.values()
    assert database["details"]["host"] == "db.internal"
    assert database["details"]["password"] == READER_PASSWORD


def test_wrong_admin_password_fails_naming_the_settings_to_check(
    fake: FakeMetabase,
    etl_settings: Settings,
    mb_settings: MetabaseSettings,
    definition: Dashboard,
) -> None:
    provision_metabase(etl_settings, mb_settings, definition)
    wrong = dataclasses.replace(mb_settings, admin_password=Secret("not-it-123"))

    with pytest.raises(MetabaseAuthError) as caught:
        provision_metabase(etl_settings, wrong, definition)

    message = str(caught.value)
    assert "METABASE_ADMIN_EMAIL" in message and "METABASE_ADMIN_PASSWORD" in message
    assert "not-it-123" not in message
    _no_password_in(message)


def test_unreachable_metabase_fails_naming_the_url(
    etl_settings: Settings, definition: Dashboard
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    settings = MetabaseSettings(url, ADMIN_EMAIL, Secret(ADMIN_PASSWORD))

    with pytest.raises(MetabaseUnavailable) as caught:
        provision_metabase(etl_settings, settings, definition, ready_timeout=0.5)

    message = str(caught.value)
    assert url in message and "METABASE_URL" in message
    _no_password_in(message)


def test_no_setup_token_and_no_admin_fails_clearly(
    fake: FakeMetabase,
    etl_settings: Settings,
    mb_settings: MetabaseSettings,
    definition: Dashboard,
) -> None:
    fake.setup_token = None

    with pytest.raises(MetabaseError, match="no admin yet but offers no setup token"):
        provision_metabase(etl_settings, mb_settings, definition)

    assert fake.writes() == []


def test_refused_warehouse_connection_names_the_target_but_no_password(
    fake: FakeMetabase,
    etl_settings: Settings,
    mb_settings: MetabaseSettings,
    definition: Dashboard,
) -> None:
    # Even if Metabase echoed the submitted password, it must not reach the user.
    fake.database_refusal = f"FATAL: password {READER_PASSWORD!r} rejected"

    with pytest.raises(MetabaseError) as caught:
        provision_metabase(etl_settings, mb_settings, definition)

    message = str(caught.value)
    assert "warehouse:5432/coincap as coincap_reader" in message
    assert "********" in message
    _no_password_in(message)


def test_missing_reader_role_is_a_config_error_before_any_request(
    fake: FakeMetabase,
    etl_settings: Settings,
    mb_settings: MetabaseSettings,
    definition: Dashboard,
) -> None:
    no_reader = dataclasses.replace(etl_settings, reader=None)

    with pytest.raises(ConfigError, match="WAREHOUSE_READER_PASSWORD"):
        provision_metabase(no_reader, mb_settings, definition)

    assert fake.requests == []


# -- the fake itself refuses what real Metabase refuses ----------------------


def _session(fake: FakeMetabase) -> requests.Session:
    http = requests.Session()
    token = http.get(f"{fake.url}/api/session/properties").json()["setup-token"]
    body = {
        "token": token,
        "user": {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD},
        "prefs": {"site_name": "x"},
    }
    http.headers["X-Metabase-Session"] = http.post(
        f"{fake.url}/api/setup", json=body
    ).json()["id"]
    return http


def _provisioned(
    fake: FakeMetabase, etl_settings: Settings, mb: MetabaseSettings
) -> Any:
    report = provision_metabase(etl_settings, mb, load_definition())
    http = requests.Session()
    login = {"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    http.headers["X-Metabase-Session"] = http.post(
        f"{fake.url}/api/session", json=login
    ).json()["id"]
    return http, report.dashboard_id


@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_fake_answers_404_to_the_removed_dashboard_cards_endpoint(
    fake: FakeMetabase, method: str
) -> None:
    http = _session(fake)

    response = http.request(method, f"{fake.url}/api/dashboard/1/cards", json={})

    assert response.status_code == 404


def test_fake_refuses_a_card_whose_tags_do_not_match_its_variables(
    fake: FakeMetabase,
) -> None:
    http = _session(fake)
    database = http.post(
        f"{fake.url}/api/database",
        json={
            "engine": "postgres",
            "name": "w",
            "details": {
                "host": "h",
                "port": 1,
                "dbname": "d",
                "user": "u",
                "password": "p",
            },
        },
    ).json()
    card = {
        "name": "c",
        "display": "table",
        "visualization_settings": {},
        "dataset_query": {
            "type": "native",
            "database": database["id"],
            "native": {"query": "SELECT {{a}}", "template-tags": {}},
        },
    }

    response = http.post(f"{fake.url}/api/card", json=card)

    assert response.status_code == 400
    assert "template-tags" in response.json()["errors"]


def test_fake_refuses_a_date_variable_mapped_to_a_text_filter(
    fake: FakeMetabase, etl_settings: Settings, mb_settings: MetabaseSettings
) -> None:
    http, dashboard_id = _provisioned(fake, etl_settings, mb_settings)
    dashcard = next(
        d
        for d in fake.dashcards_of(dashboard_id)
        if any(m["parameter_id"] == "since" for m in d["parameter_mappings"])
    )
    wrong = {
        "parameter_id": "exchange",
        "card_id": dashcard["card_id"],
        "target": ["variable", ["template-tag", "since"]],
    }
    keys = ("id", "card_id", "row", "col", "size_x", "size_y")
    body = {
        "dashcards": [{**{k: dashcard[k] for k in keys}, "parameter_mappings": [wrong]}]
    }

    response = http.put(f"{fake.url}/api/dashboard/{dashboard_id}", json=body)

    assert response.status_code == 400
    assert "cannot be connected" in response.text


def test_fake_refuses_dashcards_with_keys_metabase_does_not_accept(
    fake: FakeMetabase, etl_settings: Settings, mb_settings: MetabaseSettings
) -> None:
    http, dashboard_id = _provisioned(fake, etl_settings, mb_settings)
    current = http.get(f"{fake.url}/api/dashboard/{dashboard_id}").json()["dashcards"]

    # What GET returns cannot be sent back as is: the PUT schema is closed.
    response = http.put(
        f"{fake.url}/api/dashboard/{dashboard_id}", json={"dashcards": current}
    )

    assert response.status_code == 400
