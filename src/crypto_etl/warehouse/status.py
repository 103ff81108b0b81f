"""What ``crypto-etl status`` reports: the last run of each pipeline and freshness."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from crypto_etl.pipelines.catalog import ALL_PIPELINES
from crypto_etl.warehouse.connection import Cursor, WarehouseConnection


@dataclass(frozen=True)
class PipelineStatus:
    """The last run of one pipeline and how fresh its data is."""

    pipeline: str
    last_status: str | None
    last_run_at: datetime | None
    rows_fetched: int
    rows_inserted: int
    rows_rejected: int
    api_calls: int
    bytes_received: int
    credits: int
    error_message: str | None
    last_success_at: datetime | None
    newest_data_at: datetime | None


def read_status(warehouse: WarehouseConnection) -> list[PipelineStatus]:
    """Return one status per pipeline that has a table or a run.

    Raises:
        WarehouseError: when the warehouse cannot be read (e.g. not migrated).
    """
    with warehouse.managed_cursor() as cur:
        cur.execute(
            "SELECT DISTINCT ON (pipeline) pipeline, status, started_at,"
            " rows_fetched, rows_inserted, rows_rejected, api_calls,"
            " bytes_received, credits, error_message,"
            " (SELECT max(finished_at) FROM coincap.etl_runs s"
            "   WHERE s.pipeline = r.pipeline AND s.status = 'succeeded')"
            " FROM coincap.etl_runs r ORDER BY pipeline, started_at DESC, run_id DESC"
        )
        runs = {row[0]: row for row in cur.fetchall()}
        newest = _newest(cur)
    result = []
    for name in sorted(set(runs) | set(ALL_PIPELINES)):
        run = runs.get(name)
        if run is None:
            result.append(
                PipelineStatus(
                    name, None, None, 0, 0, 0, 0, 0, 0, None, None, newest.get(name)
                )
            )
            continue
        result.append(PipelineStatus(*[*run, newest.get(name)]))
    return result


def newest_data(warehouse: WarehouseConnection) -> dict[str, datetime | None]:
    """Return the time of each pipeline's newest row (None: an empty table).

    Raises:
        WarehouseError: when the warehouse cannot be read (e.g. not migrated).
    """
    with warehouse.managed_cursor() as cur:
        return _newest(cur)


def _newest(cur: Cursor) -> dict[str, datetime | None]:
    newest = {}
    for name, pipeline in ALL_PIPELINES.items():
        cur.execute(pipeline.table.newest_query)
        row = cur.fetchone()
        newest[name] = row[0] if row else None
    return newest


@dataclass(frozen=True)
class CreditUsage:
    """Credits spent today and this month (UTC) against the monthly budget."""

    today: int
    month: int
    budget: int

    @property
    def warning(self) -> str | None:
        """A warning once 80% of the budget is spent, else None."""
        if self.month >= self.budget:
            return f"the monthly credit budget ({self.budget}) is exhausted"
        if self.month >= 0.8 * self.budget:
            return (
                f"{self.month} of {self.budget} monthly credits spent "
                f"({100 * self.month // self.budget}%): the budget will run out soon"
            )
        return None


def credit_usage(warehouse: WarehouseConnection, budget: int) -> CreditUsage:
    """Sum the credits recorded by runs today and this calendar month (UTC)."""
    with warehouse.managed_cursor() as cur:
        cur.execute(
            "SELECT coalesce(sum(credits) FILTER (WHERE started_at >="
            "   date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'), 0),"
            " coalesce(sum(credits), 0) FROM coincap.etl_runs"
            " WHERE started_at >="
            "   date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
        )
        row = cur.fetchone()
    today, month = row if row else (0, 0)
    return CreditUsage(int(today), int(month), budget)
