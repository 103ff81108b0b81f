"""The PostgreSQL warehouse connection: transactions and advisory locks.

``WarehouseConnection`` holds one connection for a process (``run all``
reuses it for every pipeline). ``managed_cursor()`` is one transaction: it
commits when the block ends normally, rolls back on any exception, and always
closes the cursor. psycopg2 errors leave this module as ``WarehouseError``
subclasses whose message says what to check; the password never appears.
"""

from __future__ import annotations

import hashlib
import logging
from contextlib import contextmanager
from typing import Iterator

import psycopg2
import psycopg2.extensions

from crypto_etl.config import WarehouseSettings
from crypto_etl.errors import (
    RunSkipped,
    WarehouseError,
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

    @property
    def connection(self) -> psycopg2.extensions.connection:
        """The open connection (opened on first use).

        Raises:
            WarehouseUnavailable: when the server cannot be reached or refuses us.
        """
        if self._conn is None or self._conn.closed:
            self._conn = connect(
                self.settings,
                application_name=self._application_name,
                connect_timeout=self._connect_timeout,
            )
        return self._conn

    @contextmanager
    def managed_cursor(self) -> Iterator[Cursor]:
        """Yield a cursor inside one transaction.

        Commits when the block ends, rolls back when it raises, always closes.

        Raises:
            WarehouseError: a database error, rolled back (other exceptions
                from the block are re-raised unchanged after the rollback).
        """
        conn = self.connection
        cursor = conn.cursor()
        try:
            yield cursor
            conn.commit()
        except psycopg2.Error as exc:
            self._rollback()
            if isinstance(exc, psycopg2.OperationalError) and conn.closed:
                raise WarehouseUnavailable(
                    f"lost the connection to {self.settings.describe()}: "
                    f"{first_line(exc)}"
                ) from exc
            raise WarehouseError(f"warehouse error: {first_line(exc)}") from exc
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
            raise RunSkipped(f"{name}: another run is in progress; skipped")
        try:
            yield
        finally:
            # Only on the session that holds it: a dead connection took the
            # lock with it, and reconnecting here would hide the real error.
            if self._conn is not None and not self._conn.closed:
                with self.managed_cursor() as cur:
                    cur.execute("SELECT pg_advisory_unlock(%s)", (lock_key(name),))

    def close(self) -> None:
        """Close the connection (releasing any advisory lock it holds)."""
        if self._conn is not None and not self._conn.closed:
            self._conn.close()

    def __enter__(self) -> WarehouseConnection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _rollback(self) -> None:
        if self._conn is not None and not self._conn.closed:
            try:
                self._conn.rollback()
            except psycopg2.Error:
                log.debug("rollback failed; the connection is gone", exc_info=True)


def connect(
    settings: WarehouseSettings,
    *,
    application_name: str,
    connect_timeout: int = 5,
    options: str = "-c TimeZone=UTC",
    hint: str = "",
) -> psycopg2.extensions.connection:
    """Open one connection to the warehouse.

    Args:
        settings: host, port, database, user and password.
        application_name: shown in ``pg_stat_activity``.
        connect_timeout: seconds to wait for the server.
        options: server settings for the session (``-c name=value ...``);
            by default UTC, so times leave the server the same everywhere.
        hint: more to check, appended to the error message.

    Raises:
        WarehouseUnavailable: when the server cannot be reached or refuses us.
    """
    try:
        return psycopg2.connect(
            host=settings.host,
            port=settings.port,
            dbname=settings.dbname,
            user=settings.user,
            password=settings.password.reveal(),
            connect_timeout=connect_timeout,
            application_name=application_name,
            options=options,
        )
    except psycopg2.OperationalError as exc:
        raise WarehouseUnavailable(
            f"cannot connect to the warehouse {settings.describe()}: "
            f"{first_line(exc)}; check that it is running "
            f"(`crypto-etl warehouse start` or `make up`){hint} and the "
            "WAREHOUSE_* settings"
        ) from exc


def lock_key(name: str) -> int:
    """Return a stable signed 64-bit advisory-lock key for a name."""
    digest = hashlib.sha256(f"crypto_etl:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def first_line(exc: BaseException) -> str:
    """Return the first line of an exception's message (psycopg2's run on)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
