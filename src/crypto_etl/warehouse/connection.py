"""The PostgreSQL warehouse connection: transactions and advisory locks.

``WarehouseConnection`` holds one connection for a process (``run all``
reuses it for every pipeline). ``managed_cursor()`` is one transaction: it
commits when the block ends normally, rolls back on any exception, and always
closes the cursor.

psycopg2 errors leave this module through ``classify_error`` only, as the
``WarehouseError`` subclass that says whether to retry: transient (exit 6:
cannot connect, starting up, serialization failure, deadlock) or terminal
(exit 11: login refused, unknown database, permission denied, any other SQL
error). Each message says what to check; the password never appears.
``connect()`` waits briefly for a server that is starting up and retries
nothing else; a transaction that conflicted is rolled back and left to the
caller (the next scheduled run) to repeat.
"""

from __future__ import annotations

import hashlib
import logging
import re
import select
import time
from contextlib import contextmanager
from typing import Iterator

import psycopg2
import psycopg2.extensions

from crypto_etl.config import WarehouseSettings
from crypto_etl.errors import (
    RunSkipped,
    TerminalWarehouseError,
    UnknownDatabase,
    WarehouseConflict,
    WarehouseDiskFull,
    WarehouseError,
    WarehouseLoginRefused,
    WarehouseNotReady,
    WarehousePermissionDenied,
    WarehouseSqlError,
    WarehouseTimeout,
    WarehouseUnavailable,
)

log = logging.getLogger(__name__)

Cursor = psycopg2.extensions.cursor


class WarehouseConnection:
    """A lazily opened connection to the warehouse.

    Args:
        settings: host, port, database, user and password.
        application_name: shown in ``pg_stat_activity``.
        connect_timeout: seconds to wait for the server.
    """

    def __init__(
        self,
        settings: WarehouseSettings,
        *,
        application_name: str = "crypto-etl",
        connect_timeout: int = 5,
    ) -> None:
        self.settings = settings
        self._application_name = application_name
        self._connect_timeout = connect_timeout
        self._conn: psycopg2.extensions.connection | None = None
        self._refused: TerminalWarehouseError | None = None
        self._session_locks = 0

    @property
    def connection(self) -> psycopg2.extensions.connection:
        """The open connection (opened on first use, again after a loss).

        Once the server has refused these settings (login, database), later
        uses raise the same error without asking it again: nothing retries
        a terminal error, and a server is not pestered with a bad password.

        Raises:
            WarehouseError: see ``connect()``.
        """
        if self._refused is not None:
            raise self._refused
        if self._conn is not None and not self._conn.closed:
            self._drop_if_server_left()
        if self._conn is None or self._conn.closed:
            try:
                self._conn = connect(
                    self.settings,
                    application_name=self._application_name,
                    connect_timeout=self._connect_timeout,
                )
            except TerminalWarehouseError as exc:
                self._refused = exc
                raise
        return self._conn

    @contextmanager
    def managed_cursor(self) -> Iterator[Cursor]:
        """Yield a cursor inside one transaction.

        Commits when the block ends, rolls back when it raises, always closes.

        Raises:
            WarehouseError: a database error, rolled back, sorted by
                ``classify_error`` (other exceptions from the block are
                re-raised unchanged after the rollback).
        """
        conn = self.connection
        cursor = conn.cursor()
        try:
            yield cursor
            conn.commit()
        except psycopg2.Error as exc:
            self._rollback()
            raise classify_error(
                exc, self.settings, connection_lost=bool(conn.closed)
            ) from exc
        except BaseException:
            self._rollback()
            raise
        finally:
            if not cursor.closed:
                cursor.close()

    @contextmanager
    def pipeline_lock(self, name: str) -> Iterator[None]:
        """Hold a session advisory lock named after a pipeline for the block.

        Raises:
            RunSkipped: at once, when another session holds the lock.
        """
        with self.managed_cursor() as cur:
            cur.execute("SELECT pg_try_advisory_lock(%s)", (lock_key(name),))
            row = cur.fetchone()
        if not (row and row[0]):
            raise RunSkipped(f"{name}: another run is in progress")
        self._session_locks += 1
        try:
            yield
        finally:
            try:
                # Only on the session that holds it: a dead connection took
                # the lock with it, and reconnecting would hide the real error.
                if self._conn is not None and not self._conn.closed:
                    with self.managed_cursor() as cur:
                        cur.execute("SELECT pg_advisory_unlock(%s)", (lock_key(name),))
            finally:
                self._session_locks -= 1

    def close(self) -> None:
        """Close the connection (releasing any advisory lock it holds)."""
        if self._conn is not None and not self._conn.closed:
            self._conn.close()

    def __enter__(self) -> WarehouseConnection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _drop_if_server_left(self) -> None:
        # A server restarted (or a backend terminated) while this connection
        # sat idle between runs: an idle session is sent nothing, so anything
        # readable on its socket is the server's goodbye or the closed end.
        # Dropping it lets the next run reconnect instead of failing on a
        # dead socket. Never while a session lock is held or a transaction
        # is open: losing the connection there must stay an error.
        conn = self._conn
        assert conn is not None
        if self._session_locks or conn.status != psycopg2.extensions.STATUS_READY:
            return
        readable, _, _ = select.select([conn], [], [], 0)
        if readable:
            log.info("the warehouse closed the idle connection; reconnecting")
            conn.close()

    def _rollback(self) -> None:
        if self._conn is not None and not self._conn.closed:
            try:
                self._conn.rollback()
            except psycopg2.Error:
                log.debug("rollback failed; the connection is gone", exc_info=True)


# How long connect() waits for a server that says it is starting up: long
# enough for a restart or crash recovery, short enough that a dashboard
# request or a cron job does not hang on a server that stays down.
STARTUP_WAIT_SECONDS = 10.0


def connect(
    settings: WarehouseSettings,
    *,
    application_name: str,
    connect_timeout: int = 5,
    options: str | None = None,
    hint: str = "",
    startup_wait: float = STARTUP_WAIT_SECONDS,
) -> psycopg2.extensions.connection:
    """Open one connection to the warehouse.

    A server that is starting up (or shutting down for a restart) is tried
    again with backoff for up to ``startup_wait`` seconds; every other
    failure raises at once.

    Args:
        settings: host, port, database, user and password.
        application_name: shown in ``pg_stat_activity``.
        connect_timeout: seconds to wait for the server.
        options: server settings for the session (``-c name=value ...``);
            by default ``session_options(settings)``.
        hint: more to check when the login is refused.
        startup_wait: seconds to keep trying a server that is not ready.

    Raises:
        WarehouseUnavailable: the server cannot be reached (transient).
        WarehouseNotReady: still not ready after ``startup_wait`` (transient).
        TerminalWarehouseError: the login, database or privilege was refused.
    """
    deadline = time.monotonic() + startup_wait
    delay = 0.1
    while True:
        try:
            return psycopg2.connect(
                host=settings.host,
                port=settings.port,
                dbname=settings.dbname,
                user=settings.user,
                password=settings.password.reveal(),
                connect_timeout=connect_timeout,
                application_name=application_name,
                options=session_options(settings) if options is None else options,
            )
        except psycopg2.Error as exc:
            error = classify_error(exc, settings, connecting=True, hint=hint)
            if not isinstance(error, WarehouseNotReady):
                raise error from exc
            if time.monotonic() + delay > deadline:
                raise error from exc
            log.info("%s; trying again in %.1f s", error, delay)
        time.sleep(delay)  # the server gives no signal when it becomes ready
        delay = min(delay * 2, 2.0)


# Query errors by SQLSTATE; a code not listed is a terminal WarehouseSqlError
# (class 08, connection exceptions, is WarehouseUnavailable).
_BY_SQLSTATE: dict[str, type[WarehouseError]] = {
    "40001": WarehouseConflict,  # serialization_failure
    "40P01": WarehouseConflict,  # deadlock_detected
    "57P01": WarehouseNotReady,  # admin_shutdown
    "57P02": WarehouseNotReady,  # crash_shutdown
    "57P03": WarehouseNotReady,  # cannot_connect_now
    "53300": WarehouseUnavailable,  # too_many_connections
    "57014": WarehouseTimeout,  # query_canceled: statement_timeout (or an admin)
    "55P03": WarehouseTimeout,  # lock_not_available: lock_timeout
    "53100": WarehouseDiskFull,  # disk_full
    "28P01": WarehouseLoginRefused,  # invalid_password
    "28000": WarehouseLoginRefused,  # invalid_authorization_specification
    "3D000": UnknownDatabase,  # invalid_catalog_name
    "42501": WarehousePermissionDenied,  # insufficient_privilege
}
# A missing schema or table: the database was not migrated.
_MISSING_RELATION = {"3F000", "42P01"}

# psycopg2 gives a failed connection no SQLSTATE, only libpq's text, which
# holds the server's message when the server answered. First match wins.
# The server words these in English unless its lc_messages says otherwise;
# a refusal (FATAL) not recognised here is terminal, no answer is transient.
_REFUSALS: list[tuple[re.Pattern[str], type[WarehouseError]]] = [
    (re.compile(pattern, re.IGNORECASE), kind)
    for pattern, kind in [
        (
            r"the database system is (starting|shutting|not yet|in recov)",
            WarehouseNotReady,
        ),
        (r"too many (clients|connections)|slots are reserved", WarehouseUnavailable),
        (r"authentication failed|no password supplied", WarehouseLoginRefused),
        (r"no pg_hba\.conf entry|not permitted to log in", WarehouseLoginRefused),
        (r'role ".*" does not exist', WarehouseLoginRefused),
        (r'database ".*" does not exist', UnknownDatabase),
        (r"permission denied for database", WarehousePermissionDenied),
        (r"FATAL:", TerminalWarehouseError),
    ]
]
_LIBPQ_PREFIX = re.compile(r"^connection to server (at|on) .*? failed: (FATAL:\s+)?")

# What each error tells the user to check.
_MESSAGES: dict[type[WarehouseError], str] = {
    WarehouseUnavailable: (
        "{lead} the warehouse {where}: {reason}; check that it is running "
        "(`crypto-etl warehouse start` or `make up`) and the WAREHOUSE_HOST "
        "and WAREHOUSE_PORT settings"
    ),
    WarehouseNotReady: (
        "the warehouse {where} is starting up or shutting down: {reason}; "
        "run again once it accepts connections"
    ),
    WarehouseConflict: (
        "the warehouse rolled the transaction back: {reason}; another session "
        "changed the same rows at the same time, so running it again is safe"
    ),
    WarehouseTimeout: (
        "the warehouse {where} cancelled a statement: {reason}; another "
        "session's lock or an overloaded server held it past "
        "WAREHOUSE_LOCK_TIMEOUT / WAREHOUSE_STATEMENT_TIMEOUT, and nothing of "
        "it was kept, so running it again is safe"
    ),
    WarehouseDiskFull: (
        "the warehouse {where} is out of disk space: {reason}; nothing of the "
        "transaction was kept; free space on its volume (or grow it), then "
        "run again"
    ),
    WarehouseLoginRefused: (
        "the warehouse {where} refused the login: {reason}; check WAREHOUSE_USER "
        "and WAREHOUSE_PASSWORD (WAREHOUSE_READER_* for the dashboard){also}"
    ),
    UnknownDatabase: (
        "the warehouse {where} has no database {dbname!r}: check WAREHOUSE_DB, "
        "or create the database (`crypto-etl warehouse start` does for the "
        "local warehouse)"
    ),
    WarehousePermissionDenied: (
        "{reason}: the role {user!r} lacks the privilege; grant it, or check "
        "WAREHOUSE_USER (the ETL role, not the read-only reader)"
    ),
    TerminalWarehouseError: (
        "the warehouse {where} refused the connection: {reason}; check the "
        "WAREHOUSE_* settings{also}"
    ),
    WarehouseSqlError: "warehouse error: {reason}",
}


def classify_error(
    exc: psycopg2.Error,
    settings: WarehouseSettings,
    *,
    connecting: bool = False,
    connection_lost: bool = False,
    hint: str = "",
) -> WarehouseError:
    """Sort a psycopg2 error into the warehouse error that says what to do.

    Args:
        exc: what psycopg2 raised.
        settings: the warehouse it happened on (named in the message).
        connecting: ``exc`` came from ``psycopg2.connect``, which gives no
            SQLSTATE: sorted by the server's message text.
        connection_lost: the failure closed the connection.
        hint: more to check when the login is refused.

    Returns:
        The error to raise: a ``TransientWarehouseError`` (worth retrying)
        or a ``TerminalWarehouseError`` (a person must fix something).
    """
    kind: type[WarehouseError]
    if connecting:
        reason, kind = _connect_failure(exc)
    elif connection_lost or isinstance(exc, psycopg2.InterfaceError):
        reason, kind = first_line(exc), WarehouseUnavailable
    else:
        reason, code = first_line(exc), exc.pgcode or ""
        default = WarehouseUnavailable if code.startswith("08") else WarehouseSqlError
        kind = _BY_SQLSTATE.get(code, default)
        if code in _MISSING_RELATION:
            reason += "; run `crypto-etl migrate`"
    message = _MESSAGES[kind].format(
        lead="cannot connect to" if connecting else "lost the connection to",
        where=settings.describe(),
        reason=reason,
        dbname=settings.dbname,
        user=settings.user,
        also=f"; also check {hint.strip(' ,;')}" if hint.strip(" ,;") else "",
    )
    return kind(message)


def _connect_failure(exc: psycopg2.Error) -> tuple[str, type[WarehouseError]]:
    """Return the line of libpq's text that says why, and what it means."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for pattern, kind in _REFUSALS:
        for line in lines:
            if pattern.search(line):
                return _LIBPQ_PREFIX.sub("", line), kind
    # The server did not answer: refused, timed out, unknown host, reset.
    return _LIBPQ_PREFIX.sub("", first_line(exc)), WarehouseUnavailable


def session_options(settings: WarehouseSettings) -> str:
    """The ETL session's server settings, as ``-c name=value`` options.

    UTC, so times leave the server the same everywhere; the lock and
    statement timeouts of ``settings``, so a statement stuck behind another
    session's lock fails (SQLSTATE 55P03 / 57014) instead of hanging.
    """
    lock_ms = round(settings.lock_timeout_s * 1000)
    statement_ms = round(settings.statement_timeout_s * 1000)
    return (
        f"-c TimeZone=UTC -c lock_timeout={lock_ms}"
        f" -c statement_timeout={statement_ms}"
    )


def lock_key(name: str) -> int:
    """Return a stable signed 64-bit advisory-lock key for a name."""
    digest = hashlib.sha256(f"crypto_etl:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def first_line(exc: BaseException) -> str:
    """Return the first line of an exception's message (psycopg2's run on)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
