"""Alert state: announce each problem once, and its clearing once.

``announce`` takes the problems a check found and what that check looked at,
and reconciles them with ``coincap.alert_state`` under the ``alerts``
advisory lock (so two overlapping commands never send the same message):

1. a problem not yet known is stored open; one known and open is left as
   it is (no repeat); one that was resolved and is back is reopened;
2. an open problem the check looked at and did not find is resolved;
3. every opening and resolution not yet delivered is sent, outside any
   transaction, and marked sent once a destination accepted it; an
   undelivered one is tried again on the next check. A problem that was
   never announced is resolved quietly.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Iterable, Iterator, Sequence

from crypto_etl.logs import redact
from crypto_etl.errors import WarehouseError
from crypto_etl.monitor import notify
from crypto_etl.monitor.problems import Problem, resolved_body, resolved_title
from crypto_etl.warehouse.connection import Cursor, WarehouseConnection, lock_key

log = logging.getLogger(__name__)

LOCK_NAME = "alerts"
LOCK_WAIT = "30s"
# Events (abandoned runs) are kept this long, so one is never announced twice.
EVENT_RETENTION = "30 days"


@dataclass(frozen=True)
class Scope:
    """What a check looked at: an open problem in scope and not found again
    has cleared. ``kinds`` are judged whole (every stale table); ``keys``
    one by one (the runs of the pipelines this command ran)."""

    kinds: frozenset[str] = frozenset()
    keys: frozenset[str] = frozenset()

    def covers(self, key: str, kind: str) -> bool:
        return kind in self.kinds or key in self.keys


@dataclass
class Delivery:
    """What one ``announce`` sent: the keys of messages delivered and not."""

    sent: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Message:
    key: str
    resolution: bool
    title: str
    body: str
    severity: str


def announce(
    warehouse: WarehouseConnection,
    found: Sequence[Problem],
    scope: Scope,
    targets: Sequence[notify.Destination],
    secrets: Iterable[str] = (),
) -> Delivery:
    """Store the check's findings and send what is new (see the module docstring).

    Args:
        warehouse: the ETL's connection (the state is written).
        found: every problem the check found.
        scope: what the check looked at.
        targets: the parsed ``ALERT_URLS``.
        secrets: values that must never appear in a message.

    Raises:
        WarehouseError: the state cannot be read or written (nothing is sent).
    """
    scrub = [s for s in secrets if s]
    with _alert_lock(warehouse):
        with warehouse.managed_cursor() as cur:
            _store(cur, [_scrubbed(p, scrub) for p in found], scope)
            outbox = _outbox(cur)
        delivery = Delivery()
        for message in outbox:
            ok = notify.send(targets, message.title, message.body, message.severity)
            (delivery.sent if ok else delivery.failed).append(message.key)
        if outbox:
            with warehouse.managed_cursor() as cur:
                for message in outbox:
                    if message.key in delivery.sent:
                        column = (
                            "resolved_sent" if message.resolution else "opened_sent"
                        )
                        # {column} is one of two literal column names above.
                        sql = (
                            f"UPDATE coincap.alert_state SET {column} = true"  # nosec
                            " WHERE alert_key = %s"
                        )
                        cur.execute(sql, (message.key,))
    for key in delivery.sent:
        log.info("alerts: sent %s", key)
    return delivery


def _scrubbed(problem: Problem, secrets: list[str]) -> Problem:
    return replace(
        problem,
        summary=redact(problem.summary, secrets),
        check=redact(problem.check, secrets),
    )


def _store(cur: Cursor, found: Sequence[Problem], scope: Scope) -> None:
    # EVENT_RETENTION is a constant of this module, not input.
    cur.execute(
        "DELETE FROM coincap.alert_state WHERE is_event"  # nosec B608
        f" AND opened_at < now() - interval '{EVENT_RETENTION}'"
    )
    cur.execute("SELECT alert_key, kind, resolved_at FROM coincap.alert_state")
    known: dict[str, tuple[str, datetime | None]] = {
        key: (kind, resolved) for key, kind, resolved in cur.fetchall()
    }
    for p in found:
        if p.key not in known:
            cur.execute(
                "INSERT INTO coincap.alert_state (alert_key, kind, subject, summary,"
                " to_check, severity, is_event, opened_at, last_seen_at, resolved_at,"
                " resolved_sent) VALUES (%s, %s, %s, %s, %s, %s, %s, now(), now(),"
                " CASE WHEN %s THEN now() END, %s)",
                (p.key, p.kind, p.subject, p.summary, p.check, p.severity)
                + (p.event, p.event, p.event),
            )
        elif p.event:
            continue
        elif known[p.key][1] is None:
            # Until it is delivered, the message keeps up with the figures.
            cur.execute(
                "UPDATE coincap.alert_state SET last_seen_at = now(),"
                " summary = CASE WHEN opened_sent THEN summary ELSE %s END,"
                " to_check = CASE WHEN opened_sent THEN to_check ELSE %s END"
                " WHERE alert_key = %s",
                (p.summary, p.check, p.key),
            )
        else:
            cur.execute(
                "UPDATE coincap.alert_state SET summary = %s, to_check = %s,"
                " severity = %s, opened_at = now(), last_seen_at = now(),"
                " resolved_at = NULL, opened_sent = false, resolved_sent = false"
                " WHERE alert_key = %s",
                (p.summary, p.check, p.severity, p.key),
            )
    seen = {p.key for p in found}
    cleared = [
        key
        for key, (kind, resolved) in known.items()
        if resolved is None and key not in seen and scope.covers(key, kind)
    ]
    if cleared:
        cur.execute(
            "UPDATE coincap.alert_state SET resolved_at = now()"
            " WHERE alert_key = ANY(%s) AND NOT is_event",
            (cleared,),
        )


def _outbox(cur: Cursor) -> list[_Message]:
    cur.execute(
        "SELECT alert_key, summary, to_check, severity, opened_at,"
        " NOT (resolved_at IS NULL OR is_event) FROM coincap.alert_state"
        " WHERE (NOT opened_sent AND (resolved_at IS NULL OR is_event))"
        "    OR (resolved_at IS NOT NULL AND NOT is_event AND opened_sent"
        "        AND NOT resolved_sent)"
        " ORDER BY opened_at, alert_key"
    )
    messages = []
    for key, summary, check, severity, opened_at, resolution in cur.fetchall():
        if resolution:
            messages.append(
                _Message(
                    key,
                    True,
                    resolved_title(summary),
                    resolved_body(summary, opened_at),
                    "success",
                )
            )
        else:
            problem = Problem(key, "", "", summary, check, severity)
            messages.append(_Message(key, False, problem.title, problem.body, severity))
    return messages


@contextmanager
def _alert_lock(warehouse: WarehouseConnection) -> Iterator[None]:
    """Hold the ``alerts`` session lock, waiting up to LOCK_WAIT for it.

    Raises:
        WarehouseError: the lock did not come in time.
    """
    key = lock_key(LOCK_NAME)
    with warehouse.managed_cursor() as cur:
        cur.execute(f"SET LOCAL lock_timeout = '{LOCK_WAIT}'")
        cur.execute("SELECT pg_advisory_lock(%s)", (key,))
    try:
        yield
    finally:
        try:
            with warehouse.managed_cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(%s)", (key,))
        except WarehouseError as exc:  # a lost session took the lock with it
            log.debug("alerts: unlock failed: %s", exc)
