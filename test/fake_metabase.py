"""A fake Metabase v0.64 REST API on 127.0.0.1 that enforces the documented shapes.

No Metabase can run on the test machines, so the provisioning tests talk real
HTTP to this server. It keeps its state in memory and serves only what
``crypto_etl.dashboard.metabase`` uses, but it checks each request against
Metabase v0.64's own request schemas (the rules, with their sources, are in
``metabase_api_rules``):

- setup once, with the current setup token, which it then clears; a session
  header on everything but health, session properties, setup and login;
- ``POST /api/database`` needs engine, name and details{host, port, dbname,
  user, password}; listed databases have their password masked;
- cards: closed key sets, a native query whose template tags are exactly the
  query's ``{{variables}}``, each with id, name, display-name and type;
  answers carry the query as MBQL 5, as Metabase does since v0.57;
- ``PUT /api/dashboard/:id``: closed ``dashcards`` entries, unique ids,
  negative for new ones; each parameter mapping names an existing dashboard
  parameter and a template tag of that card, with a parameter type that tag
  accepts (a date variable only "date/single", metabase/metabase#70178);
- ``/api/dashboard/:id/cards`` answers 404, whatever the method: the client
  must never use it.

A request that breaks a rule gets HTTP 400 with Metabase's ``{"errors": ...}``.
``requests`` records every (method, path) for the tests.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from metabase_api_rules import (
    CARD_CREATE_KEYS,
    CARD_UPDATE_KEYS,
    DASHBOARD_CREATE_KEYS,
    DASHBOARD_UPDATE_KEYS,
    DASHCARD_KEYS,
    ENGINES,
    Refused,
    bad,
    check_card,
    check_dashcard,
    check_details,
    check_parameters,
    check_setup,
    closed,
    non_blank,
)

MASKED = "**MetabasePass**"
_PUBLIC = {
    ("GET", "/api/health"),
    ("GET", "/api/session/properties"),
    ("POST", "/api/setup"),
    ("POST", "/api/session"),
}


class FakeMetabase:
    """In-memory Metabase: start it, point the client at ``url``, read its state."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self.setup_token: str | None = str(uuid.uuid4())
        self.users: dict[str, str] = {}
        self.sessions: set[str] = set()
        # Keys an admin made in Admin > Settings > API keys (v0.49+).
        self.api_keys: set[str] = set()
        self.version_tag = "v0.64.6"
        self.settings: dict[str, Any] = {"anon-tracking-enabled": True}
        self.databases: dict[int, dict[str, Any]] = {}
        self.collections: dict[int, dict[str, Any]] = {}
        self.cards: dict[int, dict[str, Any]] = {}
        self.dashboards: dict[int, dict[str, Any]] = {}
        self.dashcards: dict[int, dict[str, Any]] = {}
        self.syncs: list[int] = []
        self.requests: list[tuple[str, str]] = []
        self.database_refusal: str | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._routes: list[tuple[str, re.Pattern[str], Callable[..., Any]]] = [
            ("GET", re.compile(r"/api/health"), lambda q, b: {"status": "ok"}),
            ("GET", re.compile(r"/api/session/properties"), self._properties),
            ("POST", re.compile(r"/api/setup/?"), self._setup),
            ("POST", re.compile(r"/api/session"), self._login),
            ("PUT", re.compile(r"/api/setting/([\w-]+)"), self._put_setting),
            ("GET", re.compile(r"/api/database/?"), self._list_databases),
            ("POST", re.compile(r"/api/database/?"), self._create_database),
            ("PUT", re.compile(r"/api/database/(\d+)"), self._update_database),
            ("POST", re.compile(r"/api/database/(\d+)/sync_schema"), self._sync),
            ("GET", re.compile(r"/api/collection/?"), self._list_collections),
            ("POST", re.compile(r"/api/collection/?"), self._create_collection),
            ("GET", re.compile(r"/api/collection/(\d+)/items"), self._items),
            ("GET", re.compile(r"/api/card/?"), self._list_cards),
            ("POST", re.compile(r"/api/card/?"), self._create_card),
            ("PUT", re.compile(r"/api/card/(\d+)"), self._update_card),
            ("POST", re.compile(r"/api/dashboard/?"), self._create_dashboard),
            ("GET", re.compile(r"/api/dashboard/(\d+)"), self._get_dashboard),
            ("PUT", re.compile(r"/api/dashboard/(\d+)"), self._update_dashboard),
        ]

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> FakeMetabase:
        self._server = _Server(("127.0.0.1", 0), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeMetabase:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def writes(self) -> list[tuple[str, str]]:
        """Every request so far that was not a GET."""
        with self._lock:
            return [r for r in self.requests if r[0] != "GET"]

    def dashcards_of(self, dashboard_id: int) -> list[dict[str, Any]]:
        with self._lock:
            return [
                d for d in self.dashcards.values() if d["dashboard_id"] == dashboard_id
            ]

    # -- dispatch ------------------------------------------------------------

    def handle(
        self, method: str, target: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, Any]:
        parts = urlsplit(target)
        path, query = parts.path, parse_qs(parts.query)
        with self._lock:
            self.requests.append((method, path))
            try:
                if re.fullmatch(r"/api/dashboard/\d+/cards", path):
                    raise Refused(404, "API endpoint does not exist.")
                if (
                    (method, path) not in _PUBLIC
                    and headers.get("x-metabase-session") not in self.sessions
                    and headers.get("x-api-key") not in self.api_keys
                ):
                    raise Refused(401, "Unauthenticated")
                for verb, pattern, handler in self._routes:
                    match = pattern.fullmatch(path)
                    if verb == method and match:
                        body = json.loads(raw) if raw else None
                        return 200, handler(query, body, *match.groups())
                raise Refused(404, "API endpoint does not exist.")
            except Refused as refused:
                return refused.status, refused.body
            except ValueError:
                return 400, {"message": "request body is not valid JSON"}

    def _new_id(self) -> int:
        return next(self._ids)

    # -- setup and sessions --------------------------------------------------

    def _properties(self, query: Any, body: Any) -> dict[str, Any]:
        return {
            "setup-token": self.setup_token,
            "has-user-setup": bool(self.users),
            "version": {"tag": self.version_tag},
        }

    def _setup(self, query: Any, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise bad("body", "must be a JSON object")
        if not non_blank(body.get("token")) or body["token"] != self.setup_token:
            raise bad("token", "Token does not match the setup token.")
        if self.users:
            raise Refused(
                403, "The /api/setup route can only be used to create the first user"
            )
        user: Any = body.get("user")
        check_setup(user, body.get("prefs"))
        self.users[user["email"]] = user["password"]
        self.setup_token = None
        return {"id": self._session()}

    def _session(self) -> str:
        session = str(uuid.uuid4())
        self.sessions.add(session)
        return session

    def _login(self, query: Any, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or not all(
            non_blank(body.get(k)) for k in ("username", "password")
        ):
            raise bad("username", "username and password are required")
        if self.users.get(body["username"]) != body["password"]:
            raise Refused(
                401, {"errors": {"password": "did not match stored password"}}
            )
        return {"id": self._session()}

    def _put_setting(self, query: Any, body: Any, key: str) -> None:
        if not isinstance(body, dict) or "value" not in body:
            raise bad("value", "a setting update needs a value")
        self.settings[key] = body["value"]

    # -- databases -----------------------------------------------------------

    def _masked(self, database: dict[str, Any]) -> dict[str, Any]:
        return {**database, "details": {**database["details"], "password": MASKED}}

    def _list_databases(self, query: Any, body: Any) -> dict[str, Any]:
        data = [self._masked(d) for d in self.databases.values()]
        return {"data": data, "total": len(data)}

    def _check_details(self, details: Any) -> None:
        check_details(details)
        if self.database_refusal is not None:
            # Metabase tests the connection before it saves the details.
            raise Refused(400, {"message": self.database_refusal})

    def _create_database(self, query: Any, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or not non_blank(body.get("name")):
            raise bad("name", "value must be a non-blank string.")
        if body.get("engine") not in ENGINES:
            raise bad("engine", "value must be a valid database engine.")
        self._check_details(body.get("details"))
        database = {
            "id": self._new_id(),
            "name": body["name"],
            "engine": body["engine"],
            "details": dict(body["details"]),
        }
        self.databases[database["id"]] = database
        return self._masked(database)

    def _update_database(self, query: Any, body: Any, id_: str) -> dict[str, Any]:
        database = self._find(self.databases, id_)
        if not isinstance(body, dict):
            raise bad("body", "must be a JSON object")
        if "details" in body:
            details = dict(body["details"])
            if details.get("password") == MASKED:
                details["password"] = database["details"]["password"]
            self._check_details(details)
            database["details"] = details
        database.update({k: body[k] for k in ("name", "engine") if k in body})
        return self._masked(database)

    def _sync(self, query: Any, body: Any, id_: str) -> dict[str, str]:
        self.syncs.append(self._find(self.databases, id_)["id"])
        return {"status": "ok"}

    @staticmethod
    def _find(table: dict[int, dict[str, Any]], id_: str) -> dict[str, Any]:
        if int(id_) not in table:
            raise Refused(404, "Not found.")
        return table[int(id_)]

    # -- collections ---------------------------------------------------------

    def _list_collections(self, query: Any, body: Any) -> list[dict[str, Any]]:
        root = {"id": "root", "name": "Our analytics", "personal_owner_id": None}
        return [root] + [c for c in self.collections.values() if not c["archived"]]

    def _create_collection(self, query: Any, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or not non_blank(body.get("name")):
            raise bad("name", "value must be a non-blank string.")
        if body.get("description") is not None and not non_blank(body["description"]):
            raise bad("description", "value must be a non-blank string.")
        collection = {
            "id": self._new_id(),
            "name": body["name"],
            "description": body.get("description"),
            "personal_owner_id": None,
            "archived": False,
            "location": "/",
        }
        self.collections[collection["id"]] = collection
        return collection

    def _items(
        self, query: dict[str, list[str]], body: Any, id_: str
    ) -> dict[str, Any]:
        self._find(self.collections, id_)
        models = set(query.get("models", ["card", "dashboard"]))
        found = [
            {"id": c["id"], "name": c["name"], "model": "card"}
            for c in self.cards.values()
            if "card" in models and c["collection_id"] == int(id_) and not c["archived"]
        ] + [
            {"id": d["id"], "name": d["name"], "model": "dashboard"}
            for d in self.dashboards.values()
            if "dashboard" in models and d["collection_id"] == int(id_)
        ]
        return {"data": found, "total": len(found), "models": sorted(models)}

    # -- cards ---------------------------------------------------------------

    @staticmethod
    def _card_out(card: dict[str, Any]) -> dict[str, Any]:
        """The card as GET/POST/PUT answer it: its query as MBQL 5 (v0.57+)."""
        query = card["dataset_query"]
        stage: dict[str, Any] = {
            "lib/type": "mbql.stage/native",
            "native": query["native"]["query"],
        }
        if query["native"].get("template-tags"):
            stage["template-tags"] = query["native"]["template-tags"]
        mbql5 = {
            "lib/type": "mbql/query",
            "database": query["database"],
            "stages": [stage],
        }
        return {**card, "dataset_query": mbql5}

    def _list_cards(self, query: Any, body: Any) -> list[dict[str, Any]]:
        return [self._card_out(c) for c in self.cards.values() if not c["archived"]]

    def _create_card(self, query: Any, body: Any) -> dict[str, Any]:
        body = closed(body, CARD_CREATE_KEYS, "card")
        check_card(body, True, self.collections, self.databases)
        card = {
            "id": self._new_id(),
            "archived": False,
            "collection_id": None,
            "description": None,
            **body,
        }
        self.cards[card["id"]] = card
        return self._card_out(card)

    def _update_card(self, query: Any, body: Any, id_: str) -> dict[str, Any]:
        card = self._find(self.cards, id_)
        body = closed(body, CARD_UPDATE_KEYS, "card")
        check_card(body, False, self.collections, self.databases)
        card.update(body)
        return self._card_out(card)

    # -- dashboards ----------------------------------------------------------

    def _dashboard_out(self, dashboard: dict[str, Any]) -> dict[str, Any]:
        dashcards = [
            {**d, "card": self._card_out(self.cards[d["card_id"]])}
            for d in self.dashcards_of(dashboard["id"])
        ]
        return {**dashboard, "dashcards": dashcards, "tabs": []}

    def _get_dashboard(self, query: Any, body: Any, id_: str) -> dict[str, Any]:
        return self._dashboard_out(self._find(self.dashboards, id_))

    def _create_dashboard(self, query: Any, body: Any) -> dict[str, Any]:
        body = closed(body, DASHBOARD_CREATE_KEYS, "dashboard")
        if not non_blank(body.get("name")):
            raise bad("name", "value must be a non-blank string.")
        check_parameters(body.get("parameters") or [])
        if body.get("collection_id") not in (None, *self.collections):
            raise bad("collection_id", "no such collection")
        dashboard = {
            "id": self._new_id(),
            "name": body["name"],
            "description": body.get("description"),
            "collection_id": body.get("collection_id"),
            "parameters": body.get("parameters") or [],
        }
        self.dashboards[dashboard["id"]] = dashboard
        return self._dashboard_out(dashboard)

    def _update_dashboard(self, query: Any, body: Any, id_: str) -> dict[str, Any]:
        dashboard = self._find(self.dashboards, id_)
        body = closed(body, DASHBOARD_UPDATE_KEYS, "dashboard")
        if "name" in body and not non_blank(body["name"]):
            raise bad("name", "value must be a non-blank string.")
        parameters = body.get("parameters", dashboard["parameters"])
        check_parameters(parameters)
        if "dashcards" in body:
            self._replace_dashcards(dashboard["id"], body["dashcards"], parameters)
        dashboard.update(
            {
                k: body[k]
                for k in ("name", "description", "collection_id", "parameters")
                if k in body
            }
        )
        return self._dashboard_out(dashboard)

    def _replace_dashcards(
        self, dashboard_id: int, dashcards: Any, parameters: list[dict[str, Any]]
    ) -> None:
        if not isinstance(dashcards, list):
            raise bad("dashcards", "must be a list")
        current = {d["id"] for d in self.dashcards_of(dashboard_id)}
        ids = [closed(d, DASHCARD_KEYS, "dashcard").get("id") for d in dashcards]
        if len(set(ids)) != len(ids):
            raise bad("dashcards", "dashcard ids must be unique")
        kinds = {p["id"]: p["type"] for p in parameters}
        for dashcard in dashcards:
            check_dashcard(dashcard, current, kinds, self.cards)
        for gone in current - set(ids):
            del self.dashcards[gone]
        for dashcard in dashcards:
            stored = {
                "visualization_settings": {},
                "series": [],
                "dashboard_tab_id": None,
                **dashcard,
                "dashboard_id": dashboard_id,
                "parameter_mappings": dashcard.get("parameter_mappings") or [],
            }
            if dashcard["id"] < 0:
                stored["id"] = self._new_id()
            self.dashcards[stored["id"]] = stored


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], fake: FakeMetabase) -> None:
        super().__init__(address, _Handler)
        self.fake = fake


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without this, each keep-alive
    # response waits out the client's delayed ACK (~40 ms).
    disable_nagle_algorithm = True
    server: _Server

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, body = self.server.fake.handle(self.command, self.path, headers, raw)
        payload = b"" if body is None else json.dumps(body).encode()
        self.send_response(204 if body is None and status == 200 else status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: request bodies carry passwords, and pytest shows stderr."""
