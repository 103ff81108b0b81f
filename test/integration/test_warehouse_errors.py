"""Warehouse failures as a user sees them: retry (exit 6) or stop (11, 12, 13).

A transient error (cannot connect, starting up, a serialization failure, a
lost connection) exits 6, the code the image's entrypoint retries; a refused
login, an unknown database, a missing privilege or a SQL error exits 11; a
failing migration 12; the local-warehouse tooling 13. Every message is one
line that says what to check and never holds a password.
"""

from __future__ import annotations

import dataclasses
import socket
import struct
import threading
from contextlib import closing, contextmanager
from typing import Iterator

import pytest

from crypto_etl.config import Secret
from crypto_etl.errors import (
    LocalWarehouseError,
    MigrationError,
    TerminalWarehouseError,
    TransientWarehouseError,
    UnknownDatabase,
    WarehouseConflict,
    WarehouseLoginRefused,
    WarehouseNotReady,
    WarehousePermissionDenied,
    WarehouseSqlError,
    WarehouseUnavailable,
)
from crypto_etl.warehouse.connection import WarehouseConnection, connect

from conftest import TEST_PASSWORD, admin_connection, free_port, query


def _one_line(err: str) -> str:
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_the_exit_codes_split_transient_from_terminal_warehouse_errors():
    assert TransientWarehouseError.exit_code == 6
    assert {WarehouseUnavailable.exit_code, WarehouseNotReady.exit_code} == {6}
    assert WarehouseConflict.exit_code == 6
    assert TerminalWarehouseError.exit_code == 11
    assert {
        WarehouseLoginRefused.exit_code,
        UnknownDatabase.exit_code,
        WarehousePermissionDenied.exit_code,
        WarehouseSqlError.exit_code,
    } == {11}
    assert MigrationError.exit_code == 12
    assert LocalWarehouseError.exit_code == 13


WRONG_LOGIN = (
    'refused the login: password authentication failed for user "etl_test"; '
    "check WAREHOUSE_USER and WAREHOUSE_PASSWORD"
)


@pytest.mark.parametrize(
    ("command", "setting", "value", "code", "says"),
    [
        ("migrate", "WAREHOUSE_PASSWORD", "wrong-password-7734", 11, WRONG_LOGIN),
        ("run exchanges", "WAREHOUSE_PASSWORD", "wrong-password-7734", 11, WRONG_LOGIN),
        # The server does not tell an unknown user from a wrong password.
        (
            "migrate",
            "WAREHOUSE_USER",
            "nobody_here",
            11,
            'failed for user "nobody_here"; check WAREHOUSE_USER',
        ),
        (
            "status",
            "WAREHOUSE_DB",
            "no_such_db",
            11,
            "has no database 'no_such_db': check WAREHOUSE_DB",
        ),
        (
            "migrate",
            "WAREHOUSE_PORT",
            "free",
            6,
            "Connection refused; check that it is running (`crypto-etl warehouse",
        ),
    ],
    ids=[
        "migrate-wrong-password",
        "run-wrong-password",
        "unknown-user",
        "unknown-database",
        "unreachable",
    ],
)
def test_a_failed_connection_is_one_line_with_its_exit_code_and_what_to_check(
    cli, monkeypatch, command, setting, value, code, says
):
    monkeypatch.setenv(setting, str(free_port()) if value == "free" else value)
    result = cli(*command.split())
    assert result.code == code
    err = _one_line(result.err)
    assert err.startswith(("error: the warehouse ", "error: cannot connect to the"))
    assert says in err
    assert "wrong-password-7734" not in err and TEST_PASSWORD not in err


@contextmanager
def _made(port: int, create: str, drop: str) -> Iterator[None]:
    """Create a database or role for the block (as the admin), then drop it."""
    with closing(admin_connection(port)) as conn, conn.cursor() as cur:
        cur.execute(create)
        try:
            yield
        finally:
            cur.execute(drop)


def test_an_unmigrated_database_exits_11_saying_to_migrate(
    cli, env, pg_server, monkeypatch
):
    bare = env["WAREHOUSE_DB"] + "_bare"
    monkeypatch.setenv("WAREHOUSE_DB", bare)
    with _made(
        pg_server[1],
        f'CREATE DATABASE "{bare}"',
        f'DROP DATABASE "{bare}" WITH (FORCE)',
    ):
        result = cli("status")
    assert result.code == 11
    assert "does not exist; run `crypto-etl migrate`" in _one_line(result.err)


def test_a_role_without_privileges_exits_11_saying_which_role(cli, db, monkeypatch):
    role = f"bare_{db.dbname}"
    monkeypatch.setenv("WAREHOUSE_USER", role)
    monkeypatch.setenv("WAREHOUSE_PASSWORD", "bare-pw-1")
    create = f"CREATE ROLE \"{role}\" LOGIN PASSWORD 'bare-pw-1'"
    with _made(db.port, create, f'DROP ROLE "{role}"'):
        result = cli("status")
    assert result.code == 11
    err = _one_line(result.err)
    assert "permission denied for schema coincap" in err
    assert f"the role '{role}' lacks the privilege" in err
    assert "bare-pw-1" not in err


def test_a_failing_migration_exits_12_and_applies_nothing(cli, db):
    # Forget that 0001 ran: applying it again fails on its first CREATE TABLE.
    query(db, "DELETE FROM coincap.schema_migrations WHERE version = 1")
    before = query(db, "SELECT version FROM coincap.schema_migrations")
    result = cli("migrate")
    assert result.code == 12
    last = result.err.splitlines()[-1]  # after the "applying migration" log
    assert last.startswith("error: migration 0001_core failed, nothing was applied")
    assert 'relation "etl_runs" already exists' in last
    assert query(db, "SELECT version FROM coincap.schema_migrations") == before


def test_a_local_warehouse_failure_exits_13(cli, tmp_path):
    foreign = tmp_path / "foreign-cluster"
    foreign.mkdir()
    (foreign / "PG_VERSION").write_text("16\n")
    result = cli("warehouse", "start", "--data-dir", str(foreign))
    assert result.code == 13
    err = _one_line(result.err)
    assert "crypto-etl did not create" in err and "use another data directory" in err


def test_a_serialization_failure_is_transient_and_rolled_back(warehouse, db):
    query(db, "CREATE TABLE coincap.counter (id int PRIMARY KEY, n int)")
    query(db, "INSERT INTO coincap.counter VALUES (1, 0)")
    with pytest.raises(WarehouseConflict) as caught:
        with warehouse.managed_cursor() as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cur.execute("SELECT n FROM coincap.counter")
            query(db, "UPDATE coincap.counter SET n = 1")  # another session
            cur.execute("UPDATE coincap.counter SET n = n + 10")
    assert caught.value.exit_code == 6
    assert "could not serialize access" in str(caught.value)
    assert "running it again is safe" in str(caught.value)
    assert query(db, "SELECT n FROM coincap.counter") == [(1,)]
    with warehouse.managed_cursor() as cur:  # the connection is still usable
        cur.execute("UPDATE coincap.counter SET n = n + 10")
    assert query(db, "SELECT n FROM coincap.counter") == [(11,)]


def test_a_lost_connection_is_transient(warehouse, db):
    # Lost inside a transaction: an idle connection the server closed is
    # replaced before the next transaction instead (test_warehouse_faults).
    with pytest.raises(WarehouseUnavailable, match="lost the connection to") as lost:
        with warehouse.managed_cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            row = cur.fetchone()
            assert row is not None
            query(db, "SELECT pg_terminate_backend(%s)", (row[0],))
            cur.execute("SELECT 1")
    assert lost.value.exit_code == 6


# ---- a server that is starting up -------------------------------------------

SSL_REQUEST, GSSENC_REQUEST = 80877103, 80877104


class StartingUpServer:
    """Answers the first ``refusals`` connections as PostgreSQL does while it
    starts up (FATAL 57P03), then forwards every later one to ``target``.

    A real server cannot be held in its start-up phase on demand, so this
    speaks the protocol's first exchange itself, over real TCP.
    """

    def __init__(self, target_port: int, refusals: int) -> None:
        self.target_port = target_port
        self.refusals = refusals
        self.accepted = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        threading.Thread(target=self._serve, daemon=True).start()

    def close(self) -> None:
        self._listener.close()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            self.accepted += 1
            if self.accepted <= self.refusals:
                with client:
                    _answer_starting_up(client)
            else:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
                for a, b in ((client, upstream), (upstream, client)):
                    threading.Thread(target=_pump, args=(a, b), daemon=True).start()


def _answer_starting_up(client: socket.socket) -> None:
    reader = client.makefile("rb")
    while True:
        length, code = struct.unpack("!ii", reader.read(8))
        reader.read(length - 8)
        if code not in (SSL_REQUEST, GSSENC_REQUEST):
            break
        client.sendall(b"N")  # no TLS, no GSSAPI: go on in plain text
    fields = b"SFATAL\0VFATAL\0C57P03\0Mthe database system is starting up\0\0"
    client.sendall(b"E" + struct.pack("!i", len(fields) + 4) + fields)


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with source, sink:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            return  # the other direction ended first and closed both


@pytest.fixture
def starting_up(db) -> Iterator[StartingUpServer]:
    server = StartingUpServer(db.port, refusals=2)
    yield server
    server.close()


def test_connect_waits_for_a_server_that_is_starting_up(db, starting_up):
    settings = dataclasses.replace(db, port=starting_up.port)
    with closing(connect(settings, application_name="test")) as conn:
        with conn.cursor() as cur:
            cur.execute("SELECT current_database()")
            assert cur.fetchone() == (db.dbname,)
    assert starting_up.accepted == 3


def test_a_server_still_starting_up_after_the_wait_is_transient(db, starting_up):
    settings = dataclasses.replace(db, port=starting_up.port)
    with pytest.raises(WarehouseNotReady) as caught:
        connect(settings, application_name="test", startup_wait=0)
    assert caught.value.exit_code == 6
    assert str(caught.value) == (
        f"the warehouse {settings.describe()} is starting up or shutting down: "
        "the database system is starting up; run again once it accepts connections"
    )
    assert starting_up.accepted == 1


def test_a_refused_login_is_never_retried(db):
    counter = StartingUpServer(db.port, refusals=0)  # forwards every connection
    wrong = dataclasses.replace(db, port=counter.port, password=Secret("nope"))
    try:
        with pytest.raises(WarehouseLoginRefused):
            connect(wrong, application_name="test")
        with WarehouseConnection(wrong) as warehouse:
            for _ in range(2):  # e.g. the run, then recording that it failed
                with pytest.raises(WarehouseLoginRefused, match="check WAREHOUSE_"):
                    with warehouse.managed_cursor():
                        pass
    finally:
        counter.close()
    assert counter.accepted == 2  # once per caller, never again
