"""The dashboard's HTTP face: a Starlette app in front of ``DashboardApp``.

``DashboardApp`` (``dashboard.server``) knows the routes and answers a path;
this module is what stands between it and the network, in this order:

1. ``RequestGuard`` refuses, with a JSON error and before any route runs:
   a Host header not in the allowed list (421: DNS rebinding, a stray
   proxy), a method other than GET or HEAD (405, with ``Allow``), a request
   target longer than ``MAX_TARGET_BYTES`` (414), headers longer than
   ``MAX_HEADER_BYTES`` (431) and a request with a body (413: nothing here
   reads one);
2. ``GZipMiddleware`` compresses answers of 1 KB or more for clients that
   ask for it (the chart JSON, the CSV, the page);
3. the one route hands the path and query string to ``DashboardApp`` in a
   worker thread (its queries block on PostgreSQL) and sends the answer with
   the security headers; HEAD gets the same headers and no body.

Connection counts and timeouts are uvicorn's settings, set in
``dashboard.server`` (uvicorn also caps a request head that arrives in
pieces; whole, it is measured here).
"""

from __future__ import annotations

import json
import logging
import re
from typing import Callable, Iterable

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from crypto_etl.errors import ConfigError

log = logging.getLogger(__name__)

ALLOWED_METHODS = ("GET", "HEAD")
# Longest path plus query string: every real URL of the page is far shorter.
MAX_TARGET_BYTES = 2048
# All header names and values together: a browser sends well under 4 KiB.
MAX_HEADER_BYTES = 16 * 1024
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; "
        "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; "
        "base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
# What build_app calls: (target, accept) -> (status, body, content type, headers).
Handler = Callable[[str, "str | None"], tuple[int, bytes, str, dict[str, str]]]
_LOOPBACK_ADDRESS = re.compile(r"^(localhost|127(\.\d{1,3}){3}|::1)$")
_HOST_NAME = re.compile(r"^(\*\.)?[a-z0-9]([a-z0-9.-]*[a-z0-9])?$|^[0-9a-f:]+$")


def is_loopback(host: str) -> bool:
    """Tell whether a bind address only this machine can reach."""
    return bool(_LOOPBACK_ADDRESS.match(host))


def allowed_hosts(bind_host: str, configured: Iterable[str] | None) -> tuple[str, ...]:
    """The Host names the dashboard answers for.

    Args:
        bind_host: the address it listens on.
        configured: ``DASHBOARD_ALLOWED_HOSTS`` (None when not set).

    Returns:
        The configured names, or the loopback names when bound to loopback.

    Raises:
        ConfigError: bound elsewhere without ``DASHBOARD_ALLOWED_HOSTS``, or
            a name that is not a host name (``*`` alone is refused too).
    """
    if configured is None:
        if is_loopback(bind_host):
            return LOOPBACK_NAMES
        raise ConfigError(
            f"DASHBOARD_ALLOWED_HOSTS is not set and the dashboard listens on "
            f"{bind_host}, beyond this machine: set it to the names its users "
            "type (e.g. dashboard.example.com,localhost), comma-separated"
        )
    names = tuple(name.strip().lower().strip("[]") for name in configured)
    bad = [name for name in names if not _HOST_NAME.match(name)]
    if bad or not names:
        raise ConfigError(
            f"DASHBOARD_ALLOWED_HOSTS must list host names (a leading '*.' "
            f"allows subdomains), got {bad[0] if bad else 'nothing'!r}"
        )
    return names


def host_matches(host_header: str, allowed: tuple[str, ...]) -> bool:
    """Tell whether a Host header (name and optional port) names an allowed host."""
    name = host_header.strip().lower()
    if name.startswith("["):
        name = name[1 : name.find("]")] if "]" in name else ""
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    if not name:
        return False
    for pattern in allowed:
        if pattern.startswith("*."):
            if name.endswith(pattern[1:]):
                return True
        elif name == pattern:
            return True
    return False


def json_response(status: int, payload: object, **headers: str) -> Response:
    """A JSON answer with the security headers."""
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(
        body,
        status,
        {**SECURITY_HEADERS, **headers},
        media_type="application/json; charset=utf-8",
    )


class RequestGuard:
    """ASGI middleware: refuse what no route should see (see the module doc)."""

    def __init__(self, app: ASGIApp, allowed: tuple[str, ...]) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is None:
            await self.app(scope, receive, send)
        else:
            await refusal(scope, receive, send)

    def _refusal(self, scope: Scope) -> Response | None:
        headers = {k.lower(): v for k, v in scope["headers"]}
        host = headers.get(b"host", b"").decode("latin-1")
        if not host_matches(host, self.allowed):
            log.warning("dashboard: refused a request for host %r", host[:100])
            return json_response(
                421,
                {
                    "error": "this dashboard does not answer for that host name "
                    "(DASHBOARD_ALLOWED_HOSTS lists the ones it does)"
                },
            )
        if scope["method"] not in ALLOWED_METHODS:
            method = scope["method"][:20]
            return json_response(
                405,
                {"error": f"method {method} is not allowed; use GET, HEAD"},
                Allow=", ".join(ALLOWED_METHODS),
            )
        target = len(scope.get("raw_path") or b"") + len(scope["query_string"])
        if target > MAX_TARGET_BYTES:
            return json_response(
                414, {"error": f"the URL is longer than {MAX_TARGET_BYTES} bytes"}
            )
        if sum(len(k) + len(v) for k, v in scope["headers"]) > MAX_HEADER_BYTES:
            return json_response(
                431, {"error": f"the headers are longer than {MAX_HEADER_BYTES} bytes"}
            )
        length = headers.get(b"content-length", b"0")
        if b"transfer-encoding" in headers or length.strip() not in (b"", b"0"):
            return json_response(413, {"error": "this dashboard reads no body"})
        return None


def build_app(handle: Handler, allowed: tuple[str, ...]) -> Starlette:
    """The ASGI app: the guard, gzip, and one route into ``handle``.

    Args:
        handle: answers ``(target, accept)`` with a status, body, content type
            and extra headers (``DashboardApp.answer``).
        allowed: the Host names to answer for (``allowed_hosts``).
    """

    async def endpoint(request: Request) -> Response:
        target = request.url.path
        if request.url.query:
            target += "?" + request.url.query
        accept = request.headers.get("accept")
        try:
            status, body, kind, extra = await run_in_threadpool(handle, target, accept)
        except Exception:
            # Logged in full here; the browser gets one line, no traceback.
            log.exception("dashboard: error answering %s", request.url.path)
            return json_response(500, {"error": "internal error (see the log)"})
        headers = {**SECURITY_HEADERS, **extra, "Content-Length": str(len(body))}
        if request.method == "HEAD":
            return Response(b"", status, headers, media_type=kind)
        return Response(body, status, headers, media_type=kind)

    return Starlette(
        routes=[Route("/{path:path}", endpoint, methods=list(ALLOWED_METHODS))],
        middleware=[
            Middleware(RequestGuard, allowed=allowed),
            Middleware(GZipMiddleware, minimum_size=1000),
        ],
    )
