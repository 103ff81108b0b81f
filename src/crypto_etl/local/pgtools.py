"""Running PostgreSQL's server tools: finding them, and running them as the right user.

PostgreSQL refuses to run as root: when we are root, ``initdb`` and
``pg_ctl`` run as the ``postgres`` system account through ``runuser``, files
they need are handed to that account, and every ancestor of the data
directory must be traversable by it. ``find_pg_bin`` is the public face
(the test suite asks it whether PostgreSQL is installed); the underscored
helpers serve ``local.cluster`` only.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import pwd
import shutil
import socket
import stat

# Runs PostgreSQL's own tools by absolute path, with argument lists (no shell).
import subprocess  # nosec B404
from pathlib import Path


from crypto_etl.errors import LocalWarehouseError

SERVER_TOOLS = ("initdb", "pg_ctl", "postgres")
PG_LIB_ROOT = Path("/usr/lib/postgresql")
SERVICE_ACCOUNT = "postgres"


def find_pg_bin(
    *, search_path: str | None = None, lib_root: Path = PG_LIB_ROOT
) -> Path:
    """Find the directory holding PostgreSQL's server binaries.

    Takes the PATH to search (default: this process's) and the root of Debian's
    versioned installs. Returns the directory of ``initdb`` on the PATH (symlinks
    resolved) if it also holds ``pg_ctl`` and ``postgres``, else the highest
    version's ``<lib_root>/<version>/bin`` that holds all three.
    Raises LocalWarehouseError, saying how to install PostgreSQL, if none does.
    """
    candidates: list[Path] = []
    on_path = shutil.which("initdb", path=search_path)
    if on_path is not None:
        candidates.append(Path(on_path).resolve().parent)
    candidates.extend(sorted(lib_root.glob("*/bin"), key=_version_key, reverse=True))
    for bin_dir in candidates:
        if all(os.access(bin_dir / tool, os.X_OK) for tool in SERVER_TOOLS):
            return bin_dir
    raise LocalWarehouseError(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found on PATH "
        f"or under {lib_root}/*/bin: install PostgreSQL "
        "(e.g. `apt-get install postgresql`)"
    )


def _version_key(bin_dir: Path) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in bin_dir.parent.name.split("."))
    except ValueError:
        return (-1,)


def _service_account() -> pwd.struct_passwd | None:
    """The account to run initdb/pg_ctl as: postgres if we are root, else us (None)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVICE_ACCOUNT)
    except KeyError:
        raise LocalWarehouseError(
            f"PostgreSQL refuses to run as root and there is no "
            f"{SERVICE_ACCOUNT!r} account to run it as: install PostgreSQL "
            "(e.g. `apt-get install postgresql`, which creates it) or run as "
            "another user"
        ) from None


def _tool_command(
    bin_dir: Path, tool: str, account: pwd.struct_passwd | None
) -> list[str]:
    if account is None:
        return [str(bin_dir / tool)]
    runuser = shutil.which("runuser")
    if runuser is None:
        raise LocalWarehouseError(
            "running as root needs `runuser` (util-linux) to start PostgreSQL as "
            f"{account.pw_name!r}"
        )
    return [runuser, "-u", account.pw_name, "--", str(bin_dir / tool)]


def _run(command: list[str], what: str, *, timeout: float) -> None:
    """Run ``command``; raise LocalWarehouseError with its stderr if it fails."""
    # PG* variables (PGDATA, PGPORT...) of the caller must not steer our cluster.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    try:
        # A PostgreSQL tool by absolute path, an argument list, no shell.
        done = subprocess.run(  # nosec B603
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=env,
            cwd="/",  # the service account may not be able to enter our cwd
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise LocalWarehouseError(f"{what} did not finish within {timeout} s") from None
    except OSError as exc:
        raise LocalWarehouseError(f"cannot run {what}: {exc}") from exc
    if done.returncode != 0:
        output = (done.stderr.strip() or done.stdout.strip()) or "(no output)"
        raise LocalWarehouseError(f"{what} failed (exit {done.returncode}): {output}")


def _give(path: Path, account: pwd.struct_passwd | None) -> None:
    if account is not None:
        os.chown(path, account.pw_uid, account.pw_gid)


def _write_file(path: Path, text: str, account: pwd.struct_passwd | None) -> None:
    path.write_text(text)
    path.chmod(0o600)
    _give(path, account)


def _can_traverse(path: Path, account: pwd.struct_passwd) -> bool:
    st = path.stat()
    if st.st_uid == account.pw_uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid in os.getgrouplist(account.pw_name, account.pw_gid):
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def _check_traversable(data_dir: Path, account: pwd.struct_passwd) -> None:
    for ancestor in reversed(data_dir.parents):
        if not _can_traverse(ancestor, account):
            raise LocalWarehouseError(
                f"PostgreSQL runs as {account.pw_name!r}, which cannot enter "
                f"{ancestor} on the way to {data_dir}: allow it "
                f"(chmod o+x {ancestor}) or choose another data directory"
            )


def _is_postgres_process(pid: int) -> bool:
    """True if ``pid`` is a live postgres process (not a zombie, not a reused pid)."""
    # A zombie's cmdline is empty; the postmaster's names its binary.
    try:
        return b"postgres" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _wildcard(host: str) -> bool:
    # Recognises a wildcard address (to refuse or warn), binds nothing.
    return host in ("*", "0.0.0.0", "::", "")  # nosec B104


def _client_host(host: str) -> str:
    """Where a client reaches a server listening on ``host``."""
    return "127.0.0.1" if _wildcard(host) else host


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _port_taken(host: str, port: int) -> bool:
    """True if another process listens on ``port`` at an address of ``host``."""
    try:
        addresses = socket.getaddrinfo(
            None if _wildcard(host) else host,
            port,
            type=socket.SOCK_STREAM,
            flags=socket.AI_PASSIVE,
        )
    except socket.gaierror as exc:
        raise LocalWarehouseError(f"cannot resolve host {host!r}: {exc}") from exc
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            # As PostgreSQL does, so that TIME_WAIT leftovers do not count.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return True
    return False
