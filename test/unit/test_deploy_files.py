"""The Docker stack and the schedule, checked without a Docker engine.

Covers docker-compose.yml, containers/, deploy_helpers/ and scheduler/crontab:
the compose model (parsed with PyYAML, and validated against the Compose
Specification's JSON schema by ``check-jsonschema``, offline: no Docker client
is needed), the pins in the Dockerfile, the shell scripts (``bash -n`` and
shellcheck), the crontab run through a real ``/bin/sh`` as cron and supercronic
run it, and the image's entrypoint run for real against the suite's PostgreSQL.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from crypto_etl.cli import build_parser
from crypto_etl.config import read_env_file
from crypto_etl.errors import (
    ConfigError,
    RunSkipped,
    TransientWarehouseError,
    WarehouseLoginRefused,
)
from crypto_etl.monitor.doctor import PING_NAMES

from conftest import free_port, skip_or_fail

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_FILE = REPO / "env"
CRONTAB = REPO / "scheduler" / "crontab"
DOCKERFILE = REPO / "containers" / "etl" / "Dockerfile"
CONSTRAINTS = REPO / "containers" / "etl" / "constraints.txt"
WAREHOUSE_INIT = REPO / "containers" / "warehouse" / "initdb" / "10-metabase.sh"
ENTRYPOINT = REPO / "deploy_helpers" / "etl-entrypoint.sh"
STACK_UP = REPO / "deploy_helpers" / "stack-up.sh"
SHELL_SCRIPTS = sorted(
    [*(REPO / "deploy_helpers").glob("*.sh"), *(REPO / "containers").rglob("*.sh")]
)
# minute, hour, day of month, month, day of week (0 and 7 are both Sunday)
CRON_FIELD_RANGES = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
CRON_ENV_LINE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\s*=")

# A stand-in for `crypto-etl` (and for supercronic, which has no package to
# install here): appends its argv as one JSON line to $ARGV_LOG and exits
# with $STAND_IN_EXIT, so a test sees exactly what the shell passed.
STAND_IN = f"""#!{sys.executable}
import json, os, sys
with open(os.environ["ARGV_LOG"], "a", encoding="utf-8") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
sys.exit(int(os.environ.get("STAND_IN_EXIT", "0")))
"""


def _stand_in(directory: Path, name: str) -> None:
    path = directory / name
    path.write_text(STAND_IN, encoding="utf-8")
    path.chmod(0o755)


def _recorded_argvs(log: Path) -> list[list[str]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]


def _parse_cli(argv: list[str], source: str) -> Any:
    """Parse ``crypto-etl`` arguments with the real parser; fail if it rejects them."""
    try:
        return build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"crypto-etl rejects {argv} (from {source})")


@pytest.fixture(scope="module")
def compose() -> Any:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def services(compose: Any) -> dict[str, Any]:
    found: dict[str, Any] = compose["services"]
    return found


def _built_here(service: dict[str, Any]) -> bool:
    return "build" in service


def _healthcheck_text(service: dict[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    return test if isinstance(test, str) else " ".join(test)


def _tool(name: str, install: str) -> str:
    """The path of a command-line tool (the venv's first); skip_or_fail without it."""
    venv_bin = str(Path(sys.executable).parent)
    found = shutil.which(
        name, path=f"{venv_bin}{os.pathsep}{os.environ.get('PATH', os.defpath)}"
    )
    if found is None:
        skip_or_fail(f"{name} is not installed ({install})")
    return found


def _check_compose_schema(path: Path) -> subprocess.CompletedProcess[str]:
    """Validate ``path`` against the Compose Specification (schema bundled, offline)."""
    checker = _tool("check-jsonschema", "make setup")
    return subprocess.run(
        [checker, "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
    )


# ---- docker-compose.yml -----------------------------------------------------


def test_compose_file_follows_the_compose_specification() -> None:
    result = _check_compose_schema(COMPOSE_FILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_compose_schema_check_rejects_a_mistyped_service(
    compose: Any, tmp_path: Path
) -> None:
    # The check above is only worth something if it catches real mistakes:
    # a misspelt key and a port given as a mapping.
    broken = json.loads(json.dumps(compose))
    broken["services"]["etl"]["depend_on"] = broken["services"]["etl"].pop("depends_on")
    broken["services"]["dashboard"]["ports"] = {"8050": "8050"}
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(broken), encoding="utf-8")
    result = _check_compose_schema(path)
    assert result.returncode == 1
    assert "'depend_on' was unexpected" in result.stdout
    assert "$.services.dashboard.ports" in result.stdout


def test_the_stack_has_its_four_services(services: dict[str, Any]) -> None:
    assert set(services) == {"warehouse", "etl", "dashboard", "metabase"}


def test_pulled_images_are_pinned_to_a_release(services: dict[str, Any]) -> None:
    pulled = {n: s["image"] for n, s in services.items() if not _built_here(s)}
    assert pulled, "the stack pulls the warehouse and metabase images"
    for name, image in pulled.items():
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: {image} has no tag"
        assert re.fullmatch(
            r"v?\d+\.\d+(\.\d+)*([.-][\w.-]+)?", tag
        ), f"{name}: {image} is not pinned to a release"


def test_images_built_here_are_never_pulled(services: dict[str, Any]) -> None:
    built = {n: s for n, s in services.items() if _built_here(s)}
    assert set(built) == {"etl", "dashboard"}
    for name, service in built.items():
        assert service["pull_policy"] == "build", name
        assert service["build"]["dockerfile"] == "containers/etl/Dockerfile", name
        assert not service["image"].endswith(":latest"), name


def test_published_ports_listen_on_loopback_only(services: dict[str, Any]) -> None:
    container_ports = {"warehouse": "5432", "dashboard": "8050", "metabase": "3000"}
    for name, service in services.items():
        ports = service.get("ports", [])
        if name not in container_ports:
            assert ports == [], f"{name} publishes nothing"
            continue
        assert len(ports) == 1, name
        host_ip, _, rest = ports[0].partition(":")
        assert host_ip == "127.0.0.1", f"{name}: {ports[0]}"
        assert rest.rpartition(":")[2] == container_ports[name], f"{name}: {ports[0]}"


def test_env_file_defines_what_the_containers_need() -> None:
    values = read_env_file(ENV_FILE)
    # The warehouse entrypoint maps these onto POSTGRES_*; the init script and
    # Metabase share MB_DB_PASS.
    needed = {"WAREHOUSE_DB", "WAREHOUSE_USER", "WAREHOUSE_PASSWORD", "MB_DB_PASS"}
    missing = needed - {key for key, value in values.items() if value}
    assert not missing, f"env lacks {sorted(missing)}"
    assert "COINCAP_API_KEY" not in values, "the API key is never committed"


def test_the_dashboard_bound_beyond_loopback_lists_its_allowed_hosts(
    services: dict[str, Any],
) -> None:
    dashboard = services["dashboard"]
    assert dashboard["command"][dashboard["command"].index("--host") + 1] == "0.0.0.0"
    hosts = dashboard["environment"]["DASHBOARD_ALLOWED_HOSTS"]
    default = hosts.removeprefix("${DASHBOARD_ALLOWED_HOSTS:-").removesuffix("}")
    # The published port and the health check reach it as 127.0.0.1.
    assert "127.0.0.1" in default.split(",")
    assert "127.0.0.1:8050" in " ".join(dashboard["healthcheck"]["test"])
    # It never needs the API key or Metabase.
    assert not {"COINCAP_API_KEY", "METABASE_URL"} & set(dashboard["environment"])


def test_services_start_after_what_they_need_is_healthy(
    services: dict[str, Any],
) -> None:
    needs = {"etl": "warehouse", "dashboard": "etl", "metabase": "warehouse"}
    for name, dependency in needs.items():
        depends_on = services[name]["depends_on"]
        assert depends_on == {dependency: {"condition": "service_healthy"}}, name


def test_warehouse_is_healthy_only_when_it_accepts_tcp(
    services: dict[str, Any],
) -> None:
    check = _healthcheck_text(services["warehouse"])
    assert "pg_isready" in check and "-h 127.0.0.1" in check


def test_metabase_is_healthy_when_api_health_answers(
    services: dict[str, Any],
) -> None:
    assert "http://127.0.0.1:3000/api/health" in _healthcheck_text(services["metabase"])


def test_dashboard_is_healthy_when_its_server_answers_not_when_data_is_fresh(
    services: dict[str, Any],
) -> None:
    # /healthz is 503 while data is stale (for uptime monitors); the
    # container's own health is /livez.
    assert "http://127.0.0.1:8050/livez" in _healthcheck_text(services["dashboard"])


def test_the_etl_service_passes_the_alert_and_ping_variables_through(
    services: dict[str, Any],
) -> None:
    environment = services["etl"]["environment"]
    names = ["ALERT_URLS", "HEALTHCHECK_URL"]
    names += [f"HEALTHCHECK_URL_{n.upper()}" for n in PING_NAMES]
    for name in names:
        # No value: compose passes the caller's, never one written here.
        assert name in environment and environment[name] is None, name
    assert "ALERT_URLS" not in services["dashboard"]["environment"]


def test_etl_health_is_the_marker_its_entrypoint_writes(
    services: dict[str, Any],
) -> None:
    # etl has no compose healthcheck: it uses the image's HEALTHCHECK.
    assert "healthcheck" not in services["etl"]
    healthcheck = re.search(r"^HEALTHCHECK .*\n.*$", DOCKERFILE.read_text(), re.M)
    assert healthcheck is not None
    marker = re.search(
        r"READY_FILE=\$\{ETL_READY_FILE:-(\S+)\}", ENTRYPOINT.read_text()
    )
    assert marker is not None
    assert f'"test", "-f", "{marker.group(1)}"' in healthcheck.group(0)


def test_warehouse_keeps_its_data_on_a_named_volume(compose: Any) -> None:
    volumes = compose["services"]["warehouse"]["volumes"]
    data = [v for v in volumes if v.endswith(":/var/lib/postgresql/data")]
    assert len(data) == 1
    assert data[0].split(":")[0] in compose["volumes"]


def test_metabase_uses_the_database_the_init_script_creates(
    services: dict[str, Any],
) -> None:
    sql = WAREHOUSE_INIT.read_text()
    role = re.search(r"CREATE ROLE (\w+) LOGIN", sql)
    database = re.search(r"CREATE DATABASE (\w+) OWNER (\w+)", sql)
    assert role is not None and database is not None
    assert database.group(2) == role.group(1)
    environment = services["metabase"]["environment"]
    assert environment["MB_DB_TYPE"] == "postgres"
    assert environment["MB_DB_DBNAME"] == database.group(1)
    assert environment["MB_DB_USER"] == role.group(1)
    mounts = services["warehouse"]["volumes"]
    assert "./containers/warehouse/initdb:/docker-entrypoint-initdb.d:ro" in mounts


# ---- containers/etl ---------------------------------------------------------


def test_dockerfile_builds_on_a_pinned_python_311() -> None:
    text = DOCKERFILE.read_text()
    default = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)
    assert default is not None
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", default.group(1))
    stages = re.findall(r"^FROM (\S+)", text, re.M)
    assert stages and all(stage == "${PYTHON_IMAGE}" for stage in stages)


def test_dockerfile_pins_supercronic_with_a_checksum_per_architecture() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^ARG SUPERCRONIC_VERSION=v\d+\.\d+\.\d+$", text, re.M)
    for arch in ("AMD64", "ARM64"):
        assert re.search(rf"^ARG SUPERCRONIC_SHA1_{arch}=[0-9a-f]{{40}}$", text, re.M)
    assert "sha1sum -c -" in text


def test_image_runs_as_a_non_root_user() -> None:
    users = re.findall(r"^USER (\S+)$", DOCKERFILE.read_text(), re.M)
    assert users and users[-1] not in ("root", "0")


def test_constraints_agree_with_the_pyproject_pins() -> None:
    import tomllib

    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    pins = {
        name.lower(): version
        for name, _, version in (
            line.partition("==") for line in CONSTRAINTS.read_text().splitlines()
        )
        if not name.startswith("#")
    }
    for requirement in pyproject["project"]["dependencies"]:
        name, sep, version = requirement.partition("==")
        assert sep, f"{requirement} is not pinned with =="
        assert pins.get(name.lower()) == version, f"{requirement} vs constraints.txt"


def test_dockerignore_keeps_local_state_and_secrets_out_of_the_image() -> None:
    ignored = set((REPO / ".dockerignore").read_text().splitlines())
    assert {".git", ".venv", ".data", "**/node_modules", "env", ".env"} <= ignored
    assert {"**/__pycache__", "**/.pytest_cache", "**/.mypy_cache"} <= ignored


# ---- shell scripts ----------------------------------------------------------


@pytest.mark.parametrize(
    "script", SHELL_SCRIPTS, ids=lambda p: str(p.relative_to(REPO))
)
def test_shell_script_parses(script: Path) -> None:
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "script", SHELL_SCRIPTS, ids=lambda p: str(p.relative_to(REPO))
)
def test_shell_script_passes_shellcheck(script: Path) -> None:
    shellcheck = _tool("shellcheck", "apt-get install shellcheck")
    result = subprocess.run([shellcheck, str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize(
    "script", SHELL_SCRIPTS, ids=lambda p: str(p.relative_to(REPO))
)
def test_shell_script_is_executable(script: Path) -> None:
    assert os.access(script, os.X_OK), f"chmod +x {script.relative_to(REPO)}"


# ---- scheduler/crontab ------------------------------------------------------


def _crontab_jobs() -> list[tuple[list[str], str]]:
    """Return (schedule fields, command) for each job line of the crontab."""
    jobs = []
    for line in CRONTAB.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or CRON_ENV_LINE.match(line):
            continue
        *schedule, command = line.split(maxsplit=5)
        jobs.append((schedule, command))
    return jobs


def _cron_field_is_valid(field: str, low: int, high: int) -> bool:
    for item in field.split(","):
        base, slash, step = item.partition("/")
        if slash and not (step.isdigit() and int(step) > 0):
            return False
        if base == "*":
            continue
        start, dash, end = base.partition("-")
        bounds = [start, end] if dash else [start]
        if not all(b.isdigit() and low <= int(b) <= high for b in bounds):
            return False
        if dash and int(start) > int(end):
            return False
    return True


def _run_job(command: str, bin_dir: Path, log: Path, exit_code: int = 0) -> int:
    """Run a crontab command the way cron and supercronic do: /bin/sh -c."""
    env = {
        "PATH": f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "ARGV_LOG": str(log),
        "STAND_IN_EXIT": str(exit_code),
    }
    return subprocess.run(["/bin/sh", "-c", command], env=env).returncode


def test_crontab_lines_have_five_valid_schedule_fields() -> None:
    jobs = _crontab_jobs()
    assert len(jobs) >= 2
    for schedule, command in jobs:
        assert len(schedule) == 5, f"{schedule} {command}"
        for field, (low, high) in zip(schedule, CRON_FIELD_RANGES):
            assert _cron_field_is_valid(field, low, high), f"{field!r} in {schedule}"


def test_crontab_commands_escape_percent_for_cron() -> None:
    for _, command in _crontab_jobs():
        assert not re.search(r"(?<!\\)%", command), command


def test_crontab_runs_only_commands_the_cli_accepts(tmp_path: Path) -> None:
    _stand_in(tmp_path, "crypto-etl")
    commands_run, rejected = set(), []
    for number, (_, command) in enumerate(_crontab_jobs()):
        log = tmp_path / f"argv-{number}.jsonl"
        assert _run_job(command, tmp_path, log) == 0, command
        argvs = _recorded_argvs(log)
        assert argvs, f"{command} runs no crypto-etl command"
        for argv in argvs:
            try:
                commands_run.add(build_parser().parse_args(argv).command)
            except SystemExit:
                rejected.append(argv)
    assert not rejected, f"crypto-etl rejects {rejected}"
    assert {"run", "transform", "backfill"} <= commands_run


def test_crontab_backfill_starts_two_days_ago_in_utc(tmp_path: Path) -> None:
    _stand_in(tmp_path, "crypto-etl")
    log = tmp_path / "argv.jsonl"
    (command,) = [command for _, command in _crontab_jobs() if "backfill" in command]
    # One right answer: the UTC day the job ran on, minus two. A run that
    # straddled midnight has no single such day, so it is run again.
    while True:
        log.unlink(missing_ok=True)
        day = datetime.now(timezone.utc).date()
        _run_job(command, tmp_path, log)
        if datetime.now(timezone.utc).date() == day:
            break
    (argv,) = [a for a in _recorded_argvs(log) if a[0] == "backfill"]
    assert argv[argv.index("--start") + 1] == (day - timedelta(days=2)).isoformat()


def test_crontab_treats_a_skipped_run_as_success(tmp_path: Path) -> None:
    _stand_in(tmp_path, "crypto-etl")
    log = tmp_path / "argv.jsonl"
    for _, command in _crontab_jobs():
        assert _run_job(command, tmp_path, log, RunSkipped.exit_code) == 0, command
        assert _run_job(command, tmp_path, log, 1) != 0, command


# ---- commands the stack runs ------------------------------------------------


def test_dashboard_command_is_one_the_cli_accepts(services: dict[str, Any]) -> None:
    command = services["dashboard"]["command"]
    assert command[0] == "crypto-etl"
    assert _parse_cli(command[1:], "the dashboard service").command == "dashboard"


def test_stack_up_provisions_metabase_with_a_command_the_cli_accepts() -> None:
    found = re.search(
        r"docker compose run .* etl (crypto-etl .+)$", STACK_UP.read_text(), re.M
    )
    assert found is not None
    argv = found.group(1).split()
    assert _parse_cli(argv[1:], STACK_UP.name).command == "provision-metabase"


# ---- deploy_helpers/etl-entrypoint.sh -----------------------------------------


def _entrypoint_env(bin_dir: Path, tmp_path: Path, **extra: str) -> dict[str, str]:
    venv_bin = Path(sys.executable).parent
    return {
        "PATH": f"{bin_dir}{os.pathsep}{venv_bin}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "ARGV_LOG": str(tmp_path / "argv.jsonl"),
        "ETL_READY_FILE": str(tmp_path / "ready"),
        # No defaults file: only what the container's environment says.
        "CRYPTO_ETL_ENV_FILE": str(tmp_path / "no-env-file"),
        **extra,
    }


def test_entrypoint_script_retries_only_the_transient_warehouse_code() -> None:
    assert f"TRANSIENT_WAREHOUSE_EXIT={TransientWarehouseError.exit_code}" in (
        ENTRYPOINT.read_text()
    )


def test_entrypoint_retries_an_unreachable_warehouse_until_the_deadline(
    tmp_path: Path,
) -> None:
    env = _entrypoint_env(
        tmp_path,
        tmp_path,
        WAREHOUSE_HOST="127.0.0.1",
        WAREHOUSE_PORT=str(free_port()),  # nothing listens there
        WAREHOUSE_DB="crypto",
        WAREHOUSE_USER="etl",
        WAREHOUSE_PASSWORD="not-used",
        WAREHOUSE_WAIT_SECONDS="3",
    )
    started = time.monotonic()
    result = subprocess.run(
        ["bash", str(ENTRYPOINT)], env=env, capture_output=True, text=True
    )
    elapsed = time.monotonic() - started
    assert result.returncode == TransientWarehouseError.exit_code == 6
    assert "warehouse not ready after 3s" in result.stderr
    assert "error: cannot connect to the warehouse etl@127.0.0.1:" in result.stderr
    # bash's SECONDS counts whole seconds, so the deadline may come ~1 s early.
    assert 2 <= elapsed < 30
    assert not (tmp_path / "ready").exists()


def test_entrypoint_stops_at_once_on_a_configuration_error(tmp_path: Path) -> None:
    env = _entrypoint_env(tmp_path, tmp_path, WAREHOUSE_WAIT_SECONDS="60")
    started = time.monotonic()
    result = subprocess.run(
        ["bash", str(ENTRYPOINT)], env=env, capture_output=True, text=True
    )
    assert result.returncode == ConfigError.exit_code
    assert "missing settings" in result.stderr
    assert time.monotonic() - started < 30


def test_entrypoint_stops_at_once_on_a_refused_login(
    env: dict[str, str], tmp_path: Path
) -> None:
    wait_seconds = 60
    settings = {**env, "WAREHOUSE_PASSWORD": "wrong-password-5521"}
    started = time.monotonic()
    result = subprocess.run(
        ["bash", str(ENTRYPOINT)],
        env=_entrypoint_env(
            tmp_path, tmp_path, **settings, WAREHOUSE_WAIT_SECONDS=str(wait_seconds)
        ),
        capture_output=True,
        text=True,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == WarehouseLoginRefused.exit_code == 11
    assert result.stderr.splitlines()[0] == (
        "etl-entrypoint: crypto-etl migrate failed (exit 11); not retrying:"
    )
    assert "refused the login" in result.stderr
    assert "check WAREHOUSE_USER and WAREHOUSE_PASSWORD" in result.stderr
    assert "wrong-password-5521" not in result.stderr
    assert "not ready after" not in result.stderr
    # One attempt, not a wait for the deadline (a retry loop would take 60 s).
    assert elapsed < wait_seconds / 2
    assert not (tmp_path / "ready").exists()


def _run_entrypoint_on(
    db: Any, tmp_path: Path, **extra: str
) -> subprocess.CompletedProcess[str]:
    """Run the entrypoint against ``db``, a stand-in supercronic, its crontab in
    ``tmp_path``."""
    _stand_in(tmp_path, "supercronic")
    env = _entrypoint_env(
        tmp_path,
        tmp_path,
        WAREHOUSE_HOST=db.host,
        WAREHOUSE_PORT=str(db.port),
        WAREHOUSE_DB=db.dbname,
        WAREHOUSE_USER=db.user,
        WAREHOUSE_PASSWORD=db.password.reveal(),
        CRYPTO_ETL_CRONTAB=str(tmp_path / "crontab"),
        **extra,
    )
    return subprocess.run(
        ["bash", str(ENTRYPOINT)], env=env, capture_output=True, text=True
    )


def test_entrypoint_migrates_then_hands_over_to_supercronic(
    db: Any, tmp_path: Path
) -> None:
    result = _run_entrypoint_on(db, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "the schema is up to date" in result.stdout
    assert (tmp_path / "ready").exists()
    assert _recorded_argvs(tmp_path / "argv.jsonl") == [[str(tmp_path / "crontab")]]
    # No runs yet and the default budget: the shipped schedule.
    assert (tmp_path / "crontab").read_text() == CRONTAB.read_text()


def test_entrypoint_writes_the_schedule_for_the_stacks_budget(
    db: Any, tmp_path: Path
) -> None:
    result = _run_entrypoint_on(db, tmp_path, COINCAP_MONTHLY_CREDITS="225000")
    assert result.returncode == 0, result.stderr
    written = (tmp_path / "crontab").read_text()
    assert written.startswith("# crypto-etl schedule for a budget of 225,000")
    assert "*/5 * * * * crypto-etl run exchanges;" in written


def test_compose_gives_the_etl_service_its_credit_budget(
    services: dict[str, Any],
) -> None:
    environment = services["etl"]["environment"]
    assert environment["COINCAP_MONTHLY_CREDITS"] == "${COINCAP_MONTHLY_CREDITS:-4000}"
    assert environment["CRYPTO_ETL_CRONTAB"] == "/app/.data/crontab"


def test_entrypoint_runs_any_other_command_as_given(tmp_path: Path) -> None:
    env = _entrypoint_env(tmp_path, tmp_path)
    result = subprocess.run(
        ["bash", str(ENTRYPOINT), "printf", "%s|", "a b", "c"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "a b|c|"
    assert not (tmp_path / "ready").exists()
