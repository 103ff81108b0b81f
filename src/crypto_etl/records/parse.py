"""Pure parsing: raw CoinCap JSON in, typed records out.

The record types (``records.rows``) declare where each field's value comes
from and its kind; one generic parser here serves every type, so the rules
are the same everywhere: numbers become ``Decimal`` exactly as written,
unix-ms times become timezone-aware UTC datetimes, ``null`` stays ``None``,
unknown keys are ignored, and a row that cannot be parsed is returned as a
``Rejected`` with the reason instead of stopping the batch. Nothing here
reads a clock, the environment, or does I/O.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any, Callable, Iterable, Mapping

from crypto_etl.records.rows import Parsed, R, Rejected

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class RowError(ValueError):
    """A row cannot be parsed; the message is the reason stored with the reject."""


def get_utc_from_unix_time(
    unix_ts: int | str | None, second: int = 1000
) -> datetime | None:
    """Convert a unix timestamp (milliseconds by default) to an aware UTC datetime.

    Integer arithmetic keeps every millisecond exact, and the result is the
    same instant whatever the machine's time zone. ``None`` and ``0`` (what
    CoinCap sends for "never reported") give ``None``.

    Raises:
        RowError: for a value that is not a non-negative whole number.
    """
    if unix_ts is None:
        return None
    units = _whole(unix_ts, "timestamp")
    if units < 0:
        raise RowError(f"negative timestamp {unix_ts!r}")
    if units == 0:
        return None
    whole, rest = divmod(units, second)
    return EPOCH + timedelta(seconds=whole, microseconds=rest * 1_000_000 // second)


# Whole numbers are stored as bigint; NUMERIC holds up to 131072 digits
# before the point and 16383 after. A value beyond them is one bad row, not
# a failed load.
_BIGINT = 2**63
_NUMERIC_MAX_ADJUSTED = 131071
_NUMERIC_MIN_EXPONENT = -16383


def _whole(value: Any, what: str) -> int:
    if isinstance(value, bool):
        raise RowError(f"{what} is a boolean, expected a whole number")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
        number = int(value.strip())
    elif (
        isinstance(value, Decimal)
        and value.is_finite()
        and value == value.to_integral_value()
        and value.adjusted() < 19
    ):
        number = int(value)
    else:
        raise RowError(f"{what} {value!r} is not a whole number")
    if not -_BIGINT <= number < _BIGINT:
        raise RowError(f"{what} {value!r} is out of range")
    return number


def _decimal(value: Any, what: str) -> Decimal:
    if isinstance(value, bool):
        raise RowError(f"{what} is a boolean, expected a number")
    if isinstance(value, (int, Decimal)):
        number = Decimal(value)
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise RowError(f"{what} {value!r} is not a number") from None
    else:
        raise RowError(f"{what} {value!r} is not a number")
    if not number.is_finite():
        raise RowError(f"{what} {value!r} is not a finite number")
    if number and (
        number.adjusted() > _NUMERIC_MAX_ADJUSTED
        or number.as_tuple().exponent < _NUMERIC_MIN_EXPONENT  # type: ignore[operator]
    ):
        raise RowError(f"{what} {value!r} is out of range")
    return number


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise RowError(f"{what} {value!r} is not a string")
    if "\x00" in value:
        # PostgreSQL text cannot hold NUL; one such row must not fail the batch.
        raise RowError(f"{what} contains a NUL character")
    return value


def _bool(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    if value in (0, 1, "0", "1", "true", "false"):
        return value in (1, "1", "true")
    raise RowError(f"{what} {value!r} is not a boolean")


def _unix_ms(value: Any, what: str) -> int:
    number = _whole(value, what)
    if number < 0:
        raise RowError(f"{what} {value!r} is negative")
    return number


def _utc(value: Any, what: str) -> datetime | None:
    return get_utc_from_unix_time(_unix_ms(value, what))


PARSERS: dict[str, Callable[[Any, str], Any]] = {
    "text": _text,
    "int": _whole,
    "decimal": _decimal,
    "bool": _bool,
    "unix_ms": _unix_ms,
    "utc": _utc,
}


@cache
def _plan(
    record_type: type[Any],
) -> list[tuple[bool, str, Callable[[Any, str], Any], bool]]:
    # Read the field declarations once per type, not once per row.
    plan = []
    for f in dataclasses.fields(record_type):
        meta = f.metadata
        from_ctx = "context" in meta
        where = meta["context"] if from_ctx else meta["key"]
        plan.append((from_ctx, where, PARSERS[meta["kind"]], meta["required"]))
    return plan


def parse_row(
    record_type: type[R], raw: Any, ctx: Mapping[str, Any] | None = None
) -> R:
    """Parse one raw row into ``record_type``.

    Raises:
        RowError: naming the first field that is missing or malformed.
    """
    if not isinstance(raw, dict):
        raise RowError(f"row is a {type(raw).__name__}, not an object")
    values: list[Any] = []
    plan = _plan(record_type)  # type: ignore[arg-type]
    for from_ctx, where, parser, required in plan:
        value = (ctx or {})[where] if from_ctx else raw.get(where)
        if value is None:
            if required:
                raise RowError(f"missing {where}")
            values.append(None)
        else:
            values.append(parser(value, where))
    return record_type(*values)


def parse_rows(
    record_type: type[R], rows: Iterable[Any], ctx: Mapping[str, Any] | None = None
) -> Parsed[R]:
    """Parse every row; rows that fail become ``Rejected`` with their reason."""
    records: list[R] = []
    rejects: list[Rejected] = []
    for raw in rows:
        try:
            records.append(parse_row(record_type, raw, ctx))
        except RowError as exc:
            rejects.append(Rejected(raw=raw, reason=str(exc)))
    return Parsed(records, rejects)
