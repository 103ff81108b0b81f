"""The built-in dashboard in a real browser (Playwright driving Debian's Chromium).

Select these with ``pytest -m browser`` (conftest marks every test that uses
the ``browser`` fixture). Without Chromium (or the playwright package) they
skip, except under ``CI=true``, where they must run. The dashboard screenshot
goes to the test's tmp_path; ``make screenshot`` saves it to docs/ instead.
"""

import dataclasses
import re
from pathlib import Path

import pytest

from crypto_etl.dashboard.definition import load_definition
from crypto_etl.dashboard.server import DashboardServer

from conftest import free_port, skip_or_fail, warehouse_settings
from dashboard_data import build_marts, loaded_warehouse, settings_for, with_reader

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DEFINITION = load_definition()
CANVAS_TYPES = {"line", "bar", "stacked_area"}
READY = 'body[data-ready="1"]'
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        skip_or_fail(f"{CHROMIUM} is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("the playwright package is not installed")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()


class Page:
    """A browser page that records console errors and uncaught exceptions."""

    def __init__(self, browser):
        self.page = browser.new_page(viewport={"width": 1400, "height": 1000})
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        self.page.on("console", self._on_console)
        self.page.on("pageerror", lambda e: self.page_errors.append(str(e)))

    def _on_console(self, message):
        if message.type == "error":
            self.console_errors.append(message.text)

    def open(self, url):
        self.page.goto(url)
        self.page.wait_for_selector(READY, timeout=15_000)
        return self.page

    def card(self, chart_id):
        return self.page.locator(f'section[data-chart="{chart_id}"]')


@pytest.fixture
def page(browser):
    p = Page(browser)
    yield p
    p.page.close()


@pytest.fixture
def screenshot_file(request, tmp_path) -> Path:
    """Where the dashboard screenshot goes: ``--screenshot PATH``, else tmp_path."""
    chosen = request.config.getoption("screenshot")
    return Path(chosen).resolve() if chosen else tmp_path / "screenshot.png"


@pytest.fixture(scope="module")
def loaded(pg_server, tmp_path_factory):
    # Half a day of market, so the screenshot's time series have some shape.
    tmp = tmp_path_factory.mktemp("b")
    with loaded_warehouse(pg_server[1], "browse", tmp, hours=12) as settings:
        yield settings


@pytest.fixture(scope="module")
def dashboard(loaded):
    with DashboardServer(loaded, port=0) as server:
        yield server


def card_states(page):
    return page.page.eval_on_selector_all(
        "section[data-chart]",
        "cards => Object.fromEntries(cards.map(c => [c.dataset.chart,"
        " [c.dataset.state, Number(c.dataset.rows), c.dataset.params]]))",
    )


def test_every_chart_draws_the_pipelines_data_without_console_errors(
    page, dashboard, screenshot_file
):
    page.open(dashboard.url)
    states = card_states(page)
    assert set(states) == {c.id for c in DEFINITION.charts}
    for chart in DEFINITION.charts:
        state, rows, _ = states[chart.id]
        assert (state, rows > 0) == ("ok", True), chart.id
        card = page.card(chart.id)
        if chart.type in CANVAS_TYPES:
            assert card.locator("canvas").count() == 1, chart.id
        else:
            assert card.locator("tbody tr").count() == rows, chart.id
    assert page.console_errors == [] and page.page_errors == []
    health = page.card("pipeline_health").inner_text()
    for pipeline in ("assets", "backfill", "exchanges", "markets", "rates"):
        assert pipeline in health
    assert "succeeded" in health
    screenshot_file.parent.mkdir(parents=True, exist_ok=True)
    page.page.screenshot(path=str(screenshot_file), full_page=True)
    assert screenshot_file.read_bytes().startswith(PNG_SIGNATURE)


def test_the_range_selector_and_filters_change_the_request_and_redraw(page, dashboard):
    p = page.open(dashboard.url)
    before = card_states(page)["price_history"]
    assert before[2] == "asset=bitcoin&since=7d"
    with p.expect_response(
        lambda r: "/api/charts/price_history?" in r.url and "since=24h" in r.url
    ) as answer:
        p.select_option('select[name="since"]', "24h")
    assert answer.value.status == 200
    p.wait_for_function(
        "() => document.querySelector('#chart-price_history').dataset.params"
        " === 'asset=bitcoin&since=24h'"
        " && !document.querySelector('#chart-price_history.loading')"
    )
    after = card_states(page)["price_history"]
    assert after[0] == "ok" and 0 < after[1] < before[1]
    assert re.search(r"[?&]since=24h", p.url)

    # The asset list comes from the marts; choosing one reloads its history.
    p.wait_for_selector(
        'select[name="asset"] option[value="ethereum"]', state="attached"
    )
    with p.expect_request(lambda r: "asset=ethereum" in r.url):
        p.select_option('select[name="asset"]', "ethereum")
    p.wait_for_function(
        "() => document.querySelector('#chart-price_history').dataset.params"
        " === 'asset=ethereum&since=24h'"
    )

    # The exchange filter narrows the total volume to one exchange.
    total_before = card_states(page)["total_volume"]
    option = p.locator('select[name="exchange"] option:not([value=""])').first
    exchange = option.get_attribute("value")
    with p.expect_request(lambda r: f"exchange={exchange}" in r.url):
        p.select_option('select[name="exchange"]', exchange)
    p.wait_for_function(
        "id => document.querySelector('#chart-total_volume').dataset.params"
        ".includes('exchange=' + id)",
        arg=exchange,
    )
    total_after = card_states(page)["total_volume"]
    assert total_after[0] == "ok" and total_after[2] != total_before[2]
    assert page.card("total_volume").locator("canvas").count() == 1
    csv = page.card("total_volume").locator("a.csv").get_attribute("href")
    assert csv.startswith("/api/charts/total_volume.csv?") and exchange in csv
    assert page.console_errors == [] and page.page_errors == []


def test_the_page_reloads_every_chart_by_itself(page, loaded):
    with DashboardServer(loaded, port=0, refresh_seconds=1) as server:
        p = page.open(server.url)
        p.wait_for_function(
            "() => Array.from(document.querySelectorAll('section[data-chart]'))"
            ".every(c => Number(c.dataset.draws) >= 3)",
            timeout=15_000,
        )
        assert {s[0] for s in card_states(page).values()} == {"ok"}
    assert page.console_errors == [] and page.page_errors == []


def test_a_warehouse_without_data_shows_the_empty_state(page, db, tmp_path):
    settings = with_reader(settings_for(db, tmp_path))
    build_marts(settings)
    with DashboardServer(settings, port=0) as server:
        page.open(server.url)
        states = card_states(page)
        for chart in DEFINITION.charts:
            if chart.id == "data_quality":
                continue  # the transform records its own data tests
            assert states[chart.id][0] == "empty", chart.id
            assert "No data yet" in page.card(chart.id).inner_text()
    assert page.console_errors == [] and page.page_errors == []


def test_missing_marts_show_the_transform_hint(page, db, tmp_path):
    settings = with_reader(settings_for(db, tmp_path))
    with DashboardServer(settings, port=0) as server:
        page.open(server.url)
        assert card_states(page)["total_volume"][0] == "not_ready"
        assert "crypto-etl transform" in page.card("total_volume").inner_text()
    assert page.page_errors == []


def test_with_the_database_down_every_card_shows_the_error(page, db, tmp_path):
    settings = with_reader(settings_for(db, tmp_path))
    down = dataclasses.replace(
        settings, warehouse=warehouse_settings(free_port(), db.dbname)
    )
    with DashboardServer(down, port=0) as server:
        p = page.open(server.url)
        assert p.title() == DEFINITION.title
        states = card_states(page)
        assert {s[0] for s in states.values()} == {"unavailable"}
        text = page.card("total_volume").inner_text()
        assert "not reachable" in text and "cannot connect" in text
        assert "Traceback" not in p.content()
    # The browser logs each 503 answer; no script error may occur.
    assert page.page_errors == []
    assert all("503" in e for e in page.console_errors)
