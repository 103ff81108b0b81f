"""``/healthz``: is the data fresh, and does the warehouse answer?

The verdict any uptime monitor can watch: 200 when every table's newest row
is within its freshness limit (``Pipeline.freshness`` in the catalog, the
same limits as dbt's source freshness); 503 naming the stale tables when one
is not, and 503 saying why when the warehouse does not answer. It reads
through the dashboard's read-only role, in a session that is read-only and
time-limited whatever the role's defaults, and shows no secret.

``/livez`` only says the server is up: the container's health check, which
must not turn red because the data is late.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime
from typing import Any, Callable, Iterator

from crypto_etl.config import Settings, WarehouseSettings
from crypto_etl.errors import ConfigError, WarehouseError, WarehouseUnavailable
from crypto_etl.monitor.freshness import TableFreshness, assess, stale
from crypto_etl.pipelines.freshness import limits_for_settings
from crypto_etl.warehouse.connection import WarehouseConnection
from crypto_etl.warehouse.status import newest_data

STATEMENT_TIMEOUT_MS = 5000


@contextmanager
def reader_session(reader: WarehouseSettings) -> Iterator[WarehouseConnection]:
    """A read-only, time-limited connection as the reader role, for one request.

    Raises:
        WarehouseUnavailable: the warehouse cannot be reached.
    """
    with WarehouseConnection(
        reader, application_name="crypto-etl-dashboard", connect_timeout=3
    ) as warehouse:
        with warehouse.managed_cursor() as cur:
            cur.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            cur.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
        yield warehouse


class HealthCheck:
    """Computes ``/healthz``'s answer.

    Args:
        settings: the project settings (the schedule in force sets the limits).
        reader: the reader role's warehouse settings.
        clock: the current aware UTC time.
    """

    def __init__(
        self,
        settings: Settings,
        reader: WarehouseSettings,
        clock: Callable[[], datetime],
    ) -> None:
        self.settings = settings
        self.reader = reader
        self.clock = clock

    def verdict(self) -> tuple[int, dict[str, Any]]:
        """Return the HTTP status and the JSON body."""
        try:
            with reader_session(self.reader) as warehouse:
                limits = limits_for_settings(self.settings, warehouse)
                tables = assess(newest_data(warehouse), self.clock(), limits)
        except WarehouseError as exc:
            state = "unavailable" if isinstance(exc, WarehouseUnavailable) else "error"
            return 503, {"status": state, "warehouse": str(exc)}
        except ConfigError as exc:  # the crontab in force cannot be read
            return 503, {"status": "error", "warehouse": "ok", "error": str(exc)}
        late = stale(tables)
        body: dict[str, Any] = {
            "status": "stale" if late else "ok",
            "warehouse": "ok",
            "stale": [t.table for t in late],
            "tables": {t.table: table_json(t) for t in tables},
        }
        if late:
            body["message"] = "stale data: " + "; ".join(t.describe() for t in late)
        return (503 if late else 200), body


def table_json(table: TableFreshness) -> dict[str, Any]:
    """One table's freshness as JSON."""
    return {
        "pipeline": table.pipeline,
        "state": table.state,
        "newest": None if table.newest is None else table.newest.isoformat(),
        "age_seconds": None if table.age is None else int(table.age.total_seconds()),
        "warn_after_seconds": int(table.limits.warn_after.total_seconds()),
        "error_after_seconds": int(table.limits.error_after.total_seconds()),
    }
