"""Retention: ``crypto-etl prune`` deletes raw rows older than the window.

The window is whole UTC days: ``--keep 90d`` keeps today and the 89 days
before it (``retention_cutoff``). For each table of the catalog's
``RETENTION``, a row goes only when it is older than the cutoff AND the
marts already hold what it contributes (``Retention.held``); a table whose
marts were never built loses nothing. Old rows therefore never take a
dashboard's history with them.

How, per table, so that no lock is held for long:

1. a monthly partition wholly older than the cutoff whose rows are all held
   is dropped whole: one catalog change, in a transaction that waits at
   most ``LOCK_TIMEOUT`` for the parent's lock (else the partition is left
   to step 2) and that holds the pipeline's advisory lock, so no load of
   that table runs between the check and the drop;
2. what is left older than the cutoff (the month the cutoff falls in, and
   unpartitioned tables) is deleted in batches of ``batch_rows`` by primary
   key, one short transaction per batch;
3. the coming months' partitions are created ahead of the loads.

A run is one ``tracked_run`` (pipeline ``prune``): its ``etl_runs`` row
counts the rows deleted. It calls no API: 0 credits. A second prune with
the same cutoff finds nothing to do.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Iterable

import psycopg2.errors
from psycopg2 import sql

from crypto_etl.pipelines.catalog import Retention
from crypto_etl.records.rows import CallStats
from crypto_etl.warehouse.connection import Cursor, WarehouseConnection, lock_key
from crypto_etl.warehouse.partitions import (
    Partition,
    add_months,
    ensure_partitions,
    list_partitions,
    month_start,
)
from crypto_etl.warehouse.runlog import tracked_run

log = logging.getLogger(__name__)

PIPELINE = "prune"
DEFAULT_BATCH_ROWS = 10_000
MONTHS_AHEAD = 2
LOCK_TIMEOUT = "5s"


def retention_cutoff(now: datetime, keep_days: int) -> datetime:
    """The oldest instant kept: midnight UTC, ``keep_days - 1`` days before today.

    Raises:
        ValueError: ``keep_days`` is below 1 or ``now`` is naive.
    """
    if keep_days < 1:
        raise ValueError("keep at least 1 day")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    today = now.astimezone(timezone.utc).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    return today - timedelta(days=keep_days - 1)


@dataclass
class TablePrune:
    """What prune did (or, dry, would do) to one table."""

    table: str
    keeps_latest: bool = False
    dropped: list[str] = field(default_factory=list)
    rows_deleted: int = 0
    rows_kept_unheld: int = 0
    skipped: str | None = None

    def summary(self, dry_run: bool) -> str:
        """One line for the user."""
        if self.skipped:
            return f"{self.table}: nothing pruned ({self.skipped})"
        verb = "would delete" if dry_run else "deleted"
        line = f"{self.table}: {verb} {self.rows_deleted} rows"
        if self.dropped:
            line += (
                f" ({len(self.dropped)} whole partitions: {', '.join(self.dropped)})"
            )
        if self.rows_kept_unheld:
            why = "the latest of their key, or " if self.keeps_latest else ""
            line += (
                f"; kept {self.rows_kept_unheld} older rows ({why}not in the marts"
                " yet: `crypto-etl transform` builds them)"
            )
        return line


@dataclass
class PruneReport:
    """The outcome of one prune: the cutoff and each table's figures."""

    cutoff: datetime
    dry_run: bool
    tables: list[TablePrune] = field(default_factory=list)
    partitions_created: int = 0

    @property
    def rows_deleted(self) -> int:
        """Rows deleted (or that would be) over every table."""
        return sum(t.rows_deleted for t in self.tables)

    def summary(self) -> str:
        """What the CLI prints: the cutoff, then one line per table."""
        head = f"prune: rows before {self.cutoff:%Y-%m-%d %H:%M} UTC"
        head += " (dry run: nothing changed)" if self.dry_run else ""
        lines = [head, *(t.summary(self.dry_run) for t in self.tables)]
        if self.partitions_created:
            lines.append(f"created {self.partitions_created} partitions ahead")
        return "\n".join(lines)


def prune(
    warehouse: WarehouseConnection,
    retentions: Iterable[Retention],
    *,
    keep_days: int,
    now: datetime,
    dry_run: bool = False,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> PruneReport:
    """Delete rows older than the window from each table (see the module doc).

    Args:
        warehouse: the ETL owner's connection.
        retentions: the tables to prune (from ``catalog.RETENTION``).
        keep_days: the window in UTC days, today included (``retention_cutoff``).
        now: the current time (aware); also which months are created ahead.
        dry_run: count what would go; change nothing, store no run.
        batch_rows: rows deleted per transaction.

    Returns:
        The report; in a real run its figures are also in the run's row.

    Raises:
        RunSkipped: another prune is running (a ``skipped`` row is stored).
        WarehouseError: the warehouse failed (a ``failed`` row is stored);
            batches already committed stay deleted, all of them old rows.
    """
    cutoff = retention_cutoff(now, keep_days)
    report = PruneReport(cutoff=cutoff, dry_run=dry_run)
    if dry_run:
        for retention in retentions:
            report.tables.append(_plan_table(warehouse, retention, cutoff))
        return report
    with tracked_run(warehouse, PIPELINE, CallStats(), atomic=False) as tracker:
        for retention in retentions:
            done = _prune_table(warehouse, retention, cutoff, batch_rows)
            report.tables.append(done)
            tracker.run.rows_deleted += done.rows_deleted
            report.partitions_created += _create_ahead(warehouse, retention, now)
        with warehouse.managed_cursor() as cur:
            tracker.succeed(cur)
    for table in report.tables:
        log.info("prune: %s", table.summary(dry_run=False))
    return report


def _not_built(marts: list[str]) -> str:
    return f"{', '.join(marts)} not built yet: run `crypto-etl transform`"


def _qualified(retention: Retention) -> sql.Composed:
    return retention.pipeline.table.qualified


def _missing_marts(cur: Cursor, retention: Retention) -> list[str]:
    missing = []
    for mart in retention.marts:
        cur.execute("SELECT to_regclass(%s)", (mart,))
        row = cur.fetchone()
        if row is None or row[0] is None:
            missing.append(mart)
    return missing


def _deletable(retention: Retention) -> sql.Composed:
    """``WHERE`` condition for the rows (alias raw) that may go."""
    condition = sql.SQL("raw.{column} < %(cutoff)s AND ({held})").format(
        column=sql.Identifier(retention.column), held=sql.SQL(retention.held)
    )
    if not retention.keep_latest:
        return condition
    key = retention.pipeline.table.key
    same = [sql.SQL("newer.{0} = raw.{0}").format(sql.Identifier(c)) for c in key[:-1]]
    newer = sql.SQL("newer.{0} > raw.{0}").format(sql.Identifier(key[-1]))
    return sql.SQL("{} AND EXISTS (SELECT FROM {} AS newer WHERE {})").format(
        condition, _qualified(retention), sql.SQL(" AND ").join([*same, newer])
    )


def _old_partitions(
    cur: Cursor, retention: Retention, cutoff: datetime
) -> list[Partition]:
    if retention.pipeline.table.partition_column is None:
        return []
    return [
        p for p in list_partitions(cur, retention.pipeline.table) if p.end <= cutoff
    ]


def _partition_counts(
    cur: Cursor, retention: Retention, partition: Partition, cutoff: datetime
) -> tuple[int, int]:
    """(rows, rows that must stay) of one partition, in one scan."""
    table = retention.pipeline.table
    source = sql.Identifier(table.schema, partition.name)
    cur.execute(
        sql.SQL(
            "SELECT count(*),"
            " count(*) FILTER (WHERE NOT coalesce({deletable}, false))"
            " FROM {source} AS raw"
        ).format(deletable=_deletable(retention), source=source),
        {"cutoff": cutoff},
    )
    row = cur.fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _drop_partition(
    warehouse: WarehouseConnection,
    retention: Retention,
    partition: Partition,
    cutoff: datetime,
) -> int | None:
    """Drop ``partition`` if all its rows may go; return its rows, else None."""
    table = retention.pipeline.table
    with warehouse.managed_cursor() as cur:
        cur.execute(
            "SELECT pg_try_advisory_xact_lock(%s)",
            (lock_key(retention.pipeline.name),),
        )
        locked = cur.fetchone()
        if not (locked and locked[0]):
            log.info(
                "prune: %s loading; %s left to batches", table.name, partition.name
            )
            return None
        rows, staying = _partition_counts(cur, retention, partition, cutoff)
        if staying:
            return None
        cur.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        cur.execute("SAVEPOINT crypto_etl_drop")
        try:
            cur.execute(
                sql.SQL("DROP TABLE {}").format(
                    sql.Identifier(table.schema, partition.name)
                )
            )
        except psycopg2.errors.LockNotAvailable:
            # Readers kept the parent busy: the batches delete these rows.
            cur.execute("ROLLBACK TO SAVEPOINT crypto_etl_drop")
            log.warning(
                "prune: %s busy; %s left to batches", table.name, partition.name
            )
            return None
    return rows


def _delete_batches(
    warehouse: WarehouseConnection,
    retention: Retention,
    cutoff: datetime,
    batch_rows: int,
) -> int:
    table = retention.pipeline.table
    key = sql.SQL(", ").join(map(sql.Identifier, table.key))
    statement = sql.SQL(
        "DELETE FROM {table} WHERE ({key}) IN (SELECT {raw_key} FROM {table} AS raw"
        " WHERE {deletable} LIMIT %(limit)s)"
    ).format(
        table=table.qualified,
        key=key,
        raw_key=sql.SQL(", ").join(
            sql.SQL("raw.{}").format(sql.Identifier(c)) for c in table.key
        ),
        deletable=_deletable(retention),
    )
    deleted = 0
    while True:
        with warehouse.managed_cursor() as cur:
            cur.execute(statement, {"cutoff": cutoff, "limit": batch_rows})
            batch = int(cur.rowcount)
        deleted += batch
        if batch < batch_rows:
            return deleted


def _count_older(cur: Cursor, retention: Retention, cutoff: datetime) -> int:
    cur.execute(
        sql.SQL("SELECT count(*) FROM {} WHERE {} < %s").format(
            _qualified(retention), sql.Identifier(retention.column)
        ),
        (cutoff,),
    )
    row = cur.fetchone()
    return int(row[0]) if row else 0


def _prune_table(
    warehouse: WarehouseConnection,
    retention: Retention,
    cutoff: datetime,
    batch_rows: int,
) -> TablePrune:
    done = TablePrune(retention.pipeline.table.name, retention.keep_latest)
    with warehouse.managed_cursor() as cur:
        missing = _missing_marts(cur, retention)
        partitions = [] if missing else _old_partitions(cur, retention, cutoff)
    if missing:
        done.skipped = _not_built(missing)
        log.warning("prune: %s: %s", done.table, done.skipped)
        return done
    for partition in partitions:
        rows = _drop_partition(warehouse, retention, partition, cutoff)
        if rows is not None:
            done.dropped.append(partition.name)
            done.rows_deleted += rows
    done.rows_deleted += _delete_batches(warehouse, retention, cutoff, batch_rows)
    with warehouse.managed_cursor() as cur:
        done.rows_kept_unheld = _count_older(cur, retention, cutoff)
    return done


def _plan_table(
    warehouse: WarehouseConnection, retention: Retention, cutoff: datetime
) -> TablePrune:
    plan = TablePrune(retention.pipeline.table.name, retention.keep_latest)
    with warehouse.managed_cursor() as cur:
        missing = _missing_marts(cur, retention)
        if missing:
            plan.skipped = _not_built(missing)
            return plan
        for partition in _old_partitions(cur, retention, cutoff):
            _, staying = _partition_counts(cur, retention, partition, cutoff)
            if not staying:
                plan.dropped.append(partition.name)
        table = retention.pipeline.table
        cur.execute(
            sql.SQL("SELECT count(*) FROM {} AS raw WHERE {}").format(
                table.qualified, _deletable(retention)
            ),
            {"cutoff": cutoff},
        )
        row = cur.fetchone()
        plan.rows_deleted = int(row[0]) if row else 0
        plan.rows_kept_unheld = _count_older(cur, retention, cutoff) - plan.rows_deleted
    return plan


def _create_ahead(
    warehouse: WarehouseConnection, retention: Retention, now: datetime
) -> int:
    table = retention.pipeline.table
    if table.partition_column is None:
        return 0
    this_month = month_start(now)
    months = [add_months(this_month, n) for n in range(MONTHS_AHEAD + 1)]
    with warehouse.managed_cursor() as cur:
        return ensure_partitions(cur, table, months)
