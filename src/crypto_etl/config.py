"""Settings, read in one place.

Each value comes from the process environment first and from the project's
``env`` file second, so a value exported in the shell always wins over the
file's local-development defaults. A required value that is missing (or set
to an empty string) raises ``ConfigError`` naming the variable and every
place that was looked in. Secrets are wrapped in ``Secret`` so that no repr,
log line or error message can show them by accident.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from crypto_etl.errors import ConfigError

DEFAULT_BASE_URL = "https://rest.coincap.io/v3"
DEFAULT_ENV_FILE = Path("env")
ENV_FILE_VARIABLE = "CRYPTO_ETL_ENV_FILE"
KEY_SIGNUP_URL = "https://pro.coincap.io/dashboard"


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

    def describe(self) -> str:
        """Return ``user@host:port/db``, safe to print (no password)."""
        return f"{self.user}@{self.host}:{self.port}/{self.dbname}"


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


@dataclass(frozen=True)
class Settings:
    """Every setting the project reads; build it with ``load_settings``."""

    warehouse: WarehouseSettings
    coincap_base_url: str
    coincap_api_key: Secret | None = field(repr=False)
    reader_user: str | None
    reader_password: Secret | None = field(repr=False)
    calls_per_minute: float = 600.0
    monthly_credits: int = 2500
    sources: tuple[str, ...] = ()
    metabase_url: str | None = None
    metabase_admin_email: str | None = None
    metabase_admin_password: Secret | None = field(default=None, repr=False)
    metabase_warehouse_host: str = "warehouse"
    metabase_warehouse_port: int = 5432

    def metabase(self) -> MetabaseSettings:
        """Return what provision-metabase needs.

        Raises:
            ConfigError: naming each METABASE_* variable that is not set.
        """
        url, email = self.metabase_url, self.metabase_admin_email
        password = self.metabase_admin_password
        if url is None or email is None or password is None:
            named = (
                ("METABASE_URL", url),
                ("METABASE_ADMIN_EMAIL", email),
                ("METABASE_ADMIN_PASSWORD", password),
            )
            missing = [n for n, v in named if v is None]
            raise ConfigError(
                f"missing setting{'s' if len(missing) > 1 else ''} "
                f"{', '.join(missing)} (looked in {_places(self.sources)})"
            )
        return MetabaseSettings(
            url,
            email,
            password,
            self.metabase_warehouse_host,
            self.metabase_warehouse_port,
        )

    def api_key(self) -> Secret:
        """Return the CoinCap API key.

        Raises:
            ConfigError: when ``COINCAP_API_KEY`` is not set.
        """
        if self.coincap_api_key is None:
            raise ConfigError(
                "COINCAP_API_KEY is not set (looked in "
                f"{_places(self.sources)}). Get a key at {KEY_SIGNUP_URL} "
                "and export COINCAP_API_KEY=<your key>"
            )
        return self.coincap_api_key

    def secrets(self) -> list[str]:
        """Return every secret value, for the log filter that redacts them."""
        found = [
            self.warehouse.password,
            self.coincap_api_key,
            self.reader_password,
            self.metabase_admin_password,
        ]
        return [s.reveal() for s in found if s is not None]


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a ``KEY=VALUE`` file (``#`` comments, optional quotes, ``export``).

    Returns an empty dict when the file does not exist.

    Raises:
        ConfigError: on a line that is not ``KEY=VALUE``.
    """
    if not path.is_file():
        return {}
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
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
    environ: Mapping[str, str] | None = None, env_file: Path | None = None
) -> Settings:
    """Build the settings from the environment, then the env file.

    Args:
        environ: the variables to read (default: ``os.environ``).
        env_file: the defaults file (default: ``$CRYPTO_ETL_ENV_FILE`` or ``./env``).

    Raises:
        ConfigError: naming every required variable that is missing or invalid.
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

    required = ["WAREHOUSE_HOST", "WAREHOUSE_PORT", "WAREHOUSE_DB", "WAREHOUSE_USER"]
    required.append("WAREHOUSE_PASSWORD")
    missing = [name for name in required if get(name) is None]
    if missing:
        raise ConfigError(
            f"missing setting{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)} (looked in {_places(sources)})"
        )
    port_text = get("WAREHOUSE_PORT") or ""
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"WAREHOUSE_PORT must be a port number, got {port_text!r}")
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

    metabase_url = get("METABASE_URL")
    if metabase_url is not None and not metabase_url.startswith(
        ("http://", "https://")
    ):
        raise ConfigError(f"METABASE_URL must be an http(s) URL, got {metabase_url!r}")
    mb_port = get("METABASE_WAREHOUSE_PORT") or "5432"
    if not mb_port.isdigit() or not 0 < int(mb_port) < 65536:
        raise ConfigError(
            f"METABASE_WAREHOUSE_PORT must be a port number, got {mb_port!r}"
        )

    return Settings(
        warehouse=WarehouseSettings(
            host=get("WAREHOUSE_HOST") or "",
            port=int(port_text),
            dbname=get("WAREHOUSE_DB") or "",
            user=get("WAREHOUSE_USER") or "",
            password=Secret(get("WAREHOUSE_PASSWORD") or ""),
        ),
        coincap_base_url=base_url,
        coincap_api_key=secret("COINCAP_API_KEY"),
        reader_user=get("WAREHOUSE_READER_USER"),
        reader_password=secret("WAREHOUSE_READER_PASSWORD"),
        calls_per_minute=number("COINCAP_CALLS_PER_MINUTE", 600.0),
        monthly_credits=int(number("COINCAP_MONTHLY_CREDITS", 2500)),
        sources=sources,
        metabase_url=None if metabase_url is None else metabase_url.rstrip("/"),
        metabase_admin_email=get("METABASE_ADMIN_EMAIL"),
        metabase_admin_password=secret("METABASE_ADMIN_PASSWORD"),
        metabase_warehouse_host=get("METABASE_WAREHOUSE_HOST") or "warehouse",
        metabase_warehouse_port=int(mb_port),
    )


def _places(sources: tuple[str, ...]) -> str:
    return " and ".join(sources) if sources else "the environment"
