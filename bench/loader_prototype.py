"""A proposed change to ``crypto_etl.loader.load``, kept here to measure it.

Not used by the product: ``load_bench.py --methods ...,prototype`` runs it
beside the current loader. Once ``loader.py`` adopts the change, delete this
file and the ``prototype`` method.

The change: each chunk is first COPYed straight into the keyed table inside
a savepoint. When that hits an existing key (a unique violation), the
savepoint is rolled back and the chunk, and every later chunk of the same
call, goes the current way (COPY into staging, then ``INSERT ... ON CONFLICT
DO NOTHING``). New rows therefore cost one COPY, which overlaps Python's
formatting with the server's inserting, instead of a COPY followed by a
speculative insert of every row. A call whose first key is already loaded (a
rerun) goes through staging at once, after one index probe; other overlaps
pay one failed COPY of one chunk per call.
"""

from __future__ import annotations

from itertools import islice
from typing import Any, Callable, Iterable

from psycopg2 import errors, sql

from crypto_etl.loader import DEFAULT_CHUNK_ROWS, Table, _LineReader, copy_lines
from crypto_etl.warehouse import Cursor


def load(
    cur: Cursor,
    table: Table,
    records: Iterable[Any],
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    on_chunk: Callable[[int, int], None] | None = None,
) -> int:
    """Same contract as ``crypto_etl.loader.load``; returns rows inserted."""
    stage = sql.Identifier(f"stage_{table.name}")
    cols = sql.SQL(", ").join(map(sql.Identifier, table.columns))
    direct = sql.SQL("COPY {table} ({cols}) FROM STDIN").format(
        table=table.qualified, cols=cols
    )
    inserted = 0
    it = iter(records)
    chunk = list(islice(it, chunk_rows))
    # A rerun starts with a key already loaded: skip the COPY that would fail.
    staged = bool(chunk) and _key_exists(cur, table, chunk[0])
    if staged:
        _create_stage(cur, table, stage, cols)
    while chunk:
        added = None if staged else _copy_if_all_new(cur, direct, table, chunk)
        if added is None:
            if not staged:
                _create_stage(cur, table, stage, cols)
                staged = True
            added = _merge(cur, table, stage, cols, chunk)
        inserted += added
        if on_chunk is not None:
            on_chunk(len(chunk), added)
        chunk = list(islice(it, chunk_rows))
    return inserted


def _key_exists(cur: Cursor, table: Table, record: Any) -> bool:
    """Tell whether the table already holds ``record``'s key (one index probe)."""
    key = sql.SQL(", ").join(map(sql.Identifier, table.key))
    cur.execute(
        sql.SQL(
            "SELECT EXISTS (SELECT FROM {table} WHERE ({key}) = ({values}))"
        ).format(
            table=table.qualified,
            key=key,
            values=sql.SQL(", ").join(sql.Placeholder() * len(table.key)),
        ),
        tuple(getattr(record, name) for name in table.key),
    )
    row = cur.fetchone()
    return bool(row and row[0])


def _copy_if_all_new(
    cur: Cursor, direct: sql.Composed, table: Table, chunk: list[Any]
) -> int | None:
    """COPY ``chunk`` into the table; None (and nothing loaded) if a key exists."""
    cur.execute("SAVEPOINT crypto_etl_load")
    try:
        cur.copy_expert(direct, _LineReader(copy_lines(chunk, table.columns)))
    except errors.UniqueViolation:
        cur.execute("ROLLBACK TO SAVEPOINT crypto_etl_load")
        return None
    cur.execute("RELEASE SAVEPOINT crypto_etl_load")
    return len(chunk)


def _create_stage(
    cur: Cursor, table: Table, stage: sql.Identifier, cols: sql.Composable
) -> None:
    cur.execute(
        sql.SQL(
            "CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DROP"
            " AS SELECT {cols} FROM {table} WITH NO DATA"
        ).format(stage=stage, cols=cols, table=table.qualified)
    )


def _merge(
    cur: Cursor,
    table: Table,
    stage: sql.Identifier,
    cols: sql.Composable,
    chunk: list[Any],
) -> int:
    """The current path: COPY into staging, insert what is new, empty staging."""
    cur.copy_expert(
        sql.SQL("COPY {stage} ({cols}) FROM STDIN").format(stage=stage, cols=cols),
        _LineReader(copy_lines(chunk, table.columns)),
    )
    cur.execute(
        sql.SQL(
            "INSERT INTO {table} ({cols}) SELECT {cols} FROM {stage}"
            " ON CONFLICT ({key}) DO NOTHING"
        ).format(
            table=table.qualified,
            cols=cols,
            stage=stage,
            key=sql.SQL(", ").join(map(sql.Identifier, table.key)),
        )
    )
    added = int(cur.rowcount)
    cur.execute(sql.SQL("TRUNCATE {stage}").format(stage=stage))
    return added
