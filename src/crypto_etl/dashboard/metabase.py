"""Provision Metabase from the shared dashboard definition, idempotently by name.

Written for Metabase v0.64 (the image ``metabase/metabase:v0.64.6`` pinned in
docker-compose.yml), against its REST API as documented at
https://www.metabase.com/docs/latest/api and in its source
(``src/metabase/{setup_rest,queries_rest,dashboards_rest}/api.clj``):

- First boot: ``GET /api/session/properties`` offers a ``setup-token`` while
  ``has-user-setup`` is false; ``POST /api/setup {token, user, prefs}`` creates
  the first admin and answers a session ``{"id": ...}``. Later runs call the
  API with ``METABASE_API_KEY`` in the ``X-API-Key`` header when it is set and
  the server's ``version.tag`` is v0.49 or later (API keys came then), else
  log in with ``POST /api/session {username, password}`` and send the session
  in the ``X-Metabase-Session`` header.
- v0.64's setup turns anonymous tracking on whatever ``prefs.allow_tracking``
  says, so it is turned off with ``PUT /api/setting/anon-tracking-enabled``.
- ``GET /api/database`` answers ``{"data": [...]}`` with passwords masked, so
  a changed reader password is not detected; every other detail is compared.
- Cards: ``POST /api/card`` / ``PUT /api/card/:id`` take the legacy native
  query ``{"type": "native", "native": {"query", "template-tags"}}``; since
  v0.57 ``GET /api/card`` returns it as MBQL 5 (``{"stages": [{"native",
  "template-tags"}]}``), so comparisons read both forms.
- Dashboard cards are all set by one ``PUT /api/dashboard/:id`` with
  ``dashcards`` (negative ids create, existing ids keep, the ones left out
  are removed). ``POST /api/dashboard/:id/cards`` is gone and
  ``PUT .../cards`` deprecated: neither is used.
- A plain SQL date variable connects only to a "Single date" dashboard filter
  (metabase/metabase#70178), so ``since`` becomes a ``date/single`` filter
  with no default (all time until a viewer picks a date), not a relative one.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

import requests

from crypto_etl.config import MetabaseSettings, Settings
from crypto_etl.logs import redact
from crypto_etl.dashboard.definition import Dashboard
from crypto_etl.dashboard.metabase_content import (
    build_dashcards,
    card_matches,
    card_payload,
    contains,
    dashboard_parameters,
    dashcards_match,
)
from crypto_etl.errors import (
    MetabaseAuthError,
    MetabaseError,
    MetabaseUnavailable,
)

_log = logging.getLogger(__name__)

COLLECTION_NAME = "crypto_etl"
DATABASE_NAME = "CoinCap warehouse"
SITE_NAME = "CoinCap dashboards"
ADMIN_FIRST_NAME = "crypto-etl"
ADMIN_LAST_NAME = "Admin"
MANAGED_NOTE = "Managed by `crypto-etl provision-metabase`: edits here are overwritten."
# (connect, read) seconds. Adding a database makes Metabase test the
# connection before it answers, hence the long read timeout.
HTTP_TIMEOUT = (5.0, 60.0)
# Metabase added API keys in v0.49.
API_KEYS_SINCE = (0, 49)


@dataclass(frozen=True)
class Outcome:
    """What one run did to one object: ``created``, ``updated`` or ``unchanged``."""

    kind: str
    name: str
    action: str


@dataclass
class ProvisionReport:
    """Every object the run looked at, in order, and the dashboard it left."""

    metabase_url: str
    outcomes: list[Outcome] = field(default_factory=list)
    dashboard_id: int | None = None

    def add(self, kind: str, name: str, action: str) -> None:
        """Record one outcome and log it."""
        self.outcomes.append(Outcome(kind, name, action))
        _log.info("metabase %s %r: %s", kind, name, action)

    def names(self, action: str, kind: str | None = None) -> list[str]:
        """Return the names with this action (and kind, if given), in order."""
        return [
            o.name
            for o in self.outcomes
            if o.action == action and (kind is None or o.kind == kind)
        ]

    @property
    def changed(self) -> bool:
        """Tell whether anything was created or updated."""
        return any(o.action != "unchanged" for o in self.outcomes)

    @property
    def dashboard_url(self) -> str | None:
        """Return the dashboard's address in Metabase, once it exists."""
        if self.dashboard_id is None:
            return None
        return f"{self.metabase_url}/dashboard/{self.dashboard_id}"

    def summary(self) -> str:
        """Return a few lines for people: counts, each change, the dashboard URL."""
        counts = {a: len(self.names(a)) for a in ("created", "updated", "unchanged")}
        lines = [
            f"Metabase at {self.metabase_url}: "
            + ", ".join(f"{n} {a}" for a, n in counts.items())
        ]
        lines += [
            f"  {o.action:<9} {o.kind:<10} {o.name}"
            for o in self.outcomes
            if o.action != "unchanged"
        ]
        if self.dashboard_url:
            lines.append(f"Dashboard: {self.dashboard_url}")
        return "\n".join(lines)


def provision_metabase(
    settings: Settings,
    metabase: MetabaseSettings,
    definition: Dashboard,
    *,
    ready_timeout: float = 60.0,
) -> ProvisionReport:
    """Set Metabase up from ``definition``: admin, warehouse, cards, dashboard.

    Safe to re-run: objects are found by name (cards and the dashboard inside
    the ``crypto_etl`` collection) and only written when they differ.

    Args:
        settings: the project settings (warehouse name, read-only role).
        metabase: Metabase's URL, admin and view of the warehouse.
        definition: the shared dashboard definition.
        ready_timeout: seconds to keep polling ``/api/health`` while Metabase
            starts before giving up.

    Returns:
        What was created, updated or left unchanged, and the dashboard id.

    Raises:
        ConfigError: the read-only role (WAREHOUSE_READER_*) is not configured.
        MetabaseUnavailable: Metabase did not answer at METABASE_URL.
        MetabaseAuthError: Metabase refused the admin credentials.
        MetabaseError: any other refusal, with Metabase's reason.
    """
    reader = settings.require_reader("Metabase")
    secrets = [
        metabase.api_key.reveal() if metabase.api_key else "",
        metabase.admin_password.reveal(),
        reader.password.reveal(),
        settings.warehouse.password.reveal(),
    ]
    api = _Api(metabase.url, secrets)
    report = ProvisionReport(metabase_url=api.url)
    try:
        api.wait_until_up(ready_timeout)
        _sign_in(api, metabase, report)
        details = {
            "host": metabase.warehouse_host,
            "port": metabase.warehouse_port,
            "dbname": settings.warehouse.dbname,
            "user": reader.user,
            "password": reader.password.reveal(),
            "ssl": False,
        }
        database_id = _ensure_database(api, details, report)
        collection_id = _ensure_collection(api, report)
        card_ids = _ensure_cards(api, definition, database_id, collection_id, report)
        report.dashboard_id = _ensure_dashboard(
            api, definition, card_ids, collection_id, report
        )
    finally:
        api.close()
    return report


class _Api:
    """JSON over HTTP to one Metabase, with its failures turned into our errors."""

    def __init__(self, url: str, secrets: list[str]) -> None:
        self.url = url.rstrip("/")
        self._http = requests.Session()
        self._secrets = secrets
        # What to check when Metabase refuses the credentials in use.
        self.login_hint = "check METABASE_ADMIN_EMAIL and METABASE_ADMIN_PASSWORD"

    def close(self) -> None:
        self._http.close()

    def use_session(self, session_id: str) -> None:
        self._http.headers["X-Metabase-Session"] = session_id

    def use_api_key(self, key: str) -> None:
        self._http.headers["X-API-Key"] = key
        self.login_hint = "check METABASE_API_KEY (Admin > Settings > API keys)"

    def wait_until_up(self, timeout: float) -> None:
        """Poll ``GET /api/health`` until it answers 200 or ``timeout`` passes.

        Raises:
            MetabaseUnavailable: no 200 before the deadline.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                response = self._http.get(self.url + "/api/health", timeout=(5.0, 10.0))
                if response.status_code == 200:
                    return
                # Metabase answers 503 while it migrates its own database.
                reason = f"HTTP {response.status_code} from /api/health"
            except requests.RequestException as exc:
                reason = _transport_reason(exc)
            left = deadline - time.monotonic()
            if left <= 0:
                raise MetabaseUnavailable(
                    f"Metabase is not reachable at {self.url} ({reason}, waited "
                    f"{timeout:g}s): check METABASE_URL and that Metabase is "
                    "running (docker compose ps metabase)"
                )
            time.sleep(min(1.0, left))

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: dict[str, str] | None = None,
        hint: str = "",
    ) -> Any:
        """Send one request and return its decoded JSON (None when empty).

        Raises:
            MetabaseUnavailable: the connection failed or timed out.
            MetabaseAuthError: HTTP 401 or 403.
            MetabaseError: any other HTTP error, or a body that is not JSON.
        """
        try:
            response = self._http.request(
                method, self.url + path, json=body, params=params, timeout=HTTP_TIMEOUT
            )
        except requests.RequestException as exc:
            raise MetabaseUnavailable(
                f"Metabase is not reachable at {self.url} ({_transport_reason(exc)} "
                f"on {method} {path}): check METABASE_URL"
            ) from exc
        status = response.status_code
        if status == 401:
            raise MetabaseAuthError(
                f"Metabase refused the login (HTTP 401 on {method} {path}): "
                + self.login_hint
            )
        if status == 403:
            raise MetabaseAuthError(
                f"Metabase answered 403 to {method} {path}: the user "
                "METABASE_ADMIN_EMAIL must be a Metabase administrator"
            )
        if status >= 400:
            detail = redact(_error_detail(response), self._secrets)
            raise MetabaseError(
                f"Metabase answered HTTP {status} to {method} {path}: {detail}"
                + (f". {hint}" if hint else "")
            )
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise MetabaseError(
                f"Metabase answered {method} {path} with a body that is not JSON: "
                f"is METABASE_URL ({self.url}) really Metabase?"
            ) from exc


def _transport_reason(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.Timeout):
        return "timed out"
    if isinstance(exc, requests.ConnectionError):
        return "connection refused or reset"
    return type(exc).__name__


def _error_detail(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason
    if isinstance(body, dict):
        body = body.get("message") or body.get("errors") or body
    text = body if isinstance(body, str) else json.dumps(body, sort_keys=True)
    return text[:300]


def _sign_in(api: _Api, metabase: MetabaseSettings, report: ProvisionReport) -> None:
    properties = api.call("GET", "/api/session/properties")
    if properties.get("has-user-setup"):
        if metabase.api_key is not None:
            if _supports_api_keys(properties):
                api.use_api_key(metabase.api_key.reveal())
                report.add("login", "METABASE_API_KEY", "unchanged")
                return
            _log.warning("Metabase before v0.49 has no API keys: admin login")
        session = api.call(
            "POST",
            "/api/session",
            {
                "username": metabase.admin_email,
                "password": metabase.admin_password.reveal(),
            },
        )
        api.use_session(session["id"])
        report.add("admin", metabase.admin_email, "unchanged")
        return
    token = properties.get("setup-token")
    if not token:
        raise MetabaseError(
            f"Metabase at {api.url} has no admin yet but offers no setup token: "
            "finish the setup in a browser or start Metabase on an empty "
            "`metabase` database"
        )
    body = {
        "token": token,
        "user": {
            "email": metabase.admin_email,
            "password": metabase.admin_password.reveal(),
            "first_name": ADMIN_FIRST_NAME,
            "last_name": ADMIN_LAST_NAME,
            "site_name": SITE_NAME,
        },
        "prefs": {"site_name": SITE_NAME, "allow_tracking": False},
    }
    hint = "Check METABASE_ADMIN_EMAIL and METABASE_ADMIN_PASSWORD"
    session = api.call("POST", "/api/setup", body, hint=hint)
    api.use_session(session["id"])
    api.call("PUT", "/api/setting/anon-tracking-enabled", {"value": False})
    report.add("admin", metabase.admin_email, "created")


def _supports_api_keys(properties: dict[str, Any]) -> bool:
    """Tell whether ``version.tag`` (e.g. v0.64.6) is v0.49+, which has API keys."""
    version = properties.get("version")
    tag = version.get("tag") if isinstance(version, dict) else None
    found = re.match(r"v?(\d+)\.(\d+)", tag if isinstance(tag, str) else "")
    return found is not None and (int(found[1]), int(found[2])) >= API_KEYS_SINCE


def _ensure_database(
    api: _Api, details: dict[str, Any], report: ProvisionReport
) -> int:
    listing = api.call("GET", "/api/database")
    databases = listing["data"] if isinstance(listing, dict) else listing
    existing = next((d for d in databases if d.get("name") == DATABASE_NAME), None)
    body = {"engine": "postgres", "name": DATABASE_NAME, "details": details}
    hint = (
        f"Metabase could not use the warehouse at {details['host']}:{details['port']}"
        f"/{details['dbname']} as {details['user']}: check that Metabase can reach "
        "it and that `crypto-etl migrate` created the read-only role"
    )
    if existing is None:
        database_id = int(api.call("POST", "/api/database", body, hint=hint)["id"])
        report.add("database", DATABASE_NAME, "created")
    else:
        database_id = int(existing["id"])
        current = existing.get("details") or {}
        same = existing.get("engine") == "postgres" and all(
            str(current.get(key)) == str(details[key])
            for key in ("host", "port", "dbname", "user")
        )
        if same and not current.get("ssl"):
            report.add("database", DATABASE_NAME, "unchanged")
        else:
            api.call("PUT", f"/api/database/{database_id}", body, hint=hint)
            report.add("database", DATABASE_NAME, "updated")
    # New marts appear in the data browser only after a sync; native cards run
    # without one, so this is a request, not something to wait for.
    api.call("POST", f"/api/database/{database_id}/sync_schema")
    return database_id


def _ensure_collection(api: _Api, report: ProvisionReport) -> int:
    for collection in api.call("GET", "/api/collection"):
        if (
            collection.get("name") == COLLECTION_NAME
            and isinstance(collection.get("id"), int)
            and collection.get("personal_owner_id") is None
            and not collection.get("archived")
        ):
            report.add("collection", COLLECTION_NAME, "unchanged")
            return int(collection["id"])
    created = api.call(
        "POST",
        "/api/collection",
        {"name": COLLECTION_NAME, "description": MANAGED_NOTE},
    )
    report.add("collection", COLLECTION_NAME, "created")
    return int(created["id"])


def _ensure_cards(
    api: _Api,
    definition: Dashboard,
    database_id: int,
    collection_id: int,
    report: ProvisionReport,
) -> dict[str, int]:
    """Create or update one card per chart; return chart id -> card id."""
    existing: dict[str, dict[str, Any]] = {}
    for card in sorted(api.call("GET", "/api/card"), key=lambda c: int(c["id"])):
        if card.get("collection_id") == collection_id and not card.get("archived"):
            existing.setdefault(card["name"], card)
    card_ids: dict[str, int] = {}
    for chart in definition.charts:
        payload = card_payload(chart, definition, database_id, collection_id)
        found = existing.get(chart.title)
        if found is None:
            card_ids[chart.id] = int(api.call("POST", "/api/card", payload)["id"])
            report.add("card", chart.title, "created")
            continue
        card_ids[chart.id] = int(found["id"])
        if card_matches(found, payload):
            report.add("card", chart.title, "unchanged")
        else:
            api.call("PUT", f"/api/card/{found['id']}", payload)
            report.add("card", chart.title, "updated")
    return card_ids


def _ensure_dashboard(
    api: _Api,
    definition: Dashboard,
    card_ids: dict[str, int],
    collection_id: int,
    report: ProvisionReport,
) -> int:
    parameters = dashboard_parameters(definition)
    items = api.call(
        "GET", f"/api/collection/{collection_id}/items", params={"models": "dashboard"}
    )
    found = next((i for i in items["data"] if i.get("name") == definition.title), None)
    if found is None:
        body = {
            "name": definition.title,
            "description": MANAGED_NOTE,
            "parameters": parameters,
            "collection_id": collection_id,
        }
        dashboard_id = int(api.call("POST", "/api/dashboard", body)["id"])
        dashcards = build_dashcards(definition, card_ids, [])
        api.call("PUT", f"/api/dashboard/{dashboard_id}", {"dashcards": dashcards})
        report.add("dashboard", definition.title, "created")
        return dashboard_id
    dashboard_id = int(found["id"])
    current = api.call("GET", f"/api/dashboard/{dashboard_id}")
    dashcards = build_dashcards(definition, card_ids, current.get("dashcards") or [])
    current_parameters = current.get("parameters") or []
    unchanged = (
        current.get("description") == MANAGED_NOTE
        and current.get("collection_id") == collection_id
        and [p.get("id") for p in current_parameters] == [p["id"] for p in parameters]
        and contains(current_parameters, parameters)
        and dashcards_match(current.get("dashcards") or [], dashcards)
    )
    if unchanged:
        report.add("dashboard", definition.title, "unchanged")
        return dashboard_id
    body = {
        "description": MANAGED_NOTE,
        "collection_id": collection_id,
        "parameters": parameters,
        "dashcards": dashcards,
    }
    api.call("PUT", f"/api/dashboard/{dashboard_id}", body)
    report.add("dashboard", definition.title, "updated")
    return dashboard_id
