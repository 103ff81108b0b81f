"""What the charts print, read off the canvas: tick labels that differ, days
on daily axes, names as the API sent them, titles that name the filters.

Charts are drawn on canvases, so an init script records every text the page
draws (``fillText``) together with the chart it belongs to.
"""

import json
import re

import pytest

from crypto_etl.dashboard.definition import load_definition
from crypto_etl.dashboard.server import DashboardServer

from dashboard_data import settings_for, with_reader
from test_dashboard_browser import READY, Page, browser  # noqa: F401

RECORD_TEXT = """
window.drawnText = [];
const fillText = CanvasRenderingContext2D.prototype.fillText;
CanvasRenderingContext2D.prototype.fillText = function (text, x, y, ...rest) {
  const card = this.canvas.closest("section[data-chart]");
  if (card) {
    window.drawnText.push({ chart: card.dataset.chart, text: String(text), x, y });
  }
  return fillText.call(this, text, x, y, ...rest);
};
"""
HOURS = "now() - interval '{} hours'"
DEFINITION = {
    "title": "Formatting",
    "filters": [
        {
            "name": "since",
            "type": "range",
            "label": "Time range",
            "choices": ["24h", "7d", "30d", "all"],
            "default": "7d",
        },
        {
            "name": "exchange",
            "type": "text",
            "label": "Exchange",
            "default": "gate",
            "options_sql": "SELECT 'gate' AS value, 'Gate.io' AS label",
        },
    ],
    "charts": [
        {
            "id": "close",
            "title": "Close values",
            "type": "line",
            "sql": "SELECT h AS hour, v AS volume_usd FROM (VALUES"
            f" ({HOURS.format(3)}, 2691000000.0), ({HOURS.format(2)}, 2691700000.0),"
            f" ({HOURS.format(1)}, 2692300000.0)) t(h, v)"
            " WHERE {{exchange}} = 'gate' [[AND h >= {{since}}]] ORDER BY h",
            "x": "hour",
            "y": ["volume_usd"],
        },
        {
            "id": "daily",
            "title": "Per day",
            "type": "bar",
            "sql": "SELECT d AS day, c AS credits FROM (VALUES (current_date - 2, 5),"
            " (current_date - 1, 7), (current_date, 3)) t(d, c) ORDER BY d",
            "x": "day",
            "y": ["credits"],
        },
        {
            "id": "names",
            "title": "Shares",
            "type": "stacked_area",
            "sql": "SELECT h AS hour, n AS exchange_name, s AS share_pct FROM"
            " (VALUES ('Gate.io'), ('bitFlyer'), ('OKX')) e(n) CROSS JOIN LATERAL"
            f" (VALUES ({HOURS.format(2)}, 30), ({HOURS.format(1)}, 31)) t(h, s)"
            " ORDER BY h, n",
            "x": "hour",
            "y": ["share_pct"],
            "series": "exchange_name",
        },
    ],
}


@pytest.fixture
def shown(browser, db, tmp_path):  # noqa: F811
    path = tmp_path / "definition.json"
    path.write_text(json.dumps(DEFINITION))
    settings = with_reader(settings_for(db, tmp_path))
    with DashboardServer(settings, port=0, definition=load_definition(path)) as server:
        page = Page(browser)
        page.page.add_init_script(RECORD_TEXT)
        page.page.goto(server.url)
        page.page.wait_for_selector(READY, timeout=15_000)
        yield page
        page.page.close()


def drawn(page, chart):
    texts = page.page.evaluate("() => window.drawnText")
    return [t for t in texts if t["chart"] == chart]


def test_close_values_get_tick_labels_that_differ(shown):
    numbers = [
        t for t in drawn(shown, "close") if re.fullmatch(r"[\d.]+[KMBT]", t["text"])
    ]
    by_height = {round(t["y"]): t["text"] for t in numbers}
    assert len(by_height) >= 3
    assert len(set(by_height.values())) == len(by_height), by_height
    assert shown.page_errors == [] and shown.console_errors == []


def test_a_daily_chart_labels_days_not_hours(shown):
    texts = [t["text"] for t in drawn(shown, "daily")]
    assert not [t for t in texts if re.fullmatch(r"\d{1,2}:\d\d(am|pm)?", t)], texts
    assert any(re.fullmatch(r"[A-Z][a-z]{2} \d{1,2}", t) for t in texts), texts


def test_names_show_exactly_as_the_api_sent_them(shown):
    legend = shown.card("names").locator(".u-legend .u-label").all_inner_texts()
    assert {"Gate.io", "bitFlyer", "OKX"} <= set(legend)


def test_titles_name_the_active_filters(shown):
    p = shown.page
    p.wait_for_function(
        "() => document.querySelector('#chart-close h2').textContent"
        " === 'Close values · Gate.io, last 7d'"
    )
    assert shown.card("daily").locator("h2").inner_text() == "Per day"
    p.select_option('select[name="since"]', "all")
    p.wait_for_function(
        "() => document.querySelector('#chart-close h2').textContent"
        " === 'Close values · Gate.io, all time'"
    )
