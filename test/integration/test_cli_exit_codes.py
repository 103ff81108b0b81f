"""Every way the command ends has a documented exit code, declared once.

``errors.exit_codes()`` is the declaration (the exception classes plus the
process's own outcomes); the README's table and ``crypto-etl --help`` must
list exactly those codes, and no command returns a code outside them.
"""

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from crypto_etl import errors
from crypto_etl.errors import CryptoEtlError, exit_codes

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "crypto_etl.cli"]


def _readme_exit_codes() -> set[int]:
    text = (ROOT / "README.md").read_text()
    section = text.split("### Exit codes", 1)[1].split("\n#", 1)[0]
    return {int(m) for m in re.findall(r"^\| (\d+) \|", section, re.MULTILINE)}


def _all_error_classes() -> list[type[CryptoEtlError]]:
    found, pending = [], [CryptoEtlError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def test_the_readme_table_lists_exactly_the_declared_exit_codes():
    assert _readme_exit_codes() == set(exit_codes())


def test_help_prints_every_declared_exit_code_with_its_meaning():
    done = subprocess.run(CLI + ["--help"], capture_output=True, text=True)
    assert done.returncode == 0
    epilog = done.stdout.split("exit codes:", 1)[1]
    for code, meaning in exit_codes().items():
        assert re.search(rf"^\s+{code}\s+{re.escape(meaning)}$", epilog, re.M), code


def test_every_error_class_exits_with_a_declared_code():
    import crypto_etl.cli  # noqa: F401  (imports every module that defines errors)

    assert {cls.exit_code for cls in _all_error_classes()} <= set(exit_codes())
    assert all(
        issubclass(v, CryptoEtlError)
        for v in vars(errors).values()
        if isinstance(v, type) and issubclass(v, Exception)
    )


def test_the_cli_returns_no_literal_code_outside_the_table():
    source = "".join(
        p.read_text() for p in sorted((ROOT / "src/crypto_etl/cli").glob("*.py"))
    )
    literal = {int(n) for n in re.findall(r"\breturn (\d+)$", source, re.M)}
    assert literal and literal <= set(exit_codes())
    # Signals end a command with 128 + their number (errors.Interrupted).
    assert "return 128 + stopped.signum" in source
    assert {128 + signal.SIGINT, 128 + signal.SIGTERM} <= set(exit_codes())


def test_help_shows_defaults_and_version():
    dashboard = " ".join(
        subprocess.run(
            CLI + ["dashboard", "--help"], capture_output=True, text=True
        ).stdout.split()
    )
    assert "(default: 8050)" in dashboard and "(default: 127.0.0.1)" in dashboard
    version = subprocess.run(CLI + ["--version"], capture_output=True, text=True)
    assert re.fullmatch(r"crypto-etl \d+\.\d+\.\d+\n", version.stdout)


def test_a_missing_env_file_is_reported_as_not_found_with_exit_code_2(tmp_path):
    missing = tmp_path / "nope.env"
    done = subprocess.run(
        CLI + ["--env-file", str(missing), "status"], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert f"--env-file: file not found: {missing}" in done.stderr
    assert "missing setting" not in done.stderr


def test_a_non_utf8_env_file_is_a_config_error_naming_the_line(cli, tmp_path):
    env_file = tmp_path / "latin1.env"
    env_file.write_bytes(b"WAREHOUSE_DB=x\n# caf\xe9\n")
    result = cli("--env-file", str(env_file), "status")
    assert result.code == 3
    assert (
        result.err == f"error: {env_file}:2: not UTF-8 text; save the file as UTF-8\n"
    )


def test_warehouse_status_of_a_stopped_cluster_exits_6(cli, tmp_path):
    result = cli("warehouse", "status", "--data-dir", str(tmp_path / "none"))
    assert result.code == 6
    assert "the local warehouse is not running" in result.err
    assert "crypto-etl warehouse start" in result.err


@pytest.mark.parametrize("argv", [["run", "nope"], ["backfill"], ["frobnicate"]])
def test_bad_arguments_exit_2(argv):
    done = subprocess.run(CLI + argv, capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.startswith("usage: crypto-etl")


def test_make_run_without_a_key_stops_before_starting_anything():
    import os

    environ = {k: v for k, v in os.environ.items() if k != "COINCAP_API_KEY"}
    done = subprocess.run(
        ["make", "run"], cwd=ROOT, env=environ, capture_output=True, text=True
    )
    assert done.returncode != 0
    assert "COINCAP_API_KEY is not set" in done.stderr
    assert "`make demo`" in done.stderr
    assert "Error 3" in done.stderr
    # make echoes each command it runs: the key check was the only one.
    assert "warehouse start" not in done.stdout


def test_settings_shows_values_but_never_a_secret(cli, env):
    result = cli("settings", "--require-key")
    assert result.code == 0
    assert f"WAREHOUSE_PORT={env['WAREHOUSE_PORT']}\n" in result.out
    assert "COINCAP_API_KEY=(set)\n" in result.out
    assert env["COINCAP_API_KEY"] not in result.out
    assert env["WAREHOUSE_PASSWORD"] not in result.out


def test_the_default_ports_stay_clear_of_a_system_postgresql():
    from crypto_etl.config import read_env_file

    port = int(read_env_file(ROOT / "env")["WAREHOUSE_PORT"])
    demo = subprocess.run(CLI + ["demo", "--help"], capture_output=True, text=True)
    assert port not in (5432, 5433)
    assert "5433)" not in demo.stdout and "(default: 54330)" in demo.stdout


def test_every_commands_help_renders_with_its_defaults(capsys):
    from crypto_etl.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert isinstance(sub.choices, dict)
    for name in sub.choices:
        with pytest.raises(SystemExit) as done:
            parser.parse_args([name, "--help"])
        assert done.value.code == 0, name
        assert "exit codes: listed by `crypto-etl --help`" in capsys.readouterr().out
