"""What the benchmarks share: a throwaway warehouse, measured commands, a table.

The warehouse is the project's own ``LocalWarehouse`` in a fresh /tmp dir on
a free port, with ``fast=False`` (fsync and synchronous commit on, as a real
warehouse runs), migrated with ``crypto_etl.warehouse.connection.migrate``; it is
stopped and deleted when the block ends. A measured command runs in a
subprocess whose peak RSS is its own ``ru_maxrss``, so it counts nothing of
the harness or of the simulator serving it.
"""

from __future__ import annotations

import os
import resource
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from crypto_etl.config import Secret, WarehouseSettings
from crypto_etl.local.cluster import LocalWarehouse
from crypto_etl.warehouse.connection import WarehouseConnection
from crypto_etl.warehouse.migrations import migrate

BENCH_USER = "etl_bench"
BENCH_DB = "crypto_bench"
MB = 1024 * 1024


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def throwaway_warehouse() -> Iterator[WarehouseSettings]:
    """Start a durable (``fast=False``) migrated PostgreSQL; yield how to reach it.

    Raises:
        LocalWarehouseError: PostgreSQL is missing or fails to start.
    """
    # Not under a private temp dir: the server runs as `postgres` when we are root.
    root = Path(tempfile.mkdtemp(prefix="crypto-etl-bench-", dir="/tmp"))
    root.chmod(0o755)
    password = secrets.token_urlsafe(16)
    cluster = LocalWarehouse(
        root / "data",
        port=free_port(),
        dbname=BENCH_DB,
        user=BENCH_USER,
        password=password,
        fast=False,
    )
    try:
        state = cluster.start()
        settings = WarehouseSettings(
            host="127.0.0.1",
            port=state.port,
            dbname=BENCH_DB,
            user=BENCH_USER,
            password=Secret(password),
        )
        with WarehouseConnection(settings) as warehouse:
            migrate(warehouse)
        yield settings
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


def crypto_etl_command() -> list[str]:
    """The installed ``crypto-etl`` script of this interpreter's environment."""
    script = Path(sys.executable).parent / "crypto-etl"
    if script.exists():
        return [str(script)]
    found = shutil.which("crypto-etl")
    if found is None:
        raise SystemExit("crypto-etl is not installed: run `make setup` first")
    return [found]


def command_env(
    settings: WarehouseSettings, base_url: str, api_key: str, **extra: str
) -> dict[str, str]:
    """The environment of a measured command: this warehouse and API, no env file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WAREHOUSE_")}
    env.update(
        WAREHOUSE_HOST=settings.host,
        WAREHOUSE_PORT=str(settings.port),
        WAREHOUSE_DB=settings.dbname,
        WAREHOUSE_USER=settings.user,
        WAREHOUSE_PASSWORD=settings.password.reveal(),
        COINCAP_API_KEY=api_key,
        COINCAP_BASE_URL=base_url,
        CRYPTO_ETL_ENV_FILE="/nonexistent/crypto-etl-bench-env",
    )
    env.update(extra)
    return env


@dataclass(frozen=True)
class Measured:
    """One command run: wall seconds, its own peak RSS and CPU seconds, exit code."""

    seconds: float
    peak_rss: int
    code: int
    cpu_seconds: float = 0.0


# Linux carries a process's peak RSS across fork and exec, so a command
# started straight from this (large) harness would report at least the
# harness's size. A bare interpreter starts it instead and reports the
# command's own peak (ru_maxrss of its children, in kB) and CPU time.
_LAUNCHER = """
import resource, subprocess, sys
code = subprocess.call(sys.argv[2:])
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(sys.argv[1], "w") as out:
    out.write(f"{usage.ru_maxrss} {usage.ru_utime + usage.ru_stime}")
sys.exit(code)
"""


def run_measured(command: list[str], env: dict[str, str], log_path: Path) -> Measured:
    """Run ``command`` with ``env``, its output to ``log_path``; measure it.

    Raises:
        SystemExit: the command failed (the end of its log is shown).
    """
    peak_path = log_path.with_suffix(".peak")
    launcher = [sys.executable, "-c", _LAUNCHER, str(peak_path)]
    with open(log_path, "wb") as log:
        started = time.perf_counter()
        code = subprocess.call(
            launcher + command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        seconds = time.perf_counter() - started
    if code != 0:
        tail = log_path.read_text(errors="replace")[-3000:]
        raise SystemExit(f"{' '.join(command[:2])} exited {code}:\n{tail}")
    peak_kb, cpu = peak_path.read_text().split()
    return Measured(seconds, int(peak_kb) * 1024, code, float(cpu))


def loaded(settings: WarehouseSettings) -> tuple[int, int]:
    """Return the points in ``asset_history`` and the checkpointed windows."""
    with WarehouseConnection(settings) as warehouse:
        with warehouse.managed_cursor() as cur:
            cur.execute(
                "SELECT (SELECT count(*) FROM coincap.asset_history),"
                " (SELECT count(*) FROM coincap.backfill_windows)"
            )
            row = cur.fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def server_info(settings: WarehouseSettings) -> str:
    """Describe the server: version and the settings that decide durability."""
    with WarehouseConnection(settings) as warehouse:
        with warehouse.managed_cursor() as cur:
            cur.execute(
                "SELECT current_setting('server_version'), current_setting('fsync'),"
                " current_setting('synchronous_commit'),"
                " current_setting('full_page_writes')"
            )
            row = cur.fetchone()
    if row is None:
        return "PostgreSQL"
    version, fsync, sync_commit, full_pages = row
    return (
        f"PostgreSQL {version} (fsync {fsync}, synchronous_commit {sync_commit}, "
        f"full_page_writes {full_pages})"
    )


def _status_kb(field: str) -> int:
    """Read one ``kB`` field (VmRSS, VmHWM) of /proc/self/status."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def rss_bytes() -> int:
    """This process's resident set size now."""
    return _status_kb("VmRSS") * 1024


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) of this process.

    Returns False when the kernel does not allow it; ``peak_rss_bytes`` then
    reports the peak since the process started.
    """
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
    except OSError:
        return False
    return True


def peak_rss_bytes() -> int:
    """The peak RSS since ``reset_peak_rss`` (or since the process started)."""
    try:
        return _status_kb("VmHWM") * 1024
    except (OSError, RuntimeError):
        # ru_maxrss is in kB on Linux.
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Render a GitHub markdown table, numbers right-aligned."""
    aligned = [
        "---:" if rows and _numeric(rows[0][i]) else "---" for i in range(len(headers))
    ]
    lines = [headers, aligned, *rows]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)


def _numeric(cell: str) -> bool:
    return cell.replace(",", "").replace(".", "").strip("×% ").isdigit()
