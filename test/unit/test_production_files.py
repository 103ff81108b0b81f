"""The production path, checked without Docker: least privilege in the stack,
the pinned images, the deploy helpers run for real against stand-in ssh/scp,
and the systemd units against the crontab they stand in for.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from crypto_etl.config import read_env_file

from conftest import skip_or_fail

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_FILE = REPO / "env"
CRONTAB = REPO / "scheduler" / "crontab"
SYSTEMD = REPO / "scheduler" / "systemd"
DOCKERFILE = REPO / "containers" / "etl" / "Dockerfile"
SEND_CODE = REPO / "deploy_helpers" / "send_code_to_prod.sh"
INSTALL_DOCKER = REPO / "deploy_helpers" / "install_docker.sh"
INTERPOLATION = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::-([^}]*))?\}")
# Variables that only steer Compose itself, never a container's settings.
COMPOSE_ONLY = {"WAREHOUSE_HOST_PORT"}


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    found: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text("utf-8"))["services"]
    return found


def _environment(service: dict[str, Any]) -> dict[str, str]:
    return {k: "" if v is None else str(v) for k, v in service["environment"].items()}


# ---- least privilege --------------------------------------------------------


def test_no_service_is_handed_the_whole_env_file(services: dict[str, Any]) -> None:
    for name, service in services.items():
        assert "env_file" not in service, name


def test_metabase_holds_no_etl_password_and_has_an_encryption_key(
    services: dict[str, Any],
) -> None:
    environment = _environment(services["metabase"])
    assert not {n for n in environment if n.startswith(("WAREHOUSE_", "COINCAP_"))}
    assert "METABASE_ADMIN_PASSWORD" not in environment
    key = INTERPOLATION.fullmatch(environment["MB_ENCRYPTION_SECRET_KEY"])
    assert key is not None, "the key comes from .env or the shell"
    assert len(key.group(2) or "") >= 16, "Metabase wants 16 characters or more"
    etl_password = read_env_file(ENV_FILE)["WAREHOUSE_PASSWORD"]
    assert etl_password not in json.dumps(services["metabase"])


def test_each_service_receives_only_the_variables_it_reads(
    services: dict[str, Any],
) -> None:
    address = {"WAREHOUSE_HOST", "WAREHOUSE_PORT", "WAREHOUSE_DB"}
    reader = {"WAREHOUSE_READER_USER", "WAREHOUSE_READER_PASSWORD"}
    owner = {"WAREHOUSE_USER", "WAREHOUSE_PASSWORD"}
    dashboard_own = {"DASHBOARD_ALLOWED_HOSTS"}
    assert set(_environment(services["dashboard"])) == address | reader | dashboard_own
    assert (
        set(_environment(services["warehouse"]))
        == {"WAREHOUSE_DB", "MB_DB_PASS"} | owner
    )
    assert set(_environment(services["metabase"])) == {
        "MB_DB_TYPE",
        "MB_DB_HOST",
        "MB_DB_PORT",
        "MB_DB_DBNAME",
        "MB_DB_USER",
        "MB_DB_PASS",
        "MB_ENCRYPTION_SECRET_KEY",
    }
    etl = set(_environment(services["etl"]))
    assert address | owner | reader | {"COINCAP_API_KEY"} <= etl
    assert not {n for n in etl if n.startswith("MB_")}


def test_containers_reach_each_other_by_service_name(services: dict[str, Any]) -> None:
    for name in ("etl", "dashboard"):
        environment = _environment(services[name])
        assert environment["WAREHOUSE_HOST"] == "warehouse", name
        assert environment["WAREHOUSE_PORT"] == "5432", name
    assert _environment(services["etl"])["METABASE_URL"] == "http://metabase:3000"
    assert _environment(services["metabase"])["MB_DB_HOST"] == "warehouse"


def test_the_api_key_is_never_given_a_default(services: dict[str, Any]) -> None:
    assert _environment(services["etl"])["COINCAP_API_KEY"] == "${COINCAP_API_KEY:-}"


def test_compose_defaults_are_the_env_files_values() -> None:
    values = read_env_file(ENV_FILE)
    seen = INTERPOLATION.findall(COMPOSE_FILE.read_text("utf-8"))
    assert seen
    for name, default in seen:
        if name in COMPOSE_ONLY or name == "COINCAP_API_KEY":
            continue
        assert name in values, f"{name} is not documented in env"
        assert default == values[name], f"{name}: compose {default!r} vs env"


def _env_file_services() -> dict[str, set[str]]:
    """Each variable of ``env`` -> the services its comment block names."""
    named: dict[str, set[str]] = {}
    block: list[str] = []
    last_was_setting = False
    for line in ENV_FILE.read_text("utf-8").splitlines():
        if line.startswith("#"):
            if last_was_setting:
                block = []
            block.append(line)
            last_was_setting = False
        elif "=" in line:
            tags = re.findall(r"\[([^\]]+)\]", " ".join(block))
            named[line.partition("=")[0]] = set(re.findall(r"[a-z]+", " ".join(tags)))
            last_was_setting = True
    return named


def test_the_env_file_says_which_service_reads_each_variable(
    services: dict[str, Any],
) -> None:
    documented = _env_file_services()
    for service_name, service in services.items():
        for value in _environment(service).values():
            for name, _ in INTERPOLATION.findall(value):
                if name in documented:
                    assert (
                        service_name in documented[name]
                    ), f"env does not say that {service_name} reads {name}"


def test_every_service_has_a_health_check(services: dict[str, Any]) -> None:
    for name, service in services.items():
        if name == "etl":  # the image's HEALTHCHECK: migrations applied
            assert re.search(r"^HEALTHCHECK ", DOCKERFILE.read_text("utf-8"), re.M)
        else:
            assert service["healthcheck"]["test"], name


def _image_comment(image_prefix: str) -> str:
    lines = COMPOSE_FILE.read_text("utf-8").splitlines()
    (at,) = [i for i, line in enumerate(lines) if f"image: {image_prefix}" in line]
    comment = []
    for line in reversed(lines[:at]):
        if not line.strip().startswith("#"):
            break
        comment.append(line)
    return " ".join(comment)


def test_images_are_the_newest_patch_of_their_line_with_how_to_upgrade(
    services: dict[str, Any],
) -> None:
    assert re.fullmatch(
        r"metabase/metabase:v0\.64\.(\d+)(\.\d+)?", services["metabase"]["image"]
    )
    patch = int(services["metabase"]["image"].split(".")[2])
    assert patch >= 6, "0.64.6 and later carry the security fixes"
    postgres = re.fullmatch(
        r"postgres:15\.(\d+)-bookworm", services["warehouse"]["image"]
    )
    assert postgres is not None and int(postgres.group(1)) >= 19
    assert "Upgrading" in _image_comment("postgres:")
    assert "Upgrading" in _image_comment("metabase/metabase:")


def test_env_is_never_committed_nor_built_into_the_image() -> None:
    assert ".env" in (REPO / ".gitignore").read_text("utf-8").splitlines()
    assert ".env" in (REPO / ".dockerignore").read_text("utf-8").splitlines()


# ---- deploy_helpers/send_code_to_prod.sh -------------------------------------

# Stand-ins for scp and ssh: log their argv; scp copies to $REMOTE_HOME, ssh
# runs its command there with /bin/sh, as a real server's login shell would.
STAND_IN = f"""#!{sys.executable}
import json, os, shutil, subprocess, sys
with open(os.environ["ARGV_LOG"], "a", encoding="utf-8") as log:
    log.write(json.dumps([os.path.basename(sys.argv[0]), *sys.argv[1:]]) + "\\n")
home = os.environ["REMOTE_HOME"]
if os.path.basename(sys.argv[0]) == "scp":
    source, target = sys.argv[-2:]
    shutil.copy(source, os.path.join(home, target.partition(":")[2]))
else:
    sys.exit(subprocess.run(["/bin/sh", "-c", sys.argv[-1]], cwd=home).returncode)
"""


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), *args],
        check=True,
        capture_output=True,
        env={
            **os.environ,
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@e",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@e",
        },
    )


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A git checkout holding the script, with local state beside the commit."""
    repo = tmp_path / "checkout"
    (repo / "deploy_helpers").mkdir(parents=True)
    shutil.copy(SEND_CODE, repo / "deploy_helpers" / SEND_CODE.name)
    (repo / "README.md").write_text("committed\n")
    (repo / ".gitignore").write_text(".env\n.venv/\n.data/\n")
    _git(repo, "init", "--quiet")
    _git(repo, "add", ".")
    _git(repo, "commit", "--quiet", "-m", "code")
    (repo / ".env").write_text("WAREHOUSE_PASSWORD=real-secret\n")
    (repo / ".venv").mkdir()
    (repo / ".data").mkdir()
    (repo / ".data" / "dump").write_text("local data\n")
    (repo / "README.md").write_text("edited, not committed\n")
    return repo


def _send(repo: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    bin_dir, home = tmp_path / "bin", tmp_path / "remote-home"
    bin_dir.mkdir(exist_ok=True)
    home.mkdir(exist_ok=True)
    for name in ("ssh", "scp"):
        (bin_dir / name).write_text(STAND_IN)
        (bin_dir / name).chmod(0o755)
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "ARGV_LOG": str(tmp_path / "argv.jsonl"),
        "REMOTE_HOME": str(home),
        "HOME": str(tmp_path),
    }
    script = repo / "deploy_helpers" / SEND_CODE.name
    return subprocess.run([str(script), *args], env=env, capture_output=True, text=True)


def _calls(tmp_path: Path) -> list[list[str]]:
    log = tmp_path / "argv.jsonl"
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


@pytest.fixture
def pem(tmp_path: Path) -> Path:
    key = tmp_path / "prod.pem"
    key.write_text("not a real key\n")
    key.chmod(0o600)
    return key


@pytest.mark.parametrize(
    "args",
    [(), ("only-one",), ("a", "b", "c")],
    ids=["none", "one", "three"],
)
def test_send_code_refuses_a_wrong_number_of_arguments(
    checkout: Path, tmp_path: Path, args: tuple[str, ...]
) -> None:
    result = _send(checkout, tmp_path, *args)
    assert result.returncode == 2
    assert "usage: send_code_to_prod.sh PEM HOST" in result.stderr
    assert _calls(tmp_path) == []


def test_send_code_refuses_a_key_file_that_does_not_exist(
    checkout: Path, tmp_path: Path
) -> None:
    result = _send(checkout, tmp_path, str(tmp_path / "missing.pem"), "admin@host")
    assert result.returncode == 2
    assert "no readable key file" in result.stderr
    assert _calls(tmp_path) == []


@pytest.mark.parametrize(
    "host", ["-oProxyCommand=touch /tmp/x", "admin@host:/etc", "two words", "", "@host"]
)
def test_send_code_refuses_a_host_ssh_would_misread(
    checkout: Path, tmp_path: Path, pem: Path, host: str
) -> None:
    result = _send(checkout, tmp_path, str(pem), host)
    assert result.returncode == 2
    assert "is not [user@]host" in result.stderr
    assert _calls(tmp_path) == []


def test_send_code_ships_the_committed_tree_and_no_local_state(
    checkout: Path, tmp_path: Path, pem: Path
) -> None:
    result = _send(checkout, tmp_path, str(pem), "admin@203.0.113.7")
    assert result.returncode == 0, result.stderr
    assert "uncommitted changes are not shipped" in result.stderr
    shipped = tmp_path / "remote-home" / "crypto_etl_dashboard"
    names = {str(p.relative_to(shipped)) for p in shipped.rglob("*")}
    assert names == {
        "README.md",
        ".gitignore",
        "deploy_helpers",
        f"deploy_helpers/{SEND_CODE.name}",
    }
    assert (shipped / "README.md").read_text() == "committed\n"
    # The archive was removed on both ends; the key and the host were used.
    assert sorted(p.name for p in (tmp_path / "remote-home").iterdir()) == [
        "crypto_etl_dashboard"
    ]
    scp, ssh = _calls(tmp_path)
    assert scp[0] == "scp" and ssh[0] == "ssh"
    for call in (scp, ssh):
        assert call[call.index("-i") + 1] == str(pem)
    assert ssh[-2] == "admin@203.0.113.7"


def test_send_code_keeps_the_servers_own_env_file(
    checkout: Path, tmp_path: Path, pem: Path
) -> None:
    shipped = tmp_path / "remote-home" / "crypto_etl_dashboard"
    shipped.mkdir(parents=True)
    (shipped / ".env").write_text("the server's secrets\n")
    assert _send(checkout, tmp_path, str(pem), "prod-host").returncode == 0
    assert (shipped / ".env").read_text() == "the server's secrets\n"


def test_send_code_refuses_to_ship_a_tracked_env_file(
    checkout: Path, tmp_path: Path, pem: Path
) -> None:
    _git(checkout, "add", "--force", ".env")
    _git(checkout, "commit", "--quiet", "-m", "oops")
    result = _send(checkout, tmp_path, str(pem), "prod-host")
    assert result.returncode == 1
    assert "refusing to ship local state tracked by git" in result.stderr
    assert ".env" in result.stderr
    assert _calls(tmp_path) == []


# ---- deploy_helpers/install_docker.sh -----------------------------------------


def test_install_docker_refuses_arguments() -> None:
    result = subprocess.run(
        [str(INSTALL_DOCKER), "now"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "takes no arguments" in result.stderr and "usage:" in result.stderr


def test_install_docker_explains_itself_with_help() -> None:
    result = subprocess.run(
        [str(INSTALL_DOCKER), "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert "Debian or Ubuntu" in result.stdout


def test_install_docker_installs_engine_and_compose_for_this_architecture() -> None:
    text = INSTALL_DOCKER.read_text("utf-8")
    assert "arch=$(dpkg --print-architecture)" in text
    assert (
        "deb [arch=$arch signed-by=$KEYRING] https://download.docker.com/linux/$distro"
        in text
    )
    for package in (
        "docker-ce",
        "docker-ce-cli",
        "containerd.io",
        "docker-compose-plugin",
    ):
        assert re.search(rf"\b{re.escape(package)}\b", text), package


# ---- scheduler/systemd ---------------------------------------------------------


def _crontab_jobs() -> list[tuple[str, str]]:
    jobs = []
    for line in CRONTAB.read_text("utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            fields = line.split(maxsplit=5)
            jobs.append((" ".join(fields[:5]), fields[5]))
    return jobs


def _on_calendar(cron: str) -> str:
    """The systemd OnCalendar (UTC) of the cron schedules the crontab uses."""
    minute, hour, *rest = cron.split()
    assert rest == ["*", "*", "*"], f"translate {cron!r} by hand"

    def part(field: str) -> str:
        if field == "*":
            return "*"
        if field.startswith("*/"):
            return f"00/{field[2:]}"
        return f"{int(field):02d}"

    return f"*-*-* {part(hour)}:{part(minute)}:00 UTC"


def _unit(path: Path) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in path.read_text("utf-8").splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


def _systemd_jobs() -> list[tuple[str, str]]:
    jobs = []
    for timer in sorted(SYSTEMD.glob("*.timer")):
        service = _unit(timer.with_suffix(".service"))
        argv = shlex.split(service["ExecStart"][0])
        assert argv[:2] == ["/bin/sh", "-c"], timer.name
        # systemd's escapes: %% is a literal %, $$ a literal $.
        command = argv[2].replace("%%", "%").replace("$$", "$")
        jobs.append((_unit(timer)["OnCalendar"][0], command))
    return jobs


def test_systemd_timers_run_the_crontabs_jobs_on_its_schedule() -> None:
    from_crontab = sorted(
        (_on_calendar(schedule), command.replace("\\%", "%"))
        for schedule, command in _crontab_jobs()
    )
    assert sorted(_systemd_jobs()) == from_crontab


def test_systemd_services_read_only_the_root_only_settings_file() -> None:
    for service in SYSTEMD.glob("*.service"):
        unit = _unit(service)
        assert unit["User"] != ["root"] and unit["User"], service.name
        assert unit["EnvironmentFile"] == ["/etc/crypto-etl/env"], service.name
        assert "CRYPTO_ETL_ENV_FILE=/dev/null" in unit["Environment"], service.name
        assert unit["Type"] == ["oneshot"], service.name


def test_systemd_units_pass_systemd_analyze_verify() -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        skip_or_fail("systemd-analyze is not installed (apt-get install systemd)")
    units = sorted(str(p) for p in SYSTEMD.glob("crypto-etl-*"))
    result = subprocess.run([analyze, "verify", *units], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Unknown" not in result.stderr, result.stderr


def test_the_crontab_prunes_daily_with_a_90_day_window() -> None:
    prunes = [(s, c) for s, c in _crontab_jobs() if "crypto-etl prune" in c]
    assert len(prunes) == 1
    schedule, command = prunes[0]
    assert schedule.endswith(" * * *") and schedule.split()[0].isdigit()
    assert command == "crypto-etl prune --keep 90d || [ $? -eq 10 ]"
