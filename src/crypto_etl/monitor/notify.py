"""Deliver a message to every ``ALERT_URLS`` destination, through Apprise.

Apprise knows the URL syntax of Slack, email, Teams, Discord, ntfy, generic
``json://`` webhooks and many more. A destination that cannot be reached is
a logged warning, never an exception: an alert must not change a run.
Apprise's own log lines can carry parts of a URL (tokens), so they are
captured here, scrubbed of each URL's secret parts, and folded into that
warning.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Sequence
from urllib.parse import parse_qsl, urlsplit

import apprise

from crypto_etl.config import Secret
from crypto_etl.logs import redact

log = logging.getLogger(__name__)

_TYPES = {
    "failure": apprise.NotifyType.FAILURE,
    "warning": apprise.NotifyType.WARNING,
    "success": apprise.NotifyType.SUCCESS,
    "info": apprise.NotifyType.INFO,
}


@dataclass(frozen=True)
class Destination:
    """One parsed ``ALERT_URLS`` entry and how to name it safely."""

    position: int
    service: apprise.plugins.NotifyBase | None
    label: str
    fragments: tuple[str, ...]


def destinations(urls: Sequence[Secret]) -> list[Destination]:
    """Parse every URL; an entry Apprise does not know has ``service`` None.

    The label (``json://127.0.0.1:8080``) is what logs and the doctor show:
    scheme and host as Apprise's privacy mode masks them, never a path,
    password or token.
    """
    found = []
    for position, secret in enumerate(urls, 1):
        url = secret.reveal()
        service = apprise.Apprise.instantiate(url)
        if service is None:
            label = f"entry {position} ({urlsplit(url).scheme or 'no scheme'}://)"
        else:
            shown = service.url(privacy=True)  # type: ignore[no-untyped-call]
            private = urlsplit(str(shown))
            host = private.netloc.rpartition("@")[2]
            label = f"{private.scheme}://{host}"
        found.append(Destination(position, service, label, _fragments(url)))
    return found


def send(targets: Sequence[Destination], title: str, body: str, severity: str) -> bool:
    """Send one message to every destination.

    Returns:
        True when at least one destination accepted it (or there is none to
        try), so that a message is retried later only when nobody got it.
        Each failure is logged as a warning naming the destination.
    """
    delivered = 0
    tried = 0
    for target in targets:
        if target.service is None:
            log.warning(
                "alerts: ALERT_URLS %s is not a notification URL Apprise knows;"
                " not sent (see `crypto-etl doctor`)",
                target.label,
            )
            continue
        tried += 1
        with _captured() as reasons:
            ok = bool(
                target.service.notify(
                    body=body, title=title, notify_type=_TYPES[severity]
                )
            )
        if ok:
            delivered += 1
            continue
        reason = redact("; ".join(reasons) or "no reason given", target.fragments)
        log.warning("alerts: not delivered to %s: %s", target.label, reason)
    return delivered > 0 or tried == 0


def _fragments(url: str) -> tuple[str, ...]:
    """The parts of a URL that may be secret: the URL, password, path
    segments, query values (and the host of token-as-host schemes)."""
    parts = urlsplit(url)
    found = {url, parts.password or ""}
    found.update(segment for segment in parts.path.split("/"))
    found.update(value for _, value in parse_qsl(parts.query))
    if parts.hostname and "." not in parts.hostname and parts.hostname != "localhost":
        found.add(parts.hostname)  # slack://TokenA/..., discord://id/token
    return tuple(sorted((f for f in found if len(f) >= 4), key=len, reverse=True))


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@contextmanager
def _captured() -> Iterator[list[str]]:
    """Collect Apprise's warnings instead of letting them reach the log."""
    logger = logging.getLogger("apprise")
    handler = _Collect()
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield handler.lines
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
