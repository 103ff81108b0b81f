"""The embedded local warehouse: a PostgreSQL cluster run from the system's binaries.

For users without Docker (``crypto-etl warehouse start|stop|status``) and for the
test suite, which starts a throwaway cluster in a temp dir on a free port.

The cluster listens on TCP only (no unix socket, so it never clashes with a
system cluster), authenticates with scram-sha-256, logs to
``<data_dir>/log/postgres.log`` and records the settings it was created with
(the password only as a salted hash) in ``<data_dir>/crypto_etl_warehouse.json``.

PostgreSQL refuses to run as root: when we are root, only ``initdb`` and
``pg_ctl`` run as the ``postgres`` system account (through ``runuser``), the
data directory is handed to that account, and every ancestor of it must be
traversable by it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import pwd
import secrets
import tempfile
import time
from contextlib import closing
from dataclasses import asdict, dataclass
from pathlib import Path

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import connection as PgConnection

from crypto_etl.config import DEFAULT_WAREHOUSE_PORT, WarehouseSettings
from crypto_etl.errors import LocalWarehouseError
from crypto_etl.local.pgtools import (
    _can_traverse,
    _check_traversable,
    _client_host,
    find_pg_bin,
    _give,
    _is_loopback,
    _is_postgres_process,
    _port_taken,
    _run,
    _service_account,
    _tool_command,
    _write_file,
)

_SETTINGS_FILE = "crypto_etl_warehouse.json"
_CONF_FILE = "crypto_etl.conf"
_READY_TIMEOUT_S = 30
_STOP_TIMEOUT_S = 60
# initdb fsyncs a few hundred files: generous for a slow disk.
_INITDB_TIMEOUT_S = 180
_PBKDF2_ITERATIONS = 200_000
_LOG_TAIL_BYTES = 4096


@dataclass(frozen=True)
class LocalWarehouseStatus:
    """Whether the cluster in ``data_dir`` runs, where it listens, and its pid."""

    running: bool
    data_dir: Path
    host: str
    port: int
    pid: int | None


@dataclass(frozen=True)
class _StoredSettings:
    """The settings a cluster was created with, as kept in its data directory."""

    user: str
    host: str
    port: int
    salt: str
    password_hash: str

    @classmethod
    def new(cls, user: str, host: str, port: int, password: str) -> _StoredSettings:
        """Record ``user``/``host``/``port`` and a salted hash of ``password``."""
        salt = secrets.token_hex(16)
        return cls(user, host, port, salt, _hash_password(password, salt))

    def password_matches(self, password: str) -> bool:
        """True if ``password`` is the one the cluster was created with."""
        return hmac.compare_digest(
            self.password_hash, _hash_password(password, self.salt)
        )


def _hash_password(password: str, salt: str) -> str:
    return hashlib.pbkdf2_hmac(
        "sha256", password.encode(), bytes.fromhex(salt), _PBKDF2_ITERATIONS
    ).hex()


class LocalWarehouse:
    """A PostgreSQL cluster in ``data_dir`` serving ``dbname`` to ``user``.

    ``fast`` turns off fsync and synchronous commit: for throwaway test clusters
    only, since a crash can then lose or corrupt data.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int = DEFAULT_WAREHOUSE_PORT,
        dbname: str,
        user: str,
        password: str,
        fast: bool = False,
    ) -> None:
        self._data_dir = data_dir.absolute()
        self._host = host
        self._port = port
        self._dbname = dbname
        self._user = user
        self._password = password
        self._fast = fast
        self._log_path = self._data_dir / "log" / "postgres.log"

    @classmethod
    def for_settings(
        cls, data_dir: Path, settings: WarehouseSettings
    ) -> LocalWarehouse:
        """Return the cluster that serves ``settings`` from ``data_dir``."""
        return cls(
            data_dir,
            host=settings.host,
            port=settings.port,
            dbname=settings.dbname,
            user=settings.user,
            password=settings.password.reveal(),
        )

    def status(self) -> LocalWarehouseStatus:
        """Return whether the cluster runs, its pid, and where it listens.

        Host and port are the ones the cluster was created with, or the
        configured ones if it does not exist yet.
        """
        stored = self._stored_settings()
        pid = self._postmaster_pid()
        return LocalWarehouseStatus(
            running=pid is not None,
            data_dir=self._data_dir,
            host=stored.host if stored else self._host,
            port=stored.port if stored else self._port,
            pid=pid,
        )

    def start(self) -> LocalWarehouseStatus:
        """Create the cluster if needed, start it, and create the database.

        Does nothing but return the status if the cluster already runs. Returns
        the status of the running cluster. Raises LocalWarehouseError if the
        binaries are missing, the configured user/password/host/port differ from
        the ones the cluster was created with, the port is taken by another
        process, or PostgreSQL fails (the message carries its stderr and the end
        of the server log).
        """
        account = _service_account()
        bin_dir = find_pg_bin()
        if (self._data_dir / "PG_VERSION").exists():
            self._check_settings_unchanged()
            current = self.status()
            if current.running:
                return current
            if account is not None:
                _check_traversable(self._data_dir, account)
        else:
            self._create_cluster(bin_dir, account)
        self._check_port_free()
        self._write_server_conf(account)
        self._pg_ctl_start(bin_dir, account)
        self._wait_ready()
        self._ensure_database()
        return self.status()

    def stop(self, mode: str = "fast") -> bool:
        """Stop the cluster and wait until its process is gone.

        ``mode`` is pg_ctl's shutdown mode: ``"fast"`` (sessions are ended,
        transactions rolled back, a clean checkpoint) or ``"immediate"`` (the
        server quits at once, as in a crash; the next start recovers from
        the WAL). Returns True if it was running, False if it was not (or does
        not exist).
        Raises LocalWarehouseError if pg_ctl fails or the process outlives the
        deadline.
        """
        pid = self._postmaster_pid()
        if pid is None:
            return False
        pg_ctl = _tool_command(find_pg_bin(), "pg_ctl", _service_account())
        _run(
            [*pg_ctl, "stop", "-D", str(self._data_dir), "-m", mode, "-s", "-w"]
            + ["-t", str(_STOP_TIMEOUT_S)],
            "pg_ctl stop",
            timeout=_STOP_TIMEOUT_S + 15,
        )
        deadline = time.monotonic() + _STOP_TIMEOUT_S
        while _is_postgres_process(pid):
            if time.monotonic() > deadline:
                raise LocalWarehouseError(
                    f"PostgreSQL (pid {pid}) of {self._data_dir} still runs "
                    f"{_STOP_TIMEOUT_S} s after pg_ctl stop"
                )
            time.sleep(0.05)  # poll interval
        return True

    def _create_cluster(self, bin_dir: Path, account: pwd.struct_passwd | None) -> None:
        self._prepare_data_dir(account)
        initdb = _tool_command(bin_dir, "initdb", account)
        pw_fd, pw_name = tempfile.mkstemp(
            dir=self._data_dir.parent, prefix=".crypto-etl-pwfile-"
        )
        try:
            with os.fdopen(pw_fd, "w") as pw_file:
                pw_file.write(self._password + "\n")
            if account is not None:
                os.chown(pw_name, account.pw_uid, account.pw_gid)
            _run(
                [*initdb, "-D", str(self._data_dir), "-U", self._user]
                + [f"--pwfile={pw_name}", "--auth-host=scram-sha-256"]
                + ["--auth-local=scram-sha-256", "-E", "UTF8", "--no-locale"]
                + ["--no-instructions"],
                "initdb",
                timeout=_INITDB_TIMEOUT_S,
            )
        finally:
            os.unlink(pw_name)
        self._log_path.parent.mkdir(mode=0o700, exist_ok=True)
        _give(self._log_path.parent, account)
        with open(self._data_dir / "postgresql.conf", "a") as conf:
            conf.write(f"\ninclude = '{_CONF_FILE}'\n")
        if not _is_loopback(self._host):
            # initdb only lets loopback clients in; listening elsewhere means
            # the user wants remote clients, still password-checked.
            with open(self._data_dir / "pg_hba.conf", "a") as hba:
                hba.write("host all all all scram-sha-256\n")
        settings = _StoredSettings.new(
            self._user, self._host, self._port, self._password
        )
        _write_file(
            self._data_dir / _SETTINGS_FILE,
            json.dumps(asdict(settings), indent=2) + "\n",
            account,
        )

    def _prepare_data_dir(self, account: pwd.struct_passwd | None) -> None:
        """Create the data dir (0700); as root, hand it to the service account.

        Its parent is handed over too when the service account cannot traverse it
        and it holds nothing but the data dir (a dedicated temp dir); a shared
        one such as /tmp or a home directory is never touched.
        """
        parent = self._data_dir.parent
        parent.mkdir(parents=True, exist_ok=True)
        self._data_dir.mkdir(mode=0o700, exist_ok=True)
        if account is None:
            return
        _give(self._data_dir, account)
        dedicated = {p.name for p in parent.iterdir()} == {self._data_dir.name}
        if dedicated and not _can_traverse(parent, account):
            _give(parent, account)
        _check_traversable(self._data_dir, account)

    def _stored_settings(self) -> _StoredSettings | None:
        path = self._data_dir / _SETTINGS_FILE
        try:
            return _StoredSettings(**json.loads(path.read_text()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as exc:
            raise LocalWarehouseError(f"cannot read {path}: {exc}") from exc

    def _check_settings_unchanged(self) -> None:
        stored = self._stored_settings()
        if stored is None:
            raise LocalWarehouseError(
                f"{self._data_dir} holds a PostgreSQL cluster that crypto-etl did "
                f"not create (no {_SETTINGS_FILE}): use another data directory"
            )
        changed = [
            f"{name} {old!r} (configured now: {new!r})"
            for name, old, new in (
                ("user", stored.user, self._user),
                ("host", stored.host, self._host),
                ("port", stored.port, self._port),
            )
            if old != new
        ]
        if not stored.password_matches(self._password):
            changed.append("another password than the configured one")
        if changed:
            raise LocalWarehouseError(
                f"the warehouse in {self._data_dir} was created with "
                + ", ".join(changed)
                + ": configure those settings again, or stop it and delete the "
                "directory to re-create it (losing its data)"
            )

    def _write_server_conf(self, account: pwd.struct_passwd | None) -> None:
        # Rewritten on every start so that ``fast`` follows the constructor.
        durable = "off" if self._fast else "on"
        host = self._host.replace("'", "''")
        _write_file(
            self._data_dir / _CONF_FILE,
            "# Written by crypto-etl at every start; included by postgresql.conf.\n"
            f"listen_addresses = '{host}'\n"
            f"port = {self._port}\n"
            "unix_socket_directories = ''\n"
            "timezone = 'UTC'\n"
            "log_timezone = 'UTC'\n"
            "max_connections = 50\n"
            "shared_buffers = 128MB\n"
            "work_mem = 8MB\n"
            "maintenance_work_mem = 64MB\n"
            "effective_cache_size = 512MB\n"
            f"fsync = {durable}\n"
            f"synchronous_commit = {durable}\n"
            f"full_page_writes = {durable}\n",
            account,
        )

    def _check_port_free(self) -> None:
        if _port_taken(self._host, self._port):
            raise LocalWarehouseError(
                f"port {self._port} on {self._host} is already in use by another "
                f"process: stop it or configure another port (the warehouse in "
                f"{self._data_dir} is not running)"
            )

    def _pg_ctl_start(self, bin_dir: Path, account: pwd.struct_passwd | None) -> None:
        pg_ctl = _tool_command(bin_dir, "pg_ctl", account)
        try:
            _run(
                [*pg_ctl, "start", "-D", str(self._data_dir), "-l", str(self._log_path)]
                + ["-s", "-w", "-t", str(_READY_TIMEOUT_S)],
                "pg_ctl start",
                timeout=_READY_TIMEOUT_S + 15,
            )
        except LocalWarehouseError as exc:
            # A server that outlived pg_ctl's deadline would linger unmanaged.
            if self._postmaster_pid() is not None:
                self.stop()
            raise LocalWarehouseError(f"{exc}\n{self._log_excerpt()}") from exc

    def _wait_ready(self) -> None:
        """Poll until a real query succeeds, within the readiness deadline."""
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while True:
            try:
                with closing(self._connect("postgres")) as conn:
                    with conn.cursor() as cur:
                        cur.execute("SELECT 1")
                return
            except psycopg2.OperationalError as exc:
                gone = self._postmaster_pid() is None
                if "authentication" in str(exc) or gone or time.monotonic() > deadline:
                    raise LocalWarehouseError(
                        f"PostgreSQL in {self._data_dir} does not answer as "
                        f"{self._user!r}: {str(exc).strip()}\n{self._log_excerpt()}"
                    ) from exc
            time.sleep(0.1)  # poll interval

    def _ensure_database(self) -> None:
        try:
            with closing(self._connect("postgres")) as conn:
                conn.autocommit = True  # CREATE DATABASE refuses transactions
                with conn.cursor() as cur:
                    cur.execute(
                        "SELECT 1 FROM pg_database WHERE datname = %s", (self._dbname,)
                    )
                    if cur.fetchone() is None:
                        cur.execute(
                            sql.SQL("CREATE DATABASE {}").format(
                                sql.Identifier(self._dbname)
                            )
                        )
        except psycopg2.Error as exc:
            raise LocalWarehouseError(
                f"cannot create database {self._dbname!r}: {str(exc).strip()}"
            ) from exc

    def _connect(self, dbname: str) -> PgConnection:
        return psycopg2.connect(
            host=_client_host(self._host),
            port=self._port,
            dbname=dbname,
            user=self._user,
            password=self._password,
            connect_timeout=5,
        )

    def _postmaster_pid(self) -> int | None:
        """The pid in postmaster.pid if that process is a live postgres, else None."""
        try:
            first_line = (self._data_dir / "postmaster.pid").read_text().split("\n")[0]
            pid = int(first_line)
        except (FileNotFoundError, ValueError):
            return None
        except OSError as exc:
            raise LocalWarehouseError(f"cannot read {exc.filename}: {exc}") from exc
        return pid if _is_postgres_process(pid) else None

    def _log_excerpt(self) -> str:
        try:
            with open(self._log_path, "rb") as log:
                log.seek(max(0, log.seek(0, os.SEEK_END) - _LOG_TAIL_BYTES))
                tail = log.read().decode(errors="replace").splitlines()[-20:]
        except FileNotFoundError:
            return f"(no server log at {self._log_path})"
        return f"server log {self._log_path} ends with:\n" + "\n".join(tail)
