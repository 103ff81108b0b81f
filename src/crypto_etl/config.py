"""Settings, read in one place.

Each value comes from the process environment first and from the project's
``env`` file second, so a value exported in the shell always wins over the
file's local-development defaults. A required value that is missing (or set
to an empty string) raises ``ConfigError`` naming the variable and every
place that was looked in. The reader login and Metabase are optional groups,
all or nothing: part of a group set without the rest is a ``ConfigError``
naming what is missing; a command that needs a group that is not set at all
says so (``Settings.require_reader``/``require_metabase``). Secrets are
wrapped in ``Secret`` so that no repr, log line or error message can show
them by accident.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

from crypto_etl.errors import ConfigError

DEFAULT_BASE_URL = "https://rest.coincap.io/v3"
# The embedded warehouse's ports (`env`, `crypto-etl demo`): project-specific,
# away from 5432/5433, which a system PostgreSQL usually has.
DEFAULT_WAREHOUSE_PORT = 54329
DEMO_WAREHOUSE_PORT = 54330
DEFAULT_ENV_FILE = Path("env")
DEFAULT_CRONTAB = Path("scheduler/crontab")
# The free plan as most often reported; set your own plan's figure.
DEFAULT_MONTHLY_CREDITS = 4000
MAX_PAGE_ROWS = 2000
ENV_FILE_VARIABLE = "CRYPTO_ETL_ENV_FILE"
KEY_SIGNUP_URL = "https://pro.coincap.io/dashboard"
# Calls a backfill or `run all` keeps in flight (measured: bench/throughput_bench.py).
DEFAULT_MAX_IN_FLIGHT = 8
MAX_IN_FLIGHT_CEILING = 64


class Secret:
    """A string that never shows itself in ``str``/``repr``; ``reveal()`` returns it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the secret value, for the one place that must send it."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class WarehouseSettings:
    """How to reach the PostgreSQL warehouse."""

    host: str
    port: int
    dbname: str
    user: str
    password: Secret = field(repr=False)
    # The server cancels a statement that waits this long for a table lock
    # (another session's LOCK, a long ALTER) or runs this long: a scheduled
    # run fails with a clear error instead of hanging until the next one.
    lock_timeout_s: float = 60.0
    statement_timeout_s: float = 1800.0

    def describe(self) -> str:
        """Return ``user@host:port/db``, safe to print (no password)."""
        return f"{self.user}@{self.host}:{self.port}/{self.dbname}"


@dataclass(frozen=True)
class ReaderSettings:
    """The dashboards' read-only login (``WAREHOUSE_READER_USER``/``_PASSWORD``)."""

    user: str
    password: Secret = field(repr=False)

    def login(self, warehouse: WarehouseSettings) -> WarehouseSettings:
        """Return ``warehouse`` with this role's login instead of the ETL user's."""
        return replace(warehouse, user=self.user, password=self.password)


@dataclass(frozen=True)
class MetabaseSettings:
    """Where Metabase is, its admin, and where Metabase itself sees the warehouse.

    ``warehouse_host``/``warehouse_port`` are the warehouse as the Metabase
    container reaches it (the compose service), not as this process does.
    """

    url: str
    admin_email: str
    admin_password: Secret = field(repr=False)
    warehouse_host: str = "warehouse"
    warehouse_port: int = 5432
    # A Metabase API key (METABASE_API_KEY, Metabase v0.49+): provisioning
    # then calls the API with it instead of logging the admin in.
    api_key: Secret | None = field(default=None, repr=False)


# The optional groups: (required names, names with a default). Setting any of
# a group's names without every required one is a ConfigError.
READER_GROUP = (("WAREHOUSE_READER_USER", "WAREHOUSE_READER_PASSWORD"), ())
METABASE_GROUP = (
    ("METABASE_URL", "METABASE_ADMIN_EMAIL", "METABASE_ADMIN_PASSWORD"),
    ("METABASE_WAREHOUSE_HOST", "METABASE_WAREHOUSE_PORT", "METABASE_API_KEY"),
)


@dataclass(frozen=True)
class FetchScope:
    """What the snapshot pipelines ask CoinCap for (exchanges and rates: all).

    ``assets_top``: the N highest-ranked assets, None for every asset.
    ``markets_filter``: the ``/markets`` filter (``exchangeId`` or ``baseId``)
    applied once per id of ``markets_ids``; None for the full market list.
    ``markets_limit``: rows per request (one page), None for every page.
    The defaults fetch everything; ``load_settings`` applies the cheap ones.
    """

    assets_top: int | None = None
    markets_filter: str | None = None
    markets_ids: tuple[str, ...] = ()
    markets_limit: int | None = None


# COINCAP_MARKETS prefixes and the /markets filter each one sends.
MARKET_FILTERS = {"exchange": "exchangeId", "asset": "baseId"}
DEFAULT_SCOPE = FetchScope(
    assets_top=100,
    markets_filter="baseId",
    markets_ids=("bitcoin", "ethereum"),
    markets_limit=50,
)


@dataclass(frozen=True)
class MonitorSettings:
    """Where alerts and dead-man's pings go; every value is optional.

    ``alert_urls`` are Apprise URLs (``ALERT_URLS``); ``healthcheck_url`` is
    pinged by every scheduled command (``HEALTHCHECK_URL``);
    ``pipeline_pings`` maps a lower-case name (a pipeline or ``transform``)
    to its own URL (``HEALTHCHECK_URL_<NAME>``). All are secrets: a webhook
    URL usually carries its token.
    """

    alert_urls: tuple[Secret, ...] = field(default=(), repr=False)
    healthcheck_url: Secret | None = field(default=None, repr=False)
    pipeline_pings: tuple[tuple[str, Secret], ...] = field(default=(), repr=False)
    ping_timeout: float = 5.0

    def secrets(self) -> list[Secret]:
        """Every URL, for the log filter that redacts secrets."""
        found = [*self.alert_urls, *(url for _, url in self.pipeline_pings)]
        if self.healthcheck_url is not None:
            found.append(self.healthcheck_url)
        return found


@dataclass(frozen=True)
class Settings:
    """Every setting the project reads; build it with ``load_settings``.

    ``reader`` and ``metabase`` are None when none of their variables is set;
    commands that need them ask with ``require_reader``/``require_metabase``.
    """

    warehouse: WarehouseSettings
    coincap_base_url: str
    coincap_api_key: Secret | None = field(repr=False)
    reader: ReaderSettings | None = None
    metabase: MetabaseSettings | None = None
    calls_per_minute: float = 600.0
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    monthly_credits: int = DEFAULT_MONTHLY_CREDITS
    scope: FetchScope = DEFAULT_SCOPE
    crontab: Path = DEFAULT_CRONTAB
    # CoinCap requests: (connect, read) seconds, and tries per call.
    coincap_timeout: tuple[float, float] = (5.0, 30.0)
    coincap_max_attempts: int = 5
    # Host names the dashboard answers for (None: loopback names, and only
    # when it is bound to loopback).
    dashboard_allowed_hosts: tuple[str, ...] | None = None
    sources: tuple[str, ...] = ()
    monitor: MonitorSettings = field(default_factory=MonitorSettings)

    def require_reader(self, needed_by: str) -> ReaderSettings:
        """Return the read-only login, for ``needed_by`` (e.g. "the dashboard").

        Raises:
            ConfigError: naming WAREHOUSE_READER_USER and WAREHOUSE_READER_PASSWORD
                and where they were looked for, when the group is not set.
        """
        if self.reader is None:
            raise ConfigError(
                f"{needed_by} reads through the read-only role and "
                f"{_needs(READER_GROUP[0], self.sources)}; `crypto-etl migrate` "
                "creates that role"
            )
        return self.reader

    def require_metabase(self) -> MetabaseSettings:
        """Return Metabase's settings, for the commands that talk to Metabase.

        Raises:
            ConfigError: naming the METABASE_* variables and where they were
                looked for, when the group is not set.
        """
        if self.metabase is None:
            raise ConfigError(
                f"provisioning Metabase {_needs(METABASE_GROUP[0], self.sources)}"
            )
        return self.metabase

    def api_key(self) -> Secret:
        """Return the CoinCap API key.

        Raises:
            ConfigError: when ``COINCAP_API_KEY`` is not set.
        """
        if self.coincap_api_key is None:
            raise ConfigError(
                "COINCAP_API_KEY is not set (looked in "
                f"{_places(self.sources)}). Get a key at {KEY_SIGNUP_URL} "
                "and export COINCAP_API_KEY=<your key>, or try everything offline"
                " without one: `make demo`"
            )
        return self.coincap_api_key

    def shown(self) -> list[tuple[str, str]]:
        """Return each setting's variable and value, safe to print.

        Secrets show as ``(set)`` or ``(not set)``, never their value.
        """

        def secret(value: Secret | None) -> str:
            return "(not set)" if value is None else "(set)"

        w = self.warehouse
        return [
            ("WAREHOUSE_HOST", w.host),
            ("WAREHOUSE_PORT", str(w.port)),
            ("WAREHOUSE_DB", w.dbname),
            ("WAREHOUSE_USER", w.user),
            ("WAREHOUSE_PASSWORD", secret(w.password)),
            ("WAREHOUSE_READER_USER", self.reader.user if self.reader else "(not set)"),
            (
                "WAREHOUSE_READER_PASSWORD",
                secret(self.reader.password if self.reader else None),
            ),
            ("COINCAP_API_KEY", secret(self.coincap_api_key)),
            ("COINCAP_BASE_URL", self.coincap_base_url),
            ("COINCAP_CALLS_PER_MINUTE", f"{self.calls_per_minute:g}"),
            ("COINCAP_MONTHLY_CREDITS", str(self.monthly_credits)),
            ("METABASE_URL", self.metabase.url if self.metabase else "(not set)"),
        ]

    def secrets(self) -> list[str]:
        """Return every secret value, for the log filter that redacts them."""
        found = [self.warehouse.password, self.coincap_api_key]
        if self.reader is not None:
            found.append(self.reader.password)
        if self.metabase is not None:
            found += [self.metabase.admin_password, self.metabase.api_key]
        found.extend(self.monitor.secrets())
        # An absent owner login (owner_login=False) is an empty Secret.
        return [s.reveal() for s in found if s is not None and s.reveal()]


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a ``KEY=VALUE`` file (``#`` comments, optional quotes, ``export``).

    Returns an empty dict when the file does not exist.

    Raises:
        ConfigError: on a line that is not ``KEY=VALUE``, a file that is not
            UTF-8 text, or one that cannot be read.
    """
    if not path.is_file():
        return {}
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        # Where, not what: the bytes may be part of a secret.
        at = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}:{at}: not UTF-8 text; save the file as UTF-8"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        key, sep, value = line.partition("=")
        if not sep or not key.strip().isidentifier():
            # The line itself is not shown: it may hold a secret.
            raise ConfigError(f"{path}:{number}: expected KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def load_settings(
    environ: Mapping[str, str] | None = None,
    env_file: Path | None = None,
    *,
    owner_login: bool = True,
) -> Settings:
    """Build the settings from the environment, then the env file.

    Args:
        environ: the variables to read (default: ``os.environ``).
        env_file: the defaults file (default: ``$CRYPTO_ETL_ENV_FILE`` or ``./env``).
        owner_login: False for a command that never logs in as the ETL's
            user (the dashboard reads through the reader role), so
            ``WAREHOUSE_USER``/``WAREHOUSE_PASSWORD`` may be absent; the
            warehouse settings then carry an empty login.

    Raises:
        ConfigError: naming every required variable that is missing or invalid,
            or the missing part of a reader or Metabase group set in part.
    """
    env = os.environ if environ is None else environ
    path = env_file or Path(env.get(ENV_FILE_VARIABLE) or DEFAULT_ENV_FILE)
    file_values = read_env_file(path)
    sources = ("the environment", str(path.resolve()))

    def get(name: str) -> str | None:
        for layer in (env, file_values):
            value = layer.get(name)
            if value is not None and value.strip() != "":
                return value.strip()
        return None

    required = ["WAREHOUSE_HOST", "WAREHOUSE_PORT", "WAREHOUSE_DB"]
    if owner_login:
        required += ["WAREHOUSE_USER", "WAREHOUSE_PASSWORD"]
    missing = [name for name in required if get(name) is None]
    if missing:
        raise ConfigError(f"{_missing(missing)} (looked in {_places(sources)})")
    port = _port("WAREHOUSE_PORT", get("WAREHOUSE_PORT") or "")
    base_url = (get("COINCAP_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
    if not base_url.startswith(("http://", "https://")):
        raise ConfigError(f"COINCAP_BASE_URL must be an http(s) URL, got {base_url!r}")

    def number(name: str, default: float) -> float:
        text = get(name)
        if text is None:
            return default
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(f"{name} must be a positive number, got {text!r}")
        return value

    def secret(name: str) -> Secret | None:
        value = get(name)
        return None if value is None else Secret(value)

    in_flight = get("COINCAP_MAX_IN_FLIGHT") or str(DEFAULT_MAX_IN_FLIGHT)
    if not in_flight.isdigit() or not 0 < int(in_flight) <= MAX_IN_FLIGHT_CEILING:
        raise ConfigError(
            f"COINCAP_MAX_IN_FLIGHT must be a whole number from 1 to "
            f"{MAX_IN_FLIGHT_CEILING}, got {in_flight!r}"
        )

    return Settings(
        warehouse=WarehouseSettings(
            host=get("WAREHOUSE_HOST") or "",
            port=port,
            dbname=get("WAREHOUSE_DB") or "",
            user=get("WAREHOUSE_USER") or "",
            password=Secret(get("WAREHOUSE_PASSWORD") or ""),
            lock_timeout_s=number("WAREHOUSE_LOCK_TIMEOUT", 60.0),
            statement_timeout_s=number("WAREHOUSE_STATEMENT_TIMEOUT", 1800.0),
        ),
        coincap_base_url=base_url,
        coincap_api_key=secret("COINCAP_API_KEY"),
        reader=_reader(_group(get, READER_GROUP, "the read-only login", sources)),
        metabase=_metabase(_group(get, METABASE_GROUP, "Metabase", sources)),
        calls_per_minute=number("COINCAP_CALLS_PER_MINUTE", 600.0),
        max_in_flight=int(in_flight),
        monthly_credits=int(number("COINCAP_MONTHLY_CREDITS", DEFAULT_MONTHLY_CREDITS)),
        scope=_scope(get),
        crontab=Path(get("CRYPTO_ETL_CRONTAB") or DEFAULT_CRONTAB),
        coincap_timeout=(
            number("COINCAP_CONNECT_TIMEOUT", 5.0),
            number("COINCAP_READ_TIMEOUT", 30.0),
        ),
        coincap_max_attempts=max(1, int(number("COINCAP_MAX_ATTEMPTS", 5))),
        dashboard_allowed_hosts=_names(get("DASHBOARD_ALLOWED_HOSTS")),
        sources=sources,
        monitor=_monitor(get, [*env, *file_values]),
    )


HEALTHCHECK_PREFIX = "HEALTHCHECK_URL_"


def _monitor(get: Callable[[str], str | None], names: Iterable[str]) -> MonitorSettings:
    """Read ALERT_URLS, HEALTHCHECK_URL and every HEALTHCHECK_URL_<NAME>.

    Raises:
        ConfigError: a ping URL that is not http(s). The value is never
            shown: it may carry a token.
    """

    def ping_url(name: str) -> Secret | None:
        value = get(name)
        if value is not None and not value.startswith(("http://", "https://")):
            raise ConfigError(f"{name} must be an http(s) URL")
        return None if value is None else Secret(value)

    alerts = (get("ALERT_URLS") or "").replace(",", " ").split()
    pings = {}
    for name in sorted({n for n in names if n.startswith(HEALTHCHECK_PREFIX)}):
        url = ping_url(name)
        if url is not None:
            pings[name.removeprefix(HEALTHCHECK_PREFIX).lower()] = url
    return MonitorSettings(
        alert_urls=tuple(Secret(url) for url in alerts),
        healthcheck_url=ping_url("HEALTHCHECK_URL"),
        pipeline_pings=tuple(pings.items()),
    )


def _names(text: str | None) -> tuple[str, ...] | None:
    """A comma-separated list (None when not set)."""
    if text is None:
        return None
    return tuple(name.strip() for name in text.split(",") if name.strip())


def _reader(found: dict[str, str] | None) -> ReaderSettings | None:
    if found is None:
        return None
    return ReaderSettings(
        user=found["WAREHOUSE_READER_USER"],
        password=Secret(found["WAREHOUSE_READER_PASSWORD"]),
    )


def _metabase(found: dict[str, str] | None) -> MetabaseSettings | None:
    if found is None:
        return None
    url = found["METABASE_URL"]
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"METABASE_URL must be an http(s) URL, got {url!r}")
    return MetabaseSettings(
        url=url.rstrip("/"),
        admin_email=found["METABASE_ADMIN_EMAIL"],
        admin_password=Secret(found["METABASE_ADMIN_PASSWORD"]),
        warehouse_host=found.get("METABASE_WAREHOUSE_HOST") or "warehouse",
        warehouse_port=_port(
            "METABASE_WAREHOUSE_PORT", found.get("METABASE_WAREHOUSE_PORT") or "5432"
        ),
        api_key=(
            Secret(found["METABASE_API_KEY"]) if "METABASE_API_KEY" in found else None
        ),
    )


def _group(
    get: Callable[[str], str | None],
    group: tuple[tuple[str, ...], tuple[str, ...]],
    label: str,
    sources: tuple[str, ...],
) -> dict[str, str] | None:
    """Read an all-or-nothing group: ``(required names, names with a default)``.

    Returns None when none of the group's names is set, else each set name's
    value (every required one among them).

    Raises:
        ConfigError: some of the group is set but not every required name,
            naming the missing ones, the ones set, and where it looked.
    """
    required, optional = group
    values = {name: get(name) for name in (*required, *optional)}
    found = {name: value for name, value in values.items() if value is not None}
    if not found:
        return None
    missing = [name for name in required if name not in found]
    if missing:
        raise ConfigError(
            f"{_missing(missing)}: {label} needs {_and(required)} together, and "
            f"only {_and(list(found))} {'is' if len(found) == 1 else 'are'} set "
            f"(looked in {_places(sources)})"
        )
    return found


def _port(name: str, text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ConfigError(f"{name} must be a port number, got {text!r}")
    return int(text)


def _missing(names: Sequence[str]) -> str:
    return f"missing setting{'s' if len(names) > 1 else ''} {', '.join(names)}"


def _needs(names: Sequence[str], sources: tuple[str, ...]) -> str:
    return f"needs {_and(names)} set (looked in {_places(sources)})"


def _and(names: Sequence[str]) -> str:
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]


def _scope(get: Callable[[str], str | None]) -> FetchScope:
    """Read COINCAP_ASSETS_TOP, COINCAP_MARKETS and COINCAP_MARKETS_LIMIT."""
    top = _count(get, "COINCAP_ASSETS_TOP", DEFAULT_SCOPE.assets_top, "all")
    limit = _count(get, "COINCAP_MARKETS_LIMIT", DEFAULT_SCOPE.markets_limit, "none")
    markets = get("COINCAP_MARKETS")
    if markets is None:
        return replace(DEFAULT_SCOPE, assets_top=top, markets_limit=limit)
    if markets == "all":
        return FetchScope(top, None, (), limit)
    kind, _, listed = markets.partition(":")
    ids = tuple(dict.fromkeys(i.strip() for i in listed.split(",") if i.strip()))
    if kind not in MARKET_FILTERS or not ids:
        raise ConfigError(
            "COINCAP_MARKETS must be all, exchange:ID[,ID...] or asset:ID[,ID...], "
            f"got {markets!r}"
        )
    return FetchScope(top, MARKET_FILTERS[kind], ids, limit)


def _count(
    get: Callable[[str], str | None], name: str, default: int | None, every: str
) -> int | None:
    """A row count from 1 to 2000, or ``every`` (None: no limit)."""
    text = get(name)
    if text is None:
        return default
    if text.lower() == every:
        return None
    if not text.isdigit() or not 1 <= int(text) <= MAX_PAGE_ROWS:
        raise ConfigError(
            f"{name} must be a number from 1 to {MAX_PAGE_ROWS} or {every!r}, "
            f"got {text!r}"
        )
    return int(text)


def _places(sources: tuple[str, ...]) -> str:
    return " and ".join(sources) if sources else "the environment"
