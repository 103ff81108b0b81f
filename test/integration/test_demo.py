"""`make demo` end to end: one command, offline, no key; leaves no process behind."""

import signal
import time

import requests

from demo_process import start_demo


def test_demo_serves_a_dashboard_with_data_then_stops_cleanly(pg_bin):
    # pg_bin: the demo starts its own cluster from the system's PostgreSQL.
    demo, port, data_dir = start_demo(every=5)
    try:
        lines = []
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            line = demo.stdout.readline() if demo.stdout else ""
            if not line:
                break
            lines.append(line)
            if line.startswith("dashboard: "):
                break
        assert lines and lines[-1] == f"dashboard: http://127.0.0.1:{port}/\n", lines
        charts = requests.get(
            f"http://127.0.0.1:{port}/api/charts/top_exchanges", timeout=10
        ).json()
        assert charts["row_count"] > 0
        history = requests.get(
            f"http://127.0.0.1:{port}/api/charts/price_history",
            params={"asset": "bitcoin", "since": "7d"},
            timeout=10,
        ).json()
        assert history["row_count"] > 0
    finally:
        demo.send_signal(signal.SIGINT)
        code = demo.wait(timeout=60)
    # Ctrl-C is how a user stops the demo, not an error: the dashboard's
    # serve_forever ends on it and the demo exits 0 once it has cleaned up.
    assert code == 0, demo.stderr.read() if demo.stderr else ""
    assert not (data_dir / "postmaster.pid").exists()
