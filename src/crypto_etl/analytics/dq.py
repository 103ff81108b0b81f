"""What the dbt run leaves for others to read: data-quality results and docs.

``coincap.dq_results`` rows are stored and read back here, and the docs
site's location is defined here, apart from ``dbt_runner`` so that readers
(``crypto-etl status``, the dashboard) do not import dbt.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Sequence

from psycopg2.extras import execute_values

from crypto_etl.warehouse.connection import WarehouseConnection

# Where `crypto-etl transform --docs` writes dbt's docs site, and its files.
DEFAULT_DOCS_DIR = Path(".data/dbt-docs")
DOCS_FILES = ("index.html", "catalog.json", "manifest.json")


@dataclass(frozen=True)
class DqResult:
    """One data-quality check of one run: a row of ``coincap.dq_results``.

    ``status`` is pass, warn, fail (an error-severity failure), error (it
    could not run) or skipped (a model it tests did not build).
    """

    run_at: datetime
    invocation_id: str
    test_name: str
    model: str | None
    status: str
    severity: str | None
    failures: int | None
    execution_time_s: Decimal
    message: str | None


def store_results(warehouse: WarehouseConnection, results: Sequence[DqResult]) -> None:
    """Insert the results into ``coincap.dq_results`` in one transaction.

    Raises:
        WarehouseError: when the warehouse refuses them.
    """
    if not results:
        return
    with warehouse.managed_cursor() as cur:
        execute_values(
            cur,
            "INSERT INTO coincap.dq_results (run_at, invocation_id, test_name, model,"
            " status, severity, failures, execution_time_s, message) VALUES %s",
            [
                (
                    r.run_at,
                    r.invocation_id,
                    r.test_name,
                    r.model,
                    r.status,
                    r.severity,
                    r.failures,
                    r.execution_time_s,
                    r.message,
                )
                for r in results
            ],
        )


def latest_dq_results(warehouse: WarehouseConnection) -> list[DqResult]:
    """Return the results of the newest transform run, worst status first.

    Returns an empty list when no transform has stored any.

    Raises:
        WarehouseError: when the warehouse cannot be read (e.g. not migrated).
    """
    with warehouse.managed_cursor() as cur:
        cur.execute(
            "SELECT run_at, invocation_id, test_name, model, status, severity,"
            " failures, execution_time_s, message FROM coincap.dq_results"
            " WHERE invocation_id = (SELECT invocation_id FROM coincap.dq_results"
            "  ORDER BY run_at DESC LIMIT 1)"
            " ORDER BY array_position("
            "  ARRAY['error', 'fail', 'warn', 'skipped', 'pass'], status), test_name"
        )
        return [DqResult(*row) for row in cur.fetchall()]
