"""How stale each table may get, from the schedule in force.

A table is stale when its newest row is older than its pipeline's runs
should allow. A fixed limit cannot serve every plan: the free plan's
schedule loads most pipelines once a day, a paid one every few minutes. So
each pipeline's limit follows the longest gap between its runs in the
crontab in force: a warning once a run was missed (1.5 gaps), an error once
two were (2 gaps plus up to an hour of slack), never tighter than the
catalog's limits, which are those of runs every few minutes. ``crypto-etl status``, the
dashboard's ``/healthz``, the stale-data alerts and dbt's source freshness
(``crypto-etl transform`` passes the limits as dbt vars) all use these.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from crypto_etl.config import Settings
from crypto_etl.errors import ConfigError
from crypto_etl.pipelines.catalog import ALL_PIPELINES, BACKFILL, Freshness
from crypto_etl.pipelines.schedule import (
    BACKFILL_COMMAND,
    cron_fields,
    read_crontab,
    schedule_in_force,
    snapshots_run_by,
)
from crypto_etl.warehouse.connection import WarehouseConnection

WEEK_MINUTES = 7 * 1440
# A Monday, so a week from it covers each weekday once.
_MONDAY = datetime(2025, 1, 6, tzinfo=timezone.utc)


def limits_for(gap: timedelta, floor: Freshness) -> Freshness:
    """The limits for a pipeline whose runs are at most ``gap`` apart."""
    return Freshness(
        warn_after=max(floor.warn_after, gap * 3 / 2),
        error_after=max(floor.error_after, gap * 2 + min(gap, timedelta(hours=1))),
    )


def run_gaps(crontab: str) -> dict[str, timedelta]:
    """The longest gap between runs of each pipeline the crontab runs.

    Pipelines it never runs are left out.

    Raises:
        ValueError: a job line whose cron fields this parser does not read.
    """
    fires: dict[str, set[int]] = {}
    for cron, command in read_crontab(crontab):
        names = _pipelines_of(command)
        if names:
            minutes = _week_minutes(cron)
            for name in names:
                fires.setdefault(name, set()).update(minutes)
    return {name: _longest_gap(m) for name, m in fires.items() if m}


def limits_in_force(crontab: str | None) -> dict[str, Freshness]:
    """Every pipeline's freshness limits under ``crontab`` (None: the catalog's).

    Raises:
        ValueError: a job line whose cron fields this parser does not read.
    """
    gaps = run_gaps(crontab) if crontab is not None else {}
    return {
        name: limits_for(gaps[name], p.freshness) if name in gaps else p.freshness
        for name, p in ALL_PIPELINES.items()
    }


def limits_for_settings(
    settings: Settings, warehouse: WarehouseConnection | None = None
) -> dict[str, Freshness]:
    """Every pipeline's limits under the schedule in force for ``settings``.

    Falls back to the catalog's limits when no schedule fits the budget.

    Raises:
        ConfigError: the crontab in force cannot be read.
    """
    try:
        text, source = schedule_in_force(settings, warehouse)
    except ConfigError:
        return limits_in_force(None)
    try:
        return limits_in_force(text)
    except ValueError as exc:
        raise ConfigError(f"cannot read {source}: {exc} (CRYPTO_ETL_CRONTAB)") from exc


def dbt_vars(limits: dict[str, Freshness]) -> dict[str, int]:
    """The limits as the dbt vars ``transform/models/sources.yml`` reads (minutes)."""
    found = {}
    for name, limit in limits.items():
        table = ALL_PIPELINES[name].table.name
        found[f"{table}_warn_minutes"] = _minutes(limit.warn_after)
        found[f"{table}_error_minutes"] = _minutes(limit.error_after)
    return found


def _minutes(span: timedelta) -> int:
    return -(-span // timedelta(minutes=1))


def _pipelines_of(command: str) -> set[str]:
    names = set(snapshots_run_by(command))
    if re.search(BACKFILL_COMMAND, command):
        names.add(BACKFILL.name)
    return names


def _week_minutes(cron: str) -> set[int]:
    """The minutes of a week (from Monday 00:00 UTC) at which ``cron`` fires."""
    _, (minute, hour, _, _, days) = cron_fields(cron)
    # Day-of-month and month are left out: over a week they would only make
    # a gap look shorter or longer than the schedule's own rhythm.
    found: set[int] = set()
    for day in range(7):
        weekday = (_MONDAY + timedelta(days=day)).isoweekday() % 7
        if weekday in days:
            found.update(day * 1440 + h * 60 + m for h in hour for m in minute)
    return found


def _longest_gap(minutes: set[int]) -> timedelta:
    ordered = sorted(minutes)
    gaps = [b - a for a, b in zip(ordered, ordered[1:])]
    gaps.append(ordered[0] + WEEK_MINUTES - ordered[-1])  # round the week
    return timedelta(minutes=max(gaps))
