"""A fresh `make demo` in Chromium: from its first minute every chart draws a
real line (a day of simulated past is loaded before it serves) and every link
on the page answers. ``make screenshot`` takes the README's picture here, so
it shows what a new user sees."""

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests

from crypto_etl.dashboard.definition import load_definition

from conftest import free_port
from test_dashboard_browser import (  # noqa: F401  (fixtures)
    PNG_SIGNATURE,
    Page,
    browser,
    card_states,
    screenshot_file,
)

DEFINITION = load_definition()
# What "a real line" needs at the demo's start: hourly points over the warm
# start's 24 hours, per exchange for the share chart, a week of hourly prices.
MIN_ROWS = {"total_volume": 20, "share_over_time": 8 * 20, "price_history": 24 * 6}


@pytest.fixture(scope="module")
def demo_url(pg_bin):
    # pg_bin: the demo starts its own cluster from the system's PostgreSQL.
    root = Path(tempfile.mkdtemp(prefix="crypto-etl-demo-browser-", dir="/tmp"))
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
    demo = subprocess.Popen(
        [sys.executable, "-m", "crypto_etl.cli", "demo"]
        + ["--data-dir", str(root / "demo"), "--warehouse-port", str(free_port())]
        + ["--port", str(port), "--every", "30"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert demo.stdout is not None
        lines = []
        for line in demo.stdout:
            lines.append(line)
            if line.startswith("dashboard: "):
                break
        assert lines[-1] == f"dashboard: http://127.0.0.1:{port}/\n", lines
        yield f"http://127.0.0.1:{port}/", time.monotonic()
    finally:
        demo.send_signal(signal.SIGINT)
        demo.wait(timeout=60)


def test_a_fresh_demo_draws_every_chart_with_a_line(
    browser, demo_url, screenshot_file  # noqa: F811
):
    url, served_at = demo_url
    page = Page(browser)
    page.open(url)
    states = card_states(page)
    assert time.monotonic() - served_at < 60  # within the demo's first minute
    for chart in DEFINITION.charts:
        state, rows, _ = states[chart.id]
        assert state == "ok" and rows >= MIN_ROWS.get(chart.id, 1), (chart.id, rows)
    health = page.card("pipeline_health").inner_text()
    assert "failed" not in health
    assert page.console_errors == [] and page.page_errors == []
    screenshot_file.parent.mkdir(parents=True, exist_ok=True)
    page.page.screenshot(path=str(screenshot_file), full_page=True)
    assert screenshot_file.read_bytes().startswith(PNG_SIGNATURE)
    page.page.close()


def test_every_link_on_a_fresh_demo_page_answers(browser, demo_url):  # noqa: F811
    url, _ = demo_url
    page = Page(browser)
    hrefs = page.open(url).eval_on_selector_all("a[href]", "as => as.map(a => a.href)")
    page.page.close()
    assert any(h.endswith("/docs/") for h in hrefs)
    for href in hrefs:
        response = requests.get(href, timeout=30)
        assert response.status_code == 200, href
    docs = requests.get(url + "docs/", timeout=30).text
    assert "dbt" in docs
    manifest = requests.get(url + "docs/manifest.json", timeout=30).json()
    assert any(k.startswith("model.") for k in manifest["nodes"])
