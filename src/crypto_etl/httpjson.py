"""JSON error answers for the project's HTTP servers (dashboard, simulator).

``http.server`` answers a method it has no ``do_*`` for with an HTML 501
page, and a malformed request with an HTML 400. Clients of these servers
read JSON, so every such error is a one-line JSON body instead, and an
unsupported method is what HTTP calls it: 405 with an ``Allow`` header.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler


class JsonErrorsHandler(BaseHTTPRequestHandler):
    """A request handler whose protocol-level errors are JSON.

    ``ALLOWED`` lists the methods the subclass serves (its ``do_*``).
    """

    ALLOWED: tuple[str, ...] = ("GET", "HEAD")

    def send_error(
        self, code: int, message: str | None = None, explain: str | None = None
    ) -> None:
        """Answer ``code`` with ``{"error": ...}``; 501 (no such method) is 405."""
        if code == HTTPStatus.NOT_IMPLEMENTED:
            code = HTTPStatus.METHOD_NOT_ALLOWED
            message = (
                f"method {self.command} is not allowed; use {', '.join(self.ALLOWED)}"
            )
        status = HTTPStatus(code)
        body = json.dumps({"error": message or status.phrase}).encode()
        self.send_response(code, status.phrase)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        if code == HTTPStatus.METHOD_NOT_ALLOWED:
            self.send_header("Allow", ", ".join(self.ALLOWED))
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
