"""The built-in dashboard's data: chart queries through the read-only role.

Every value a request carries reaches the SQL in one of two ways only: the
time range is looked up in a fixed table (``RANGES``) and turned into a
timestamp here, and text filters are bound parameters (``render_sql``).
Connections log in as the reader role, start read-only, have a statement
timeout, and are kept in a small pool so a page's parallel chart requests do
not each pay for a login.
"""

from __future__ import annotations

import csv
import io
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Callable, Iterator, Mapping

import psycopg2
import psycopg2.errors
import psycopg2.extensions

from crypto_etl.config import WarehouseSettings
from crypto_etl.dashboard.definition import Chart, Dashboard, Filter, render_sql
from crypto_etl.errors import WarehouseError, WarehouseUnavailable
from crypto_etl.warehouse.connection import connect, first_line

# The only time ranges a request may ask for; None means no lower bound.
RANGES: dict[str, timedelta | None] = {
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "all": None,
}
MAX_TEXT_PARAMETER = 200
_DATE_OIDS = frozenset({1082, 1114, 1184})  # date, timestamp, timestamptz
_NUMBER_OIDS = frozenset({20, 21, 23, 700, 701, 1700})  # ints, floats, numeric
TRANSFORM_HINT = "run `crypto-etl transform` to build the dashboard's tables"


@dataclass(frozen=True)
class QueryResult:
    """Columns, their kinds (``number``, ``time`` or ``text``) and the rows."""

    columns: list[str]
    kinds: list[str]
    rows: list[tuple[Any, ...]]

    def json_rows(self) -> list[list[Any]]:
        """Return the rows with every value JSON-ready and exact.

        Decimals become their fixed-point text (no digit lost), dates and
        times ISO 8601 text, intervals their PostgreSQL-style text.
        """
        return [[json_value(v) for v in row] for row in self.rows]

    def csv_text(self) -> str:
        """Return the result as CSV text with a header row (NULL as empty)."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(self.columns)
        for row in self.rows:
            writer.writerow(["" if v is None else json_value(v) for v in row])
        return out.getvalue()


def json_value(value: Any) -> Any:
    """Return ``value`` as a JSON-native value without losing precision."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    return value


def missing_relation(exc: BaseException) -> bool:
    """Tell whether a ``WarehouseError`` means the marts are not built yet."""
    return isinstance(
        exc.__cause__,
        (psycopg2.errors.UndefinedTable, psycopg2.errors.InvalidSchemaName),
    )


class ReaderPool:
    """A bounded pool of read-only connections shared by the server's threads.

    Args:
        settings: where to connect, as the reader role.
        size: most connections open at once; callers beyond it wait.
        statement_timeout_ms: the server cancels any query running longer.
        connect_timeout: seconds to wait for the server to answer a login.
    """

    def __init__(
        self,
        settings: WarehouseSettings,
        *,
        size: int = 6,
        statement_timeout_ms: int = 5000,
        connect_timeout: int = 3,
    ) -> None:
        self.settings = settings
        self._statement_timeout_ms = statement_timeout_ms
        self._connect_timeout = connect_timeout
        self._idle: list[psycopg2.extensions.connection] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(size)

    def query(self, sql: str, params: Mapping[str, Any]) -> QueryResult:
        """Run one read-only query and return all of its rows.

        A pooled connection the server has dropped (e.g. after a restart)
        is replaced once before giving up.

        Raises:
            WarehouseUnavailable: the server cannot be reached.
            WarehouseError: the query failed (missing table, timeout, ...).
        """
        with self._slot():
            conn, reused = self._checkout()
            try:
                return self._run(conn, sql, params)
            except _ConnectionLost as lost:
                if not reused:
                    raise lost.error from lost.cause
            # A pooled connection was dead, so the others likely are too
            # (the server restarted): drop them all and try once more.
            self.close()
            try:
                return self._run(self._connect(), sql, params)
            except _ConnectionLost as lost:
                raise lost.error from lost.cause

    def _run(
        self, conn: psycopg2.extensions.connection, sql: str, params: Mapping[str, Any]
    ) -> QueryResult:
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                description = cur.description or ()
                rows = cur.fetchall() if description else []
        except psycopg2.Error as exc:
            if conn.closed or isinstance(exc, psycopg2.InterfaceError):
                conn.close()
                error = WarehouseUnavailable(
                    f"lost the connection to {self.settings.describe()}: "
                    f"{first_line(exc)}"
                )
                raise _ConnectionLost(error, exc) from exc
            self._checkin(conn)
            raise WarehouseError(_explain(exc)) from exc
        except BaseException:
            # Anything else (a bug, Ctrl-C): the session's state is unknown.
            conn.close()
            raise
        self._checkin(conn)
        return QueryResult(
            columns=[d.name for d in description],
            kinds=[_kind(d.type_code) for d in description],
            rows=rows,
        )

    def close(self) -> None:
        """Close every idle connection."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    @contextmanager
    def _slot(self) -> Iterator[None]:
        if not self._slots.acquire(timeout=30):
            raise WarehouseUnavailable("every warehouse connection is busy; try again")
        try:
            yield
        finally:
            self._slots.release()

    def _checkout(self) -> tuple[psycopg2.extensions.connection, bool]:
        with self._lock:
            while self._idle:
                conn = self._idle.pop()
                if not conn.closed:
                    return conn, True
        return self._connect(), False

    def _checkin(self, conn: psycopg2.extensions.connection) -> None:
        # Only a session outside any transaction goes back: a query that
        # opened one (or failed inside one) must not leak it to the next.
        if conn.info.transaction_status != psycopg2.extensions.TRANSACTION_STATUS_IDLE:
            conn.close()
            return
        with self._lock:
            self._idle.append(conn)

    def _connect(self) -> psycopg2.extensions.connection:
        s = self.settings
        # Read-only from the first statement on, whatever the role's defaults;
        # UTC so every timestamp leaves the server the same way.
        options = (
            "-c default_transaction_read_only=on"
            f" -c statement_timeout={self._statement_timeout_ms}"
            " -c TimeZone=UTC"
        )
        conn = connect(
            s,
            application_name="crypto-etl-dashboard",
            connect_timeout=self._connect_timeout,
            options=options,
            hint=", that `crypto-etl migrate` created the reader role,",
        )
        # Each query is its own read-only transaction: nothing stays open
        # between requests.
        conn.set_session(readonly=True, autocommit=True)
        return conn


class ChartQueries:
    """Validates a request's filters and runs the definition's SQL for it.

    Args:
        definition: the shared dashboard definition.
        pool: where the queries run.
        clock: returns the current aware UTC time (ranges end there).
    """

    def __init__(
        self,
        definition: Dashboard,
        pool: ReaderPool,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.definition = definition
        self.pool = pool
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        self._filters = {f.name: f for f in definition.filters}

    def chart(self, chart_id: str) -> Chart:
        """Return the chart with this id.

        Raises:
            ValueError: for an unknown chart id.
        """
        try:
            return self.definition.chart(chart_id)
        except KeyError:
            raise ValueError(f"unknown chart {chart_id!r}") from None

    def filter(self, name: str) -> Filter:
        """Return the filter with this name.

        Raises:
            ValueError: for an unknown filter.
        """
        try:
            return self._filters[name]
        except KeyError:
            raise ValueError(f"unknown filter {name!r}") from None

    def selections(self, query: Mapping[str, str]) -> dict[str, str | None]:
        """Check a request's filter values and fill in the defaults.

        Returns:
            Every filter's chosen value (None: no value, the filter is off).

        Raises:
            ValueError: an unknown filter, a range not among the choices, or
                a text value that is too long.
        """
        unknown = sorted(set(query) - set(self._filters))
        if unknown:
            raise ValueError(f"unknown parameter {unknown[0]!r}")
        chosen: dict[str, str | None] = {}
        for f in self.definition.filters:
            value = query.get(f.name, "").strip() or f.default
            if f.type == "range" and value is not None and value not in f.choices:
                raise ValueError(
                    f"{f.name} must be one of {', '.join(f.choices)}, got {value!r}"
                )
            if value is not None and len(value) > MAX_TEXT_PARAMETER:
                raise ValueError(
                    f"{f.name} is longer than {MAX_TEXT_PARAMETER} characters"
                )
            chosen[f.name] = value
        return chosen

    def bind_values(self, selections: Mapping[str, str | None]) -> dict[str, Any]:
        """Turn chosen filter values into the values bound to the SQL.

        A range becomes the timestamp it starts at (None for ``all``).

        Raises:
            ValueError: a range the server does not know.
        """
        values: dict[str, Any] = {}
        for name, value in selections.items():
            if self._filters[name].type == "range" and value is not None:
                if value not in RANGES:
                    raise ValueError(f"{name}: unsupported range {value!r}")
                span = RANGES[value]
                values[name] = None if span is None else self._clock() - span
            else:
                values[name] = value
        return values

    def chart_data(
        self, chart_id: str, query: Mapping[str, str]
    ) -> tuple[QueryResult, dict[str, str | None]]:
        """Run a chart's query for a request.

        Returns:
            The result and the filter values the chart used.

        Raises:
            ValueError: unknown chart, bad filter value, or a required value
                (e.g. the asset) missing.
            WarehouseUnavailable, WarehouseError: see ``ReaderPool.query``.
        """
        chart = self.chart(chart_id)
        selections = self.selections(query)
        used = {name: selections[name] for name in chart.parameters}
        sql, bound = render_sql(chart.sql, self.bind_values(used))
        return self.pool.query(sql, bound), used

    def filter_options(self, name: str) -> list[dict[str, Any]]:
        """Return a filter's choices as ``{"value", "label"}`` dicts.

        Raises:
            ValueError: an unknown filter.
            WarehouseUnavailable, WarehouseError: see ``ReaderPool.query``.
        """
        f = self.filter(name)
        if f.options_sql is None:
            return [{"value": c, "label": c} for c in f.choices]
        result = self.pool.query(f.options_sql, {})
        value_at, label_at = result.columns.index("value"), result.columns.index(
            "label"
        )
        return [
            {"value": json_value(row[value_at]), "label": json_value(row[label_at])}
            for row in result.rows
        ]


class _ConnectionLost(Exception):
    """Internal: a query failed because its connection died."""

    def __init__(self, error: WarehouseUnavailable, cause: psycopg2.Error) -> None:
        super().__init__(str(error))
        self.error = error
        self.cause = cause


def _kind(type_code: int) -> str:
    if type_code in _DATE_OIDS:
        return "time"
    if type_code in _NUMBER_OIDS:
        return "number"
    return "text"


def _explain(exc: psycopg2.Error) -> str:
    if isinstance(
        exc, (psycopg2.errors.UndefinedTable, psycopg2.errors.InvalidSchemaName)
    ):
        return f"{first_line(exc)}: {TRANSFORM_HINT}"
    if isinstance(exc, psycopg2.errors.InsufficientPrivilege):
        return (
            f"{first_line(exc)}: the reader role may not read it; run "
            "`crypto-etl migrate` and `crypto-etl transform`, which grant it"
        )
    if isinstance(exc, psycopg2.errors.QueryCanceled):
        return f"the query took too long and was cancelled: {first_line(exc)}"
    return f"warehouse error: {first_line(exc)}"
