"""A fresh `make demo` in Chromium: from its first minute every chart draws a
real line (a day of simulated past is loaded before it serves) and every link
on the page answers. ``make screenshot`` takes the README's picture here, so
it shows what a new user sees."""

import signal
import subprocess
import time

import pytest
import requests

from crypto_etl.dashboard.definition import load_definition

from demo_process import start_demo
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
    demo, port, _ = start_demo(every=30, stderr=subprocess.DEVNULL)
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
