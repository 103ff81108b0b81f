"""The project's exceptions: one root, each class a one-line message.

Every error the library raises on purpose is a ``CryptoEtlError``; the CLI turns
it into one line on stderr and the class's ``exit_code``. Transient errors are
the ones worth retrying (the client, ``connect()``, the image's entrypoint and
the scheduler do); fatal and terminal ones need a person to change something,
and their message says what. A warehouse error nobody sorted is terminal:
retrying only what is known to pass keeps a broken setting from looking like
a database that is still starting.

    CryptoEtlError
    ├── ConfigError ................. a setting is missing or invalid        (3)
    ├── ApiError .................... CoinCap could not give us the data     (4)
    │   ├── TransientApiError ....... worth retrying (retries ran out)      (5)
    │   │   ├── ApiTimeoutError ..... connect or read timeout
    │   │   ├── ApiConnectionError .. refused, reset or truncated response
    │   │   ├── RateLimitedError .... HTTP 429
    │   │   └── ServerError ......... HTTP 5xx
    │   └── FatalApiError ........... retrying will not help
    │       ├── AuthError ........... HTTP 401: check COINCAP_API_KEY
    │       ├── CreditsExhausted .... HTTP 403 or a credit-429: out of credits  (14)
    │       ├── BadRequestError ..... HTTP 400
    │       ├── NotFoundError ....... HTTP 404
    │       ├── ApiRetiredError ..... the v2 "we are deprecating" body
    │       └── BadPayloadError ..... not JSON, or not the {data, timestamp} envelope
    ├── WarehouseError .............. PostgreSQL failed; unsorted is terminal  (11)
    │   ├── TransientWarehouseError . worth retrying (retries ran out)      (6)
    │   │   ├── WarehouseUnavailable  cannot connect, timed out, connection lost
    │   │   │   └── WarehouseNotReady  starting up / shutting down (57P01-57P03)
    │   │   ├── WarehouseConflict ... serialization failure 40001, deadlock 40P01
    │   │   └── WarehouseTimeout .... statement 57014 or lock 55P03 timed out
    │   ├── TerminalWarehouseError .. retrying will not help               (11)
    │   │   ├── WarehouseLoginRefused  28P01/28000, unknown role: WAREHOUSE_USER
    │   │   ├── UnknownDatabase ..... 3D000: check WAREHOUSE_DB
    │   │   ├── WarehousePermissionDenied  42501: the role lacks a privilege
    │   │   ├── WarehouseDiskFull ... 53100: the server's volume is full
    │   │   └── WarehouseSqlError ... any other SQL error (42xxx, data, dbt model)
    │   └── MigrationError .......... a migration failed or was edited     (12)
    ├── LocalWarehouseError ......... `crypto-etl warehouse`, initdb, pg_ctl (13)
    ├── DataQualityError ............ a data test failed with error severity (7)
    │   └── StaleDataError .......... a table is past its freshness limit
    ├── MetabaseError ............... Metabase provisioning failed           (9)
    │   ├── MetabaseUnavailable ..... not reachable at METABASE_URL
    │   └── MetabaseAuthError ....... admin email/password refused
    ├── PartialFailure .............. some pipelines of a batch failed      (8)
    ├── RunSkipped .................. another run of the pipeline holds the lock (10)
    └── BudgetExceeded .............. the run would pass the monthly credit budget (15)
"""

from __future__ import annotations

import signal


class CryptoEtlError(Exception):
    """Root of every error this project raises on purpose."""

    exit_code = 1


class ConfigError(CryptoEtlError):
    """A required setting is missing or has an invalid value."""

    exit_code = 3


class ApiError(CryptoEtlError):
    """The CoinCap API did not give us usable data."""

    exit_code = 4


class TransientApiError(ApiError):
    """CoinCap kept failing in a way that may pass; the retries ran out."""

    exit_code = 5


class ApiTimeoutError(TransientApiError):
    """CoinCap did not answer within the timeout."""


class ApiConnectionError(TransientApiError):
    """The connection to CoinCap failed or the response was cut short."""


class RateLimitedError(TransientApiError):
    """CoinCap answered 429 Too Many Requests."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ServerError(TransientApiError):
    """CoinCap answered with a 5xx status."""


class FatalApiError(ApiError):
    """A failure that retrying cannot fix."""


class AuthError(FatalApiError):
    """CoinCap refused the API key (HTTP 401)."""


class CreditsExhausted(FatalApiError):
    """CoinCap says the key's credits are used up (HTTP 403, or a 429 about credits).

    Never retried: every retry would spend what is left.
    """

    exit_code = 14


class BadRequestError(FatalApiError):
    """CoinCap rejected the request's parameters (HTTP 400)."""


class NotFoundError(FatalApiError):
    """CoinCap does not know the requested id (HTTP 404)."""


class ApiRetiredError(FatalApiError):
    """The URL points at the retired CoinCap v2 API."""


class BadPayloadError(FatalApiError):
    """The response is not the JSON envelope the contract promises."""


class WarehouseError(CryptoEtlError):
    """PostgreSQL refused or failed an operation (terminal unless sorted)."""

    exit_code = 11


class TransientWarehouseError(WarehouseError):
    """A warehouse failure that may pass: worth running again later."""

    exit_code = 6


class WarehouseUnavailable(TransientWarehouseError):
    """The warehouse cannot be reached, or the connection to it was lost."""


class WarehouseNotReady(WarehouseUnavailable):
    """The server is starting up or shutting down (SQLSTATE 57P01-57P03)."""


class WarehouseConflict(TransientWarehouseError):
    """A serialization failure or deadlock rolled the transaction back."""


class WarehouseTimeout(TransientWarehouseError):
    """The server cancelled a statement: it ran past the statement timeout or
    waited past the lock timeout for another session's lock (57014, 55P03)."""


class TerminalWarehouseError(WarehouseError):
    """A warehouse failure that retrying cannot fix."""

    exit_code = 11


class WarehouseLoginRefused(TerminalWarehouseError):
    """The server refused the user or password (28P01/28000, unknown role)."""


class UnknownDatabase(TerminalWarehouseError):
    """The server has no database of the configured name (3D000)."""


class WarehousePermissionDenied(TerminalWarehouseError):
    """The role lacks a privilege the statement needs (42501)."""


class WarehouseDiskFull(TerminalWarehouseError):
    """The server could not write: its disk is full (53100)."""


class WarehouseSqlError(TerminalWarehouseError):
    """A statement failed (syntax, missing table, bad data, a dbt model...)."""


class MigrationError(WarehouseError):
    """A schema migration failed, or an applied one was edited."""

    exit_code = 12


class LocalWarehouseError(CryptoEtlError):
    """The embedded PostgreSQL cluster could not be created, started or stopped."""

    exit_code = 13


class DataQualityError(CryptoEtlError):
    """At least one data-quality test failed with error severity."""

    exit_code = 7


class StaleDataError(DataQualityError):
    """A table's newest data is older than its freshness limit (status --check)."""


class MetabaseError(CryptoEtlError):
    """Metabase refused or failed a provisioning step."""

    exit_code = 9


class MetabaseUnavailable(MetabaseError):
    """Metabase cannot be reached at METABASE_URL."""


class MetabaseAuthError(MetabaseError):
    """Metabase refused the admin's email and password (HTTP 401/403)."""


class PartialFailure(CryptoEtlError):
    """Some pipelines of a batch failed; the others loaded."""

    exit_code = 8


class RunSkipped(CryptoEtlError):
    """Another run of the same pipeline is in progress, so this one did nothing."""

    exit_code = 10


class BudgetExceeded(CryptoEtlError):
    """The run would pass COINCAP_MONTHLY_CREDITS, so it made no API call."""

    exit_code = 15


class Interrupted(KeyboardInterrupt):
    """The process was told to stop by a signal (SIGINT or SIGTERM).

    A ``KeyboardInterrupt``, so every ``finally`` and rollback runs as for
    Ctrl-C; not a ``CryptoEtlError``, since nothing went wrong. The CLI
    exits 128 + the signal number (130, 143).
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.signal_name = signal.Signals(signum).name
        super().__init__(f"interrupted by {self.signal_name}")


# Exit codes that belong to no exception class: the process's own outcomes.
PROCESS_EXIT_CODES = {
    0: "Success",
    1: "Unexpected error (a bug): rerun with -v and report it",
    2: "Bad command-line arguments",
    130: "Interrupted (Ctrl-C, SIGINT)",
    143: "Stopped by SIGTERM (docker stop, a service manager)",
}


def exit_codes() -> dict[int, str]:
    """Return every exit code the command can end with, and what it means.

    The classes are the single declaration: each class that sets its own
    ``exit_code`` contributes its docstring's first line, so the README's
    table and ``crypto-etl --help`` are checked against (and printed from)
    this one source.
    """
    meanings: dict[int, list[str]] = {}
    pending: list[type[CryptoEtlError]] = list(CryptoEtlError.__subclasses__())
    while pending:
        cls = pending.pop(0)
        pending.extend(cls.__subclasses__())
        if "exit_code" in vars(cls) and cls.__doc__:
            line = cls.__doc__.strip().splitlines()[0].rstrip(".")
            meanings.setdefault(cls.exit_code, []).append(line)
    table = {code: "; ".join(lines) for code, lines in meanings.items()}
    return dict(sorted({**table, **PROCESS_EXIT_CODES}.items()))
