"""Dead-man's pings, in the healthchecks.io convention.

A scheduled command pings ``<url>/start`` when it begins and ``<url>`` when
it succeeds or ``<url>/fail`` when it fails, so a monitor (healthchecks.io,
its self-hosted copies, any service that speaks the convention) raises the
alarm when the pings stop or say fail. Every ping of one command carries
the same ``rid`` (run id), so overlapping commands on one URL are told
apart. A ping that cannot be delivered is a logged warning: it never
changes the command's exit code.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests

from crypto_etl.config import MonitorSettings, Secret

log = logging.getLogger(__name__)

# The longest reason sent with a /fail ping (healthchecks.io keeps 100 kB).
MAX_BODY = 1000


@dataclass(frozen=True)
class PingTarget:
    """One URL to ping: the command's (``name`` None) or a pipeline's."""

    name: str | None
    url: Secret

    @property
    def variable(self) -> str:
        """The setting it comes from, e.g. ``HEALTHCHECK_URL_EXCHANGES``."""
        return "HEALTHCHECK_URL" + (
            "" if self.name is None else "_" + self.name.upper()
        )


def targets(monitor: MonitorSettings, names: list[str]) -> list[PingTarget]:
    """The URLs a command covering ``names`` pings: HEALTHCHECK_URL for the
    command, and HEALTHCHECK_URL_<NAME> for each name that has one."""
    found = []
    if monitor.healthcheck_url is not None:
        found.append(PingTarget(None, monitor.healthcheck_url))
    own = dict(monitor.pipeline_pings)
    for name in names:
        if name in own:
            found.append(PingTarget(name, own[name]))
    return found


def ping_url(base: str, suffix: str, rid: str) -> str:
    """``base`` with ``/suffix`` added to its path and ``rid`` to its query."""
    parts = urlsplit(base)
    path = parts.path.rstrip("/") + (f"/{suffix}" if suffix else "")
    query = urlencode([*parse_qsl(parts.query), ("rid", rid)])
    return urlunsplit((parts.scheme, parts.netloc, path or "/", query, ""))


class Pinger:
    """Sends one command's pings over one HTTP session.

    Args:
        timeout: seconds for each ping (connect and read).
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.rid = str(uuid.uuid4())
        self._session = requests.Session()

    def ping(self, target: PingTarget, suffix: str, body: str = "") -> bool:
        """POST ``body`` to the target's ``/suffix`` (``start``, ``fail`` or
        ``""`` for success, ``log`` for a test); returns whether it arrived."""
        url = ping_url(target.url.reveal(), suffix, self.rid)
        try:
            response = self._session.post(
                url, data=body[:MAX_BODY].encode(), timeout=self.timeout
            )
        except requests.RequestException as exc:
            # The exception text holds the URL, and the URL its token.
            log.warning(
                "ping %s%s failed: %s",
                target.variable,
                f" /{suffix}" if suffix else "",
                type(exc).__name__,
            )
            return False
        if response.status_code >= 300:
            log.warning(
                "ping %s%s answered HTTP %d",
                target.variable,
                f" /{suffix}" if suffix else "",
                response.status_code,
            )
            return False
        return True

    def close(self) -> None:
        """Close the HTTP session."""
        self._session.close()
