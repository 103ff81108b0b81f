"""The crypto-etl command as a user sees it: output, one-line errors, exit codes."""

import json
import os
import shutil
import tempfile
import subprocess
import sys
from pathlib import Path

import pytest

from crypto_etl.cli import build_parser
from crypto_etl.config import ReaderSettings, Secret
from crypto_etl.errors import WarehouseError

from conftest import API_KEY, admin_connection, free_port, query


def test_every_command_has_help_text():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert isinstance(sub.choices, dict)
    for name, command in sub.choices.items():
        assert command.description, f"{name} has no help"
        for action in command._actions:
            assert action.help, f"{name} {action.dest} has no help"


def test_the_console_script_is_installed():
    done = subprocess.run(
        [sys.executable, "-m", "crypto_etl.cli", "--help"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and "migrate" in done.stdout


def test_migrate_twice_is_a_no_op_the_second_time(cli):
    # The test database is cloned from a migrated template.
    result = cli("migrate")
    assert (result.code, result.out) == (0, "the schema is up to date\n")


def test_migrate_on_an_empty_database_applies_everything(
    cli, env, pg_server, monkeypatch
):
    empty = env["WAREHOUSE_DB"] + "_empty"
    conn = admin_connection(pg_server[1])
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{empty}"')
    monkeypatch.setenv("WAREHOUSE_DB", empty)
    try:
        first = cli("migrate")
        second = cli("migrate")
    finally:
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE "{empty}" WITH (FORCE)')
        conn.close()
    assert first.code == 0 and first.out.startswith("applied ")
    assert "0001_core" in first.out
    assert second.out == "the schema is up to date\n"


def test_an_edited_migration_is_refused_with_exit_code_12(cli, db):
    query(db, "UPDATE coincap.schema_migrations SET checksum = 'x' WHERE version = 1")
    result = cli("migrate")
    assert result.code == 12
    assert result.err == (
        "error: migration 1_core was edited after it was applied; "
        "add a new migration instead\n"
    )


def test_migrate_creates_the_read_only_role_when_the_reader_is_set(
    cli, db, monkeypatch
):
    user = f"cli_reader_{os.getpid()}"
    monkeypatch.setenv("WAREHOUSE_READER_USER", user)
    monkeypatch.setenv("WAREHOUSE_READER_PASSWORD", "reader-pw-1")
    result = cli("migrate")
    assert (result.code, result.out) == (0, "the schema is up to date\n")
    reader = ReaderSettings(user, Secret("reader-pw-1")).login(db)
    assert query(reader, "SELECT count(*) FROM coincap.etl_runs") == [(0,)]
    with pytest.raises(WarehouseError, match="read-only transaction"):
        query(reader, "DELETE FROM coincap.etl_runs")
    # Run again with a new password: the role is updated, not duplicated.
    monkeypatch.setenv("WAREHOUSE_READER_PASSWORD", "reader-pw-2")
    assert cli("migrate").code == 0
    renewed = ReaderSettings(user, Secret("reader-pw-2")).login(db)
    assert query(renewed, "SELECT current_user") == [(user,)]
    with pytest.raises(WarehouseError):
        query(reader, "SELECT 1")


def test_half_a_reader_login_is_exit_code_3_naming_the_missing_half(cli, monkeypatch):
    monkeypatch.setenv("WAREHOUSE_READER_USER", "someone")
    result = cli("migrate")
    assert result.code == 3 and result.out == ""
    assert result.err.startswith("error: missing setting WAREHOUSE_READER_PASSWORD: ")
    assert "only WAREHOUSE_READER_USER is set" in result.err


def test_provision_metabase_without_its_settings_names_them(cli):
    result = cli("provision-metabase", "--wait", "0")
    assert result.code == 3
    assert result.err.startswith(
        "error: provisioning Metabase needs METABASE_URL, METABASE_ADMIN_EMAIL "
        "and METABASE_ADMIN_PASSWORD set (looked in the environment and "
    )


def test_run_exchanges_prints_what_it_loaded(cli):
    result = cli("run", "exchanges")
    assert result.code == 0
    assert result.out == "exchanges: fetched 60, inserted 60, rejected 0 (1 calls, " + (
        result.out.split("(1 calls, ")[1]
    )
    assert cli("run", "exchanges").out.startswith("exchanges: fetched 60, inserted 0,")


def test_status_shows_the_last_run_and_freshness(cli):
    cli("run", "exchanges")
    result = cli("status")
    assert result.code == 0
    line = next(x for x in result.out.splitlines() if x.startswith("exchanges"))
    assert "succeeded" in line and " 60 " in line and "ago" in line
    assert "no data" in next(
        x for x in result.out.splitlines() if x.startswith("rates")
    )


def test_a_wrong_key_is_one_line_naming_the_setting_and_exit_code_4(cli, monkeypatch):
    monkeypatch.setenv("COINCAP_API_KEY", "wrong-key-123456")
    result = cli("run", "exchanges")
    assert result.code == 4
    assert result.err.count("\n") == 1
    assert result.err.startswith("error: GET /exchanges: CoinCap refused the API key")
    assert "COINCAP_API_KEY" in result.err and "wrong-key-123456" not in result.err


def test_a_missing_key_is_a_config_error_with_exit_code_3(cli, monkeypatch):
    monkeypatch.delenv("COINCAP_API_KEY")
    result = cli("run", "exchanges")
    assert result.code == 3
    assert result.err.startswith("error: COINCAP_API_KEY is not set")
    assert result.err.count("\n") == 1


def test_database_down_is_one_line_with_exit_code_6_and_no_traceback(cli, monkeypatch):
    monkeypatch.setenv("WAREHOUSE_PORT", str(free_port()))
    result = cli("run", "exchanges")
    assert result.code == 6
    assert result.err.startswith(
        "error: cannot connect to the warehouse etl_test@127.0.0.1:"
    )
    assert "Traceback" not in result.err and result.err.count("\n") == 1


def test_json_logs_are_one_object_per_line(cli):
    result = cli("--log-format", "json", "run", "exchanges")
    lines = [json.loads(x) for x in result.err.splitlines()]
    assert lines and all(
        {"time", "level", "logger", "message"} <= set(x) for x in lines
    )
    assert any("inserted 60" in x["message"] for x in lines)


@pytest.mark.parametrize("verbose", [[], ["-v"]])
def test_the_api_key_never_appears_in_output_logs_or_stored_rows(
    cli, simulator, db, verbose
):
    simulator.fail_next(500)
    simulator.fail_next(429, retry_after="0")
    outputs = [cli(*verbose, "run", "exchanges")]
    simulator.fail_always(401)
    outputs.append(cli(*verbose, "run", "exchanges"))
    outputs.append(cli(*verbose, "status"))
    assert [r.code for r in outputs] == [0, 4, 0]
    for result in outputs:
        assert API_KEY not in result.out and API_KEY not in result.err
    dump = query(db, "SELECT row_to_json(r)::text FROM coincap.etl_runs r")
    dump += query(db, "SELECT row_to_json(r)::text FROM coincap.rejects r")
    assert all(API_KEY not in row[0] for row in dump)


def test_status_warns_before_the_monthly_credit_budget_runs_out(cli, db, monkeypatch):
    assert cli("run", "all").code == 0
    (spent,) = query(db, "SELECT sum(credits)::int FROM coincap.etl_runs")[0]
    # A budget the run has spent 80-99% of: the "soon" warning, not "exhausted".
    budget = spent + 1
    monkeypatch.setenv("COINCAP_MONTHLY_CREDITS", str(budget))
    result = cli("status")
    assert result.code == 0
    assert f"of a {budget} monthly budget" in result.out
    assert result.err == (
        f"warning: {spent} of {budget} monthly credits spent "
        f"({spent * 100 // budget}%): the budget will run out soon\n"
    )


def test_warehouse_start_status_stop_from_the_cli(cli, monkeypatch):
    root = Path(tempfile.mkdtemp(prefix="crypto-etl-cli-pg-", dir="/tmp"))
    root.chmod(0o755)
    data_dir = str(root / "warehouse")
    port = free_port()
    monkeypatch.setenv("WAREHOUSE_PORT", str(port))
    monkeypatch.setenv("WAREHOUSE_DB", "coincap")
    try:
        started = cli("warehouse", "start", "--data-dir", data_dir)
        assert started.code == 0, started.err
        assert f"WAREHOUSE_PORT={port}" in started.out
        assert "WAREHOUSE_DB=coincap" in started.out
        assert cli("warehouse", "status", "--data-dir", data_dir).out.startswith(
            "running, pid "
        )
        assert cli("migrate").code == 0
        assert cli("run", "exchanges").code == 0
    finally:
        stopped = cli("warehouse", "stop", "--data-dir", data_dir)
    assert stopped.out == "stopped\n"
    assert cli("warehouse", "stop", "--data-dir", data_dir).out == "not running\n"
    after = cli("warehouse", "status", "--data-dir", data_dir)
    assert after.code == 6 and "the local warehouse is not running" in after.err
    shutil.rmtree(root, ignore_errors=True)
