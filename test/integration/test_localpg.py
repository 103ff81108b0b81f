"""The embedded local warehouse, against real PostgreSQL clusters on free ports."""

from __future__ import annotations

import inspect
import os
import shutil
import socket
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from crypto_etl.errors import LocalWarehouseError
from crypto_etl.local.cluster import LocalWarehouse
from crypto_etl.local import pgtools
from crypto_etl.local.pgtools import find_pg_bin

from conftest import skip_or_fail

# Every test here starts clusters from the system's binaries (conftest's pg_bin
# skips or, under CI=true, fails without them, and marks the tests postgres).
pytestmark = pytest.mark.usefixtures("pg_bin")

PASSWORD = "not-the-default-pw"
MakeWarehouse = Callable[..., LocalWarehouse]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _process_alive(pid: int) -> bool:
    return Path(f"/proc/{pid}/cmdline").exists() and bool(
        Path(f"/proc/{pid}/cmdline").read_bytes()
    )


def _connect(warehouse: LocalWarehouse, password: str = PASSWORD) -> Any:
    status = warehouse.status()
    return psycopg2.connect(
        host=status.host,
        port=status.port,
        dbname="warehouse",
        user="etl",
        password=password,
        connect_timeout=5,
    )


@pytest.fixture
def workdir() -> Iterator[Path]:
    # Not pytest's tmp_path: /tmp/pytest-of-root is 0700, which the postgres
    # account cannot traverse when the suite runs as root.
    path = Path(tempfile.mkdtemp(prefix="crypto-etl-localpg-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def make_warehouse(workdir: Path) -> Iterator[MakeWarehouse]:
    made: list[LocalWarehouse] = []

    def make(**overrides: Any) -> LocalWarehouse:
        settings: dict[str, Any] = {
            "port": _free_port(),
            "dbname": "warehouse",
            "user": "etl",
            "password": PASSWORD,
            "fast": True,
        }
        settings.update(overrides)
        warehouse = LocalWarehouse(workdir / "pg", **settings)
        made.append(warehouse)
        return warehouse

    yield make
    for warehouse in made:
        warehouse.stop()


def test_start_serves_the_database_to_the_configured_user(
    make_warehouse: MakeWarehouse,
) -> None:
    warehouse = make_warehouse()
    status = warehouse.start()

    assert status.running and status.pid is not None
    with _connect(warehouse) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT current_user, current_database(), "
            "current_setting('server_encoding'), current_setting('TimeZone')"
        )
        assert cur.fetchone() == ("etl", "warehouse", "UTF8", "UTC")
    conn.close()


def test_start_on_a_running_warehouse_keeps_the_same_process(
    make_warehouse: MakeWarehouse,
) -> None:
    warehouse = make_warehouse()
    first = warehouse.start()

    again = warehouse.start()

    assert again.pid == first.pid
    assert warehouse.status() == first


def test_stop_leaves_no_process_and_closes_the_port(
    make_warehouse: MakeWarehouse,
) -> None:
    warehouse = make_warehouse()
    status = warehouse.start()
    assert status.pid is not None

    assert warehouse.stop() is True

    assert not _process_alive(status.pid)
    assert not (status.data_dir / "postmaster.pid").exists()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((status.host, status.port), timeout=2)
    assert warehouse.status().running is False


def test_stop_when_not_running_does_nothing(make_warehouse: MakeWarehouse) -> None:
    never_created = make_warehouse()
    assert never_created.stop() is False
    assert never_created.status().pid is None

    warehouse = make_warehouse()
    warehouse.start()
    warehouse.stop()
    assert warehouse.stop() is False


def test_restart_keeps_the_data(make_warehouse: MakeWarehouse) -> None:
    warehouse = make_warehouse(fast=False)
    warehouse.start()
    with _connect(warehouse) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)")
    conn.close()

    warehouse.stop()
    warehouse.start()

    with _connect(warehouse) as conn, conn.cursor() as cur:
        cur.execute("SELECT v FROM kept")
        assert cur.fetchall() == [(42,)]
    conn.close()


def test_wrong_password_is_refused_by_scram(make_warehouse: MakeWarehouse) -> None:
    warehouse = make_warehouse()
    warehouse.start()

    with pytest.raises(psycopg2.OperationalError, match="password authentication"):
        _connect(warehouse, password="wrong")
    with _connect(warehouse) as conn, conn.cursor() as cur:
        cur.execute("SELECT DISTINCT auth_method FROM pg_hba_file_rules")
        assert cur.fetchall() == [("scram-sha-256",)]
        cur.execute("SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid")
        assert {row[0] for row in cur.fetchall() if row[0] is not None} == {True}
    conn.close()


def test_port_in_use_is_reported_and_nothing_keeps_running(
    make_warehouse: MakeWarehouse,
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        warehouse = make_warehouse(port=squatter.getsockname()[1])

        with pytest.raises(LocalWarehouseError, match="already in use"):
            warehouse.start()

    assert warehouse.status().running is False


def test_changed_settings_are_reported_without_the_password(
    make_warehouse: MakeWarehouse,
) -> None:
    original = make_warehouse()
    original.start()
    original.stop()

    with pytest.raises(LocalWarehouseError) as changed_password:
        make_warehouse(port=original.status().port, password="new-pw").start()
    with pytest.raises(LocalWarehouseError, match=r"user 'etl'.*port"):
        make_warehouse(user="someone").start()

    assert "another password" in str(changed_password.value)
    assert "new-pw" not in str(changed_password.value)
    assert PASSWORD not in str(changed_password.value)


def test_failed_start_shows_the_end_of_the_server_log(
    make_warehouse: MakeWarehouse,
) -> None:
    warehouse = make_warehouse()
    status = warehouse.start()
    warehouse.stop()
    with open(status.data_dir / "postgresql.conf", "a") as conf:
        conf.write("shared_buffers = 'plenty'\n")

    with pytest.raises(LocalWarehouseError) as failure:
        warehouse.start()

    message = str(failure.value)
    assert str(status.data_dir / "log" / "postgres.log") in message
    assert 'invalid value for parameter "shared_buffers"' in message
    assert warehouse.status().running is False


def test_untraversable_ancestor_is_named(workdir: Path) -> None:
    if os.geteuid() != 0:
        skip_or_fail("the postgres service account is only used when run as root")
    # A parent holding other files is not the warehouse's to hand over.
    workdir.chmod(0o711)
    shared = workdir / "shared"
    shared.mkdir(mode=0o700)
    (shared / "other-file").touch()
    warehouse = LocalWarehouse(
        shared / "pg", port=_free_port(), dbname="w", user="etl", password=PASSWORD
    )

    with pytest.raises(LocalWarehouseError, match=f"cannot enter {shared} "):
        warehouse.start()
    assert stat.S_IMODE(shared.stat().st_mode) == 0o700


def test_find_pg_bin_prefers_the_highest_complete_version(tmp_path: Path) -> None:
    for version, tools in (
        ("9.6", ("initdb", "pg_ctl", "postgres")),
        ("15", ("initdb", "pg_ctl", "postgres")),
        ("16", ("initdb",)),
    ):
        bin_dir = tmp_path / version / "bin"
        bin_dir.mkdir(parents=True)
        for tool in tools:
            (bin_dir / tool).touch(mode=0o755)

    assert find_pg_bin(search_path="", lib_root=tmp_path) == tmp_path / "15" / "bin"


def test_find_pg_bin_without_postgresql_says_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(LocalWarehouseError, match="apt-get install postgresql"):
        find_pg_bin(search_path="", lib_root=tmp_path)


def test_pgtools_shows_other_packages_only_find_pg_bin() -> None:
    public = {
        name
        for name, value in vars(pgtools).items()
        if inspect.isfunction(value)
        and value.__module__ == pgtools.__name__
        and not name.startswith("_")
    }
    assert public == {"find_pg_bin"}
