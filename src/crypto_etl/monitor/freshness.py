"""How fresh each table is against its limit in the catalog (pure).

The limits are those of the schedule in force
(``pipelines.freshness.limits_for_settings``, the same ones dbt's source
freshness gets). A table past ``error_after`` is *stale*: ``/healthz`` answers 503,
``crypto-etl status --check`` fails and an alert goes out. A table that has
never had a row is ``no_data``: a new install is not an outage, and a
pipeline that never loads is announced by its failed runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Mapping

from crypto_etl.pipelines.catalog import ALL_PIPELINES, Freshness


@dataclass(frozen=True)
class TableFreshness:
    """One table's newest data and what that means against its limits."""

    pipeline: str
    table: str
    newest: datetime | None
    age: timedelta | None
    limits: Freshness

    @property
    def state(self) -> str:
        """``ok``, ``warn`` (past warn_after), ``stale`` (past error_after) or
        ``no_data``."""
        if self.age is None:
            return "no_data"
        if self.age > self.limits.error_after:
            return "stale"
        return "warn" if self.age > self.limits.warn_after else "ok"

    def describe(self) -> str:
        """E.g. ``coincap.assets: newest row 1.5 h old (limit 1 h)``."""
        if self.age is None:
            return f"{self.table}: no data yet"
        return (
            f"{self.table}: newest row {human_age(self.age)} old "
            f"(limit {human_age(self.limits.error_after)})"
        )


def assess(
    newest: Mapping[str, datetime | None],
    now: datetime,
    limits: Mapping[str, Freshness],
) -> list[TableFreshness]:
    """Judge every catalog table's newest data at ``now``.

    Args:
        newest: the newest data time of each pipeline's table, by pipeline
            name (``warehouse.status.newest_data``); a missing name means none.
        now: the current aware UTC time.
        limits: each pipeline's limits (missing: the catalog's).
    """
    result = []
    for name, pipeline in ALL_PIPELINES.items():
        when = newest.get(name)
        table = pipeline.table
        result.append(
            TableFreshness(
                pipeline=name,
                table=f"{table.schema}.{table.name}",
                newest=when,
                age=None if when is None else max(now - when, timedelta(0)),
                limits=limits.get(name, pipeline.freshness),
            )
        )
    return result


def stale(tables: list[TableFreshness]) -> list[TableFreshness]:
    """The tables past their error limit."""
    return [t for t in tables if t.state == "stale"]


def human_age(age: timedelta) -> str:
    """A duration in the largest unit that fits: ``40 min``, ``1.5 h``, ``3 d``."""
    minutes = age.total_seconds() / 60
    if minutes < 120:
        return f"{minutes:.0f} min"
    if minutes < 2880:
        return f"{minutes / 60:.1f} h".replace(".0 h", " h")
    return f"{minutes / 1440:.0f} d"
