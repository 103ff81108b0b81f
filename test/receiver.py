"""A local HTTP receiver for alerts (Apprise ``json://``) and pings.

It answers every POST/GET/HEAD with 200 and records it, so the tests see
exactly what a Slack webhook or healthchecks.io would have received.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    query: dict[str, list[str]]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """Start with ``with Receiver() as r``; ``r.url`` is its base URL."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                with receiver._lock:
                    receiver.requests.append(
                        Received(self.command, parts.path, parse_qs(parts.query), body)
                    )
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")

            do_GET = do_POST = do_HEAD = _record

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def alerts(self) -> list[dict[str, Any]]:
        """The JSON bodies Apprise posted to /alerts."""
        return [r.json() for r in self.requests if r.path == "/alerts"]

    def pings(self, name: str = "ping") -> list[str]:
        """The pings to /<name>: "start", "success" or "fail"."""
        found = []
        for r in self.requests:
            if r.path == f"/{name}":
                found.append("success")
            elif r.path.startswith(f"/{name}/"):
                found.append(r.path.removeprefix(f"/{name}/"))
        return found

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


FIVE_MINUTE_CRONTAB = "*/5 * * * * crypto-etl run all; crypto-etl transform\n"
