"""Schema migrations: the versioned SQL files in ``warehouse/sql``.

Every file is applied once, in version order, in one transaction, and its
checksum is stored; an applied file that was edited afterwards stops
``migrate`` with a ``MigrationError`` (add a new migration instead).
``prepare_warehouse`` is what ``crypto-etl migrate`` and the demo run: the
migrations, then the dashboards' read-only role.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from importlib import resources

from crypto_etl.config import ReaderSettings
from crypto_etl.errors import MigrationError, WarehouseSqlError
from crypto_etl.warehouse.connection import WarehouseConnection, lock_key
from crypto_etl.warehouse.roles import ensure_reader_role

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Migration:
    """One versioned SQL file shipped in ``crypto_etl/warehouse/sql``."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """The file's sha256, to detect a migration edited after it was applied."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available_migrations() -> list[Migration]:
    """Return the packaged migrations (``NNNN_name.sql``) in version order."""
    found = []
    for entry in resources.files("crypto_etl.warehouse.sql").iterdir():
        if entry.name.endswith(".sql"):
            version, _, name = entry.name.removesuffix(".sql").partition("_")
            found.append(Migration(int(version), name, entry.read_text("utf-8")))
    return sorted(found, key=lambda m: m.version)


def migrate(warehouse: WarehouseConnection) -> list[Migration]:
    """Apply every migration not applied yet, all in one transaction.

    Concurrent callers wait on a transaction advisory lock, so two
    ``migrate`` runs never apply the same file twice.

    Returns:
        The migrations applied now (empty when the schema was up to date).

    Raises:
        MigrationError: when a migration's SQL fails or an applied one was
            edited (exit 12).
        WarehouseError: any other warehouse failure, unchanged: cannot
            connect (transient), login or privilege refused (terminal).
    """
    pending: list[Migration] = []
    step = "reading coincap.schema_migrations"
    try:
        with warehouse.managed_cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key("migrate"),))
            cur.execute("CREATE SCHEMA IF NOT EXISTS coincap")
            cur.execute(
                "CREATE TABLE IF NOT EXISTS coincap.schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " checksum text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            cur.execute("SELECT version, checksum FROM coincap.schema_migrations")
            applied = dict(cur.fetchall())
            for migration in available_migrations():
                if migration.version not in applied:
                    pending.append(migration)
                elif applied[migration.version] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version}_{migration.name} was "
                        "edited after it was applied; add a new migration instead"
                    )
            for migration in pending:
                step = f"migration {migration.version:04d}_{migration.name}"
                log.info(
                    "applying migration %04d_%s", migration.version, migration.name
                )
                cur.execute(migration.sql)
                cur.execute(
                    "INSERT INTO coincap.schema_migrations (version, name, checksum)"
                    " VALUES (%s, %s, %s)",
                    (migration.version, migration.name, migration.checksum),
                )
    except WarehouseSqlError as exc:
        raise MigrationError(
            f"{step} failed, nothing was applied: {exc}; fix the SQL (or the "
            "schema it expects) and run `crypto-etl migrate` again"
        ) from exc
    return pending


def prepare_warehouse(
    warehouse: WarehouseConnection, reader: ReaderSettings | None
) -> list[Migration]:
    """Apply the pending migrations, then create or update the read-only role.

    Args:
        warehouse: a connection as the ETL user.
        reader: the dashboards' read-only login; None leaves roles alone.

    Returns:
        The migrations applied now (empty when the schema was up to date).

    Raises:
        MigrationError: a migration failed or an applied one was edited.
        WarehouseError: e.g. the ETL user may not create the role.
    """
    applied = migrate(warehouse)
    # After the migrations: the role is granted coincap_read, which they create.
    if reader is not None:
        ensure_reader_role(warehouse, reader.user, reader.password.reveal())
    return applied
