"""Monthly range partitions of the raw tables that grow fastest.

A ``Table`` with a ``partition_column`` is partitioned by UTC month on it
(migration 0006, which also defines ``coincap.create_month_partitions``, the
one place that creates a partition). The loader makes sure the months it is
about to load exist; ``crypto-etl prune`` creates the coming months ahead of
time and drops months older than the retention window whole. Each table also
has a default partition (``<table>_pdefault``, empty unless rows were
inserted by hand into a month that had no partition); prune deletes its old
rows by batches like any other, and creating its month moves them there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Iterable

from crypto_etl.warehouse.connection import Cursor

if TYPE_CHECKING:  # the loader imports this module
    from crypto_etl.warehouse.loader import Table


@dataclass(frozen=True)
class Partition:
    """One month of a partitioned table: rows with ``start <= time < end``."""

    name: str
    start: datetime
    end: datetime


def month_start(when: datetime) -> datetime:
    """The first instant (UTC) of the month that holds ``when`` (aware)."""
    utc = when.astimezone(timezone.utc)
    return utc.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def add_months(start: datetime, months: int) -> datetime:
    """``start`` (a month start) moved by ``months`` calendar months."""
    index = start.year * 12 + start.month - 1 + months
    return start.replace(year=index // 12, month=index % 12 + 1)


def months_of(table: Table, records: Iterable[Any]) -> set[datetime]:
    """The month starts of ``records``' partition-column values."""
    assert table.partition_column is not None
    get = attrgetter(table.partition_column)
    return {month_start(value) for value in map(get, records) if value is not None}


def ensure_partitions(cur: Cursor, table: Table, months: Iterable[datetime]) -> int:
    """Create the missing monthly partitions of ``table`` for ``months``.

    Runs in the caller's transaction; a month that exists costs one catalog
    lookup. Returns how many partitions were created.
    """
    wanted = sorted(set(months))
    if not wanted:
        return 0
    cur.execute(
        "SELECT coincap.create_month_partitions(%s::regclass, %s::timestamptz[])",
        (f"{table.schema}.{table.name}", wanted),
    )
    row = cur.fetchone()
    return int(row[0]) if row else 0


def list_partitions(cur: Cursor, table: Table) -> list[Partition]:
    """Return ``table``'s partitions, oldest first, with their bounds."""
    cur.execute(
        "SELECT c.relname,"
        " (regexp_match(pg_get_expr(c.relpartbound, c.oid),"
        "   'FROM \\(''([^'']+)''\\) TO \\(''([^'']+)''\\)'))::text[]"
        " FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = %s::regclass",
        (f"{table.schema}.{table.name}",),
    )
    found = []
    for name, bounds in cur.fetchall():
        if bounds is None:
            continue  # the default partition: pruned by batches, never dropped
        start, end = (_timestamp(b) for b in bounds)
        found.append(Partition(name, start, end))
    return sorted(found, key=attrgetter("start"))


def _timestamp(text: str) -> datetime:
    # pg_get_expr writes timestamptz bounds in the session's zone, with offset.
    when = datetime.fromisoformat(text)
    if when.tzinfo is None:
        raise ValueError(f"partition bound without a time zone: {text!r}")
    return when.astimezone(timezone.utc)
