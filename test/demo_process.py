"""Start `crypto-etl demo` as a user would: its own process, no API key."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import IO

from conftest import free_port


def start_demo(
    every: float, stderr: int | IO[str] = subprocess.PIPE
) -> tuple[subprocess.Popen[str], int, Path]:
    """Start the demo in a fresh directory under /tmp.

    Returns the process (stdout piped, text), the dashboard's port and the
    demo's data directory. The caller stops it (SIGINT) and waits.
    """
    # Not under pytest's tmp dir: its parents are private to root, and the
    # cluster runs as the postgres user when the suite runs as root.
    root = Path(tempfile.mkdtemp(prefix="crypto-etl-demo-", dir="/tmp"))
    root.chmod(0o755)
    env = {
        **os.environ,
        "WAREHOUSE_HOST": "127.0.0.1",
        "WAREHOUSE_PORT": "1",  # replaced by --warehouse-port
        "WAREHOUSE_DB": "coincap",
        "WAREHOUSE_USER": "demo_etl",
        "WAREHOUSE_PASSWORD": "demo-password",
        "WAREHOUSE_READER_USER": "demo_reader",
        "WAREHOUSE_READER_PASSWORD": "demo-reader-password",
        "CRYPTO_ETL_ENV_FILE": str(root / "no-env-file"),
    }
    env.pop("COINCAP_API_KEY", None)
    port = free_port()
    data_dir = root / "demo"
    demo = subprocess.Popen(
        [sys.executable, "-m", "crypto_etl.cli", "demo", "--data-dir", str(data_dir)]
        + ["--warehouse-port", str(free_port()), "--port", str(port)]
        + ["--every", str(every)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    return demo, port, data_dir
