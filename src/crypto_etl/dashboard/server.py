"""The built-in web dashboard: ``crypto-etl dashboard``.

A standard-library HTTP server (no framework, no Docker) that serves:

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

import json
import re
import logging
import mimetypes
import threading
from datetime import datetime, timezone
from http.server import ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any, Callable, cast
from urllib.parse import parse_qs, urlsplit

from crypto_etl.httpjson import JsonErrorsHandler
from crypto_etl.config import Settings
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
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; "
        "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; "
        "base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


_DOCS_CSP = (
    "default-src 'self'; img-src 'self' data:; font-src 'self' data:; "
    "style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline' "
    "'unsafe-eval'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)


_LOOPBACK_HOST = re.compile(r"^(localhost|127(\.\d{1,3}){3}|::1)$")


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
        ValueError: a parameter given more than once.
    """
    values = parse_qs(query_string, keep_blank_values=True)
    repeated = sorted(k for k, v in values.items() if len(v) > 1)
    if repeated:
        raise ValueError(f"parameter {repeated[0]!r} given more than once")
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


class _Handler(JsonErrorsHandler):
    server: _HttpServer
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle's algorithm on,
    # a kept-alive connection then waits ~40 ms for the client's delayed ACK.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def _answer(self, *, send_body: bool) -> None:
        try:
            if self.server.host_allowed(self.headers.get("Host", "")):
                response = self.server.app.handle(self.path, self.headers.get("Accept"))
            else:
                response = _Response.json(
                    421, {"error": "this dashboard answers on localhost only"}
                )
        except Exception:
            # Logged in full here; the browser gets one line, no traceback.
            log.exception("dashboard: error answering %s", self.path)
            response = _Response.json(500, {"error": "internal error (see the log)"})
        self.send_response(response.status)
        headers = {
            **_SECURITY_HEADERS,
            "Cache-Control": "no-store",
            **response.headers,
            "Content-Type": response.content_type,
            "Content-Length": str(len(response.body)),
        }
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if send_body:
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("dashboard %s - %s", self.address_string(), format % args)


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], app: DashboardApp) -> None:
        self.app = app
        super().__init__(address, _Handler)

    def host_allowed(self, host_header: str) -> bool:
        """Bound to loopback, answer only requests addressed to a loopback name.

        A web page elsewhere could otherwise point a DNS name of its own at
        127.0.0.1 (DNS rebinding) and read the dashboard through the browser.
        Bound to another address (``--host``), any Host is accepted.
        """
        if not _LOOPBACK_HOST.match(str(self.server_address[0])):
            return True
        try:
            name = urlsplit("//" + host_header).hostname or ""
        except ValueError:
            return False
        return bool(_LOOPBACK_HOST.match(name))


class DashboardServer:
    """The dashboard server, startable in a background thread (for tests).

    Args:
        settings: the project settings; the reader role's login is used.
        host: the address to bind (127.0.0.1 unless told otherwise).
        port: the port to bind (0 picks a free one).
        definition: the dashboard definition (default: the packaged one).
        refresh_seconds: the page's auto-refresh period.
        docs_dir: dbt's docs site (``crypto-etl transform --docs``), at /docs/.
        clock: the current aware UTC time (ranges end there).

    Raises:
        ConfigError: the reader role is not configured, or the definition
            is invalid.
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
        self._httpd: _HttpServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind and serve in a daemon thread; returns once connections are accepted.

        Raises:
            ConfigError: the address cannot be bound (e.g. the port is in use).
            RuntimeError: already started.
        """
        if self._httpd is not None:
            raise RuntimeError("the dashboard is already running")
        host, port = self._address
        try:
            self._httpd = _HttpServer(self._address, self.app)
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}; "
                "choose another --port or --host"
            ) from exc
        # The socket listens from the bind on: no readiness wait is needed.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="crypto-etl-dashboard",
            daemon=True,
        )
        self._thread.start()
        log.info("dashboard serving at %s", self.url)

    def stop(self) -> None:
        """Stop serving and close the database connections; idempotent."""
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.pool.close()

    @property
    def url(self) -> str:
        """The page's URL, e.g. ``http://127.0.0.1:8050/``.

        Raises:
            RuntimeError: before ``start``.
        """
        if self._httpd is None:
            raise RuntimeError("the dashboard is not running")
        host, port = cast(tuple[str, int], self._httpd.server_address[:2])
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
