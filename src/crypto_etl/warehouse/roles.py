"""The dashboards' read-only login role."""

from __future__ import annotations

import psycopg2.extensions
from psycopg2 import sql

from crypto_etl.warehouse.connection import WarehouseConnection, lock_key


def ensure_reader_role(
    warehouse: WarehouseConnection, user: str, password: str
) -> None:
    """Create or update the dashboards' read-only login role.

    The role logs in with ``password``, is a member of ``coincap_read``
    (SELECT only), and starts every session read-only.

    Raises:
        WarehouseError: e.g. when the ETL user may not create roles.
    """
    role = sql.Identifier(user)
    with warehouse.managed_cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key("reader-role"),))
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,))
        verb = "ALTER" if cur.fetchone() else "CREATE"
        # Sent as a SCRAM verifier, so the password never reaches the server
        # (or its log, should the statement fail) as text.
        verifier = psycopg2.extensions.encrypt_password(
            password, user, warehouse.connection, "scram-sha-256"
        )
        cur.execute(
            sql.SQL(
                verb + " ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE"
                " PASSWORD %s"
            ).format(role),
            (verifier,),
        )
        cur.execute(sql.SQL("GRANT coincap_read TO {}").format(role))
        cur.execute(
            sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(role)
        )
