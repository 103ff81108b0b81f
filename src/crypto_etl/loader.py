"""One loader for every table: COPY into staging, then insert-on-conflict.

Records stream through a small file-like adapter into ``COPY ... FROM
STDIN`` on a temporary staging table, chunk by chunk, and each chunk is moved
into the keyed table with ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``.
That keeps COPY's speed, makes a rerun add nothing, and lets the caller's
transaction decide what is atomic. Memory stays flat: only one chunk's text
is ever buffered.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cached_property
from itertools import islice
from operator import attrgetter
from typing import Any, Callable, Iterable, Iterator

from psycopg2 import sql

from crypto_etl.transform import Rejected, column_names
from crypto_etl.warehouse import Cursor

DEFAULT_CHUNK_ROWS = 100_000
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


@dataclass(frozen=True)
class Table:
    """A keyed warehouse table fed by one record type (fields = columns)."""

    schema: str
    name: str
    record_type: type[Any]
    key: tuple[str, ...]

    @cached_property
    def columns(self) -> list[str]:
        """The record's field names, which are the table's loaded columns."""
        return column_names(self.record_type)

    @property
    def qualified(self) -> sql.Composed:
        """``schema.name`` as a safely quoted identifier."""
        return sql.SQL(".").join(
            [sql.Identifier(self.schema), sql.Identifier(self.name)]
        )


def _format_value(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, str):
        return value.translate(_COPY_ESCAPES)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (int, Decimal)):
        return str(value)
    raise TypeError(f"cannot COPY a {type(value).__name__}")


def copy_lines(records: Iterable[Any], columns: list[str]) -> Iterator[str]:
    """Yield one COPY text-format line per record (tab-separated, ``\\N`` for NULL)."""
    get = attrgetter(*columns)
    if len(columns) == 1:
        for record in records:
            yield _format_value(get(record)) + "\n"
        return
    for record in records:
        yield "\t".join(map(_format_value, get(record))) + "\n"


class _LineReader(io.RawIOBase):
    """Expose an iterator of text lines as the binary file COPY reads from."""

    def __init__(self, lines: Iterator[str]) -> None:
        self._lines = lines
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        want = size if size and size > 0 else 1 << 20
        parts = [self._buffer]
        have = len(self._buffer)
        for line in self._lines:
            data = line.encode("utf-8")
            parts.append(data)
            have += len(data)
            if have >= want:
                break
        blob = b"".join(parts)
        self._buffer = blob[want:]
        return blob[:want]


def load(
    cur: Cursor,
    table: Table,
    records: Iterable[Any],
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    on_chunk: Callable[[int, int], None] | None = None,
) -> int:
    """Load records into ``table``; rows whose key already exists are skipped.

    Runs inside the caller's transaction, so a failure anywhere rolls the
    whole load back.

    Args:
        cur: a cursor from ``WarehouseConnection.managed_cursor()``.
        table: the target table.
        records: instances of ``table.record_type`` (any iterable, streamed).
        chunk_rows: rows per COPY-and-insert round.
        on_chunk: called with (rows copied, rows inserted) after each chunk.

    Returns:
        How many rows were inserted (new keys).
    """
    stage = sql.Identifier(f"stage_{table.name}")
    cols = sql.SQL(", ").join(map(sql.Identifier, table.columns))
    cur.execute(
        sql.SQL(
            "CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DROP"
            " AS SELECT {cols} FROM {table} WITH NO DATA"
        ).format(stage=stage, cols=cols, table=table.qualified)
    )
    copy = sql.SQL("COPY {stage} ({cols}) FROM STDIN").format(stage=stage, cols=cols)
    move = sql.SQL(
        "INSERT INTO {table} ({cols}) SELECT {cols} FROM {stage}"
        " ON CONFLICT ({key}) DO NOTHING"
    ).format(
        table=table.qualified,
        cols=cols,
        stage=stage,
        key=sql.SQL(", ").join(map(sql.Identifier, table.key)),
    )
    clear = sql.SQL("TRUNCATE {stage}").format(stage=stage)
    inserted = 0
    it = iter(records)
    while chunk := list(islice(it, chunk_rows)):
        cur.copy_expert(copy, _LineReader(copy_lines(chunk, table.columns)))
        cur.execute(move)
        inserted += cur.rowcount
        cur.execute(clear)
        if on_chunk is not None:
            on_chunk(len(chunk), cur.rowcount)
    return inserted


def raw_json(raw: Any) -> str:
    """Serialise a raw row for the rejects table (Decimals as their exact text)."""
    return json.dumps(raw, default=str, sort_keys=True, ensure_ascii=False)


def store_rejects(
    cur: Cursor, pipeline: str, run_id: int, rejects: list[Rejected]
) -> None:
    """Quarantine unparseable rows, once per distinct raw row and pipeline.

    A row seen again bumps ``times_seen``, ``last_seen_at`` and
    ``last_run_id`` instead of adding a duplicate.
    """
    for reject in rejects:
        text = raw_json(reject.raw)
        cur.execute(
            "INSERT INTO coincap.rejects"
            " (pipeline, raw_sha256, raw, reason, last_run_id)"
            " VALUES (%s, %s, %s, %s, %s)"
            " ON CONFLICT (pipeline, raw_sha256) DO UPDATE SET"
            " times_seen = coincap.rejects.times_seen + 1,"
            " last_seen_at = now(), reason = EXCLUDED.reason,"
            " last_run_id = EXCLUDED.last_run_id",
            (
                pipeline,
                hashlib.sha256(text.encode()).hexdigest(),
                text,
                reject.reason,
                run_id,
            ),
        )
