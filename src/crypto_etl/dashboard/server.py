"""The built-in web dashboard: ``crypto-etl dashboard``.

uvicorn serving a Starlette app (``dashboard.asgi``: allowed hosts, GET and
HEAD only, size limits, gzip, security headers) in front of ``DashboardApp``,
which routes:

- ``/``: the page (title, filters, one card per chart), rendered without
  touching the database, so it shows even when the warehouse is down;
- ``/api/charts/<id>?since=7d&exchange=...&asset=...``: a chart's columns
  and rows as JSON (``/api/charts/<id>.csv``: the same rows as CSV);
- ``/api/filters/<name>``: a filter's choices;
- ``/healthz``: 200 when the data is fresh, 503 naming the stale tables or
  saying why the warehouse does not answer (``dashboard.health``);
- ``/livez``: the server is up (the container's health check);
- ``/metrics``: Prometheus / OpenMetrics text (``dashboard.metrics``);
- ``/static/<file>``: the page's script, styles and the vendored uPlot.

Bad requests (unknown chart, range or parameter) answer 400 with a JSON
error; a warehouse that is down answers 503 with a message saying what to
check, never a stack trace.
"""

from __future__ import annotations

import asyncio
import json
import logging
import mimetypes
import re
import socket
import threading
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

import uvicorn

from crypto_etl.config import Settings
from crypto_etl.dashboard.asgi import MAX_HEADER_BYTES, allowed_hosts, build_app
from crypto_etl.dashboard.definition import Dashboard, load_definition
from crypto_etl.dashboard.health import HealthCheck
from crypto_etl.dashboard.metrics import MetricsPage
from crypto_etl.dashboard.page import render_page
from crypto_etl.dashboard.queries import ChartQueries, ReaderPool, missing_relation
from crypto_etl.analytics.dq import DEFAULT_DOCS_DIR, DOCS_FILES
from crypto_etl.errors import ConfigError, WarehouseError, WarehouseUnavailable

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8050
DEFAULT_REFRESH_SECONDS = 60
# uvicorn's limits: the request line plus headers, open connections (beyond
# them it answers 503), an idle keep-alive connection's life, and how long a
# stop waits for requests in flight.
MAX_CONNECTIONS = 64
KEEP_ALIVE_SECONDS = 5
SHUTDOWN_SECONDS = 5
BACKLOG = 128
_DOCS_CSP = (
    "default-src 'self'; img-src 'self' data:; font-src 'self' data:; "
    "style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline' "
    "'unsafe-eval'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)


class _Response:
    """What a route answers: status, content type, body and extra headers."""

    def __init__(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers or {}

    @classmethod
    def json(cls, status: int, payload: Any) -> _Response:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        return cls(status, body.encode(), "application/json; charset=utf-8")


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _load_static() -> dict[str, tuple[bytes, str]]:
    """Read every packaged static file once: name -> (bytes, content type)."""
    files: dict[str, tuple[bytes, str]] = {}
    for entry in resources.files(__package__).joinpath("static").iterdir():
        if entry.is_file():
            kind = mimetypes.guess_type(entry.name)[0] or "text/plain"
            if kind.startswith("text/") or kind.endswith("javascript"):
                kind += "; charset=utf-8"
            files[entry.name] = (entry.read_bytes(), kind)
    return files


class DashboardApp:
    """Routes a GET request to its answer; knows nothing about sockets.

    Args:
        queries: the chart queries (definition plus read-only pool).
        refresh_seconds: the page's auto-refresh period.
        docs_dir: dbt's docs site.
        health: ``/healthz``'s verdict.
        metrics: ``/metrics``' page.
    """

    def __init__(
        self,
        queries: ChartQueries,
        refresh_seconds: int,
        docs_dir: Path,
        health: HealthCheck,
        metrics: MetricsPage,
    ) -> None:
        self.queries = queries
        self.health = health
        self.metrics = metrics
        self.refresh_seconds = refresh_seconds
        self.docs_dir = docs_dir
        self._static = _load_static()

    def answer(
        self, target: str, accept: str | None = None
    ) -> tuple[int, bytes, str, dict[str, str]]:
        """``handle``'s answer as (status, body, content type, extra headers)."""
        r = self.handle(target, accept)
        return r.status, r.body, r.content_type, r.headers

    def handle(self, target: str, accept: str | None = None) -> _Response:
        """Answer a GET for ``target`` (path and query string); ``accept`` is
        the request's Accept header."""
        parts = urlsplit(target)
        path = parts.path
        try:
            query = _single_values(parts.query)
            if path == "/":
                return self._page(query)
            if path == "/healthz":
                return _Response.json(*self.health.verdict())
            if path == "/livez":
                return _Response.json(200, {"status": "ok"})
            if path == "/metrics":
                return _Response(200, *self.metrics.render(accept))
            if path.startswith("/static/"):
                return self._static_file(path.removeprefix("/static/"))
            if path.startswith("/docs/"):
                return self._docs_file(path.removeprefix("/docs/") or "index.html")
            if path.startswith("/api/charts/"):
                name = path.removeprefix("/api/charts/")
                if name.endswith(".csv"):
                    return self._chart_csv(name.removesuffix(".csv"), query)
                return self._chart_json(name, query)
            if path.startswith("/api/filters/"):
                return self._filter_options(path.removeprefix("/api/filters/"))
        except ValueError as exc:
            return _Response.json(400, {"error": str(exc)})
        except WarehouseError as exc:
            return _warehouse_error(exc)
        return _Response.json(404, {"error": f"no such page: {path}"})

    def _page(self, query: dict[str, str]) -> _Response:
        try:
            selections = self.queries.selections(query)
        except ValueError:
            # A stale bookmark still gets the page, with the defaults.
            selections = self.queries.selections({})
        html = render_page(
            self.queries.definition, selections, refresh_seconds=self.refresh_seconds
        )
        return _Response(200, html.encode(), "text/html; charset=utf-8")

    def _static_file(self, name: str) -> _Response:
        # Only the packaged files by exact name: no path ever reaches the disk.
        if name not in self._static:
            return _Response.json(404, {"error": f"no such file: {name}"})
        body, kind = self._static[name]
        return _Response(200, body, kind, {"Cache-Control": "max-age=300"})

    def _docs_file(self, name: str) -> _Response:
        # dbt's docs site, read from disk each time (a transform may have
        # rewritten it), and again only its files by exact name.
        if name not in DOCS_FILES:
            return _Response.json(404, {"error": f"no such file: {name}"})
        try:
            body = (self.docs_dir / name).read_bytes()
        except OSError:
            return _Response.json(
                404,
                {"error": "no docs yet: run `crypto-etl transform --docs`"},
            )
        kind = (
            "text/html; charset=utf-8" if name.endswith(".html") else "application/json"
        )
        # The docs page is dbt's single file with inline script and styles.
        return _Response(200, body, kind, {"Content-Security-Policy": _DOCS_CSP})

    def _chart_json(self, chart_id: str, query: dict[str, str]) -> _Response:
        chart = self.queries.chart(chart_id)
        result, used = self.queries.chart_data(chart_id, query)
        return _Response.json(
            200,
            {
                "chart": chart.id,
                "type": chart.type,
                "columns": result.columns,
                "kinds": result.kinds,
                "rows": result.json_rows(),
                "row_count": len(result.rows),
                "filters": used,
                "generated_at": datetime.now(timezone.utc).isoformat(),
            },
        )

    def _chart_csv(self, chart_id: str, query: dict[str, str]) -> _Response:
        result, _ = self.queries.chart_data(chart_id, query)
        return _Response(
            200,
            result.csv_text().encode(),
            "text/csv; charset=utf-8",
            {"Content-Disposition": f'attachment; filename="{chart_id}.csv"'},
        )

    def _filter_options(self, name: str) -> _Response:
        options = self.queries.filter_options(name)
        return _Response.json(200, {"filter": name, "options": options})


def _single_values(query_string: str) -> dict[str, str]:
    """Parse a query string where each parameter may appear once.

    Raises:
        ValueError: a parameter given more than once, an escape that is not
            UTF-8, or a control character (NUL...) in a name or value.
    """
    try:
        values = parse_qs(query_string, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise ValueError("the query string is not valid UTF-8") from None
    repeated = sorted(k for k, v in values.items() if len(v) > 1)
    if repeated:
        raise ValueError(f"parameter {repeated[0]!r} given more than once")
    for key, (value,) in values.items():
        if _CONTROL.search(key) or _CONTROL.search(value):
            raise ValueError(f"parameter {key[:50]!r} holds a control character")
    return {k: v[0] for k, v in values.items()}


def _warehouse_error(exc: WarehouseError) -> _Response:
    if isinstance(exc, WarehouseUnavailable):
        state = "unavailable"
    elif missing_relation(exc):
        state = "not_ready"
    else:
        state = "error"
    log.warning("dashboard query failed: %s", exc)
    status = 500 if state == "error" else 503
    return _Response.json(status, {"error": str(exc), "state": state})


class DashboardServer:
    """The dashboard server, startable in a background thread (for tests).

    Args:
        settings: the project settings; the reader role's login is used, and
            ``DASHBOARD_ALLOWED_HOSTS`` (required unless bound to loopback).
        host: the address to bind (127.0.0.1 unless told otherwise).
        port: the port to bind (0 picks a free one).
        definition: the dashboard definition (default: the packaged one).
        refresh_seconds: the page's auto-refresh period.
        docs_dir: dbt's docs site (``crypto-etl transform --docs``), at /docs/.
        clock: the current aware UTC time (ranges end there).

    Raises:
        ConfigError: the reader role is not configured, the allowed hosts
            are missing or invalid, or the definition is invalid.
    """

    def __init__(
        self,
        settings: Settings,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        definition: Dashboard | None = None,
        refresh_seconds: int = DEFAULT_REFRESH_SECONDS,
        docs_dir: Path = DEFAULT_DOCS_DIR,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        reader = settings.require_reader("the dashboard")
        self.allowed_hosts = allowed_hosts(host, settings.dashboard_allowed_hosts)
        login = reader.login(settings.warehouse)
        self.pool = ReaderPool(login)
        queries = ChartQueries(definition or load_definition(), self.pool, clock)
        now = clock or (lambda: datetime.now(timezone.utc))
        self.app = DashboardApp(
            queries,
            refresh_seconds,
            docs_dir,
            HealthCheck(settings, login, now),
            MetricsPage(settings, login, now),
        )
        self._address = (host, port)
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind and serve in a daemon thread; returns once connections are accepted.

        Raises:
            ConfigError: the address cannot be bound (e.g. the port is in use).
            RuntimeError: already started.
        """
        if self._server is not None:
            raise RuntimeError("the dashboard is already running")
        self._socket = _listen(*self._address)
        config = uvicorn.Config(
            build_app(self.app.answer, self.allowed_hosts),
            http="h11",
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            # A request head arriving in pieces longer than this: 400.
            h11_max_incomplete_event_size=MAX_HEADER_BYTES,
            # Past this many open connections and requests, answer 503.
            limit_concurrency=MAX_CONNECTIONS,
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
            timeout_graceful_shutdown=SHUTDOWN_SECONDS,
        )
        server = self._server = uvicorn.Server(config)
        sockets = [self._socket]
        # The socket listens from the bind on: no readiness wait is needed.
        self._thread = threading.Thread(
            target=lambda: asyncio.run(server.serve(sockets=sockets)),
            name="crypto-etl-dashboard",
            daemon=True,
        )
        self._thread.start()
        log.info("dashboard serving at %s", self.url)

    def stop(self) -> None:
        """Stop serving and close the database connections; idempotent."""
        server, self._server = self._server, None
        if server is not None:
            server.should_exit = True
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        self.pool.close()

    @property
    def url(self) -> str:
        """The page's URL, e.g. ``http://127.0.0.1:8050/``.

        Raises:
            RuntimeError: before ``start``.
        """
        if self._socket is None:
            raise RuntimeError("the dashboard is not running")
        host, port = self._socket.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/"

    def serve_forever(self, on_ready: Callable[[str], None] | None = None) -> None:
        """Serve until Ctrl-C, then stop cleanly.

        Args:
            on_ready: called with the page's URL once it accepts connections.

        Raises:
            ConfigError: see ``start``.
        """
        self.start()
        try:
            if on_ready is not None:
                on_ready(self.url)
            threading.Event().wait()
        except KeyboardInterrupt:
            log.info("dashboard: stopping")
        finally:
            self.stop()

    def __enter__(self) -> DashboardServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _listen(host: str, port: int) -> socket.socket:
    """Bind and listen on ``host:port`` (IPv4 or IPv6).

    Raises:
        ConfigError: the address cannot be bound.
    """
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            sock.listen(BACKLOG)
        except OSError:
            sock.close()
            raise
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; "
            "choose another --port or --host"
        ) from exc
    return sock


def serve_dashboard(
    settings: Settings,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the dashboard until Ctrl-C (blocking).

    Args:
        settings: the project settings (the reader role's login is used).
        host: the address to bind; 127.0.0.1 unless told otherwise.
        port: the port to bind.
        on_ready: called with the page's URL once it accepts connections
            (the CLI prints it).

    Raises:
        ConfigError: no reader role configured, or the port cannot be bound.
    """
    DashboardServer(settings, host, port).serve_forever(on_ready)
