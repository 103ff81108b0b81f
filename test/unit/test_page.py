"""The dashboard page as the browser reads it: filters, cards, escaping."""

import json
from html.parser import HTMLParser

from crypto_etl.dashboard.definition import Chart, Dashboard, Filter, load_definition
from crypto_etl.dashboard.page import render_page

EVIL = '"><script>alert(1)</script>'


class Elements(HTMLParser):
    """Every start tag with its (unescaped) attributes, and all the text."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        if data.strip():
            self.text.append(data.strip())

    def all(self, tag, **match):
        return [
            a
            for t, a in self.tags
            if t == tag
            and all(a.get(k.replace("_", "-")) == v for k, v in match.items())
        ]


def test_each_chart_gets_a_card_carrying_its_settings_for_the_script():
    definition = load_definition()
    page = Elements(
        render_page(definition, {"since": "7d", "asset": "bitcoin"}, refresh_seconds=60)
    )
    cards = page.all("section")
    assert [c["data-chart"] for c in cards] == [c.id for c in definition.charts]
    for card, chart in zip(cards, definition.charts):
        assert card["id"] == f"chart-{chart.id}"
        assert card["class"] == f"card card-{chart.type}"
        assert card["data-type"] == chart.type
        assert card["data-x"] == (chart.x or "")
        assert json.loads(card["data-y"]) == list(chart.y)
        assert card["data-series"] == (chart.series or "")
        assert json.loads(card["data-uses"]) == chart.parameters
        assert (card["data-state"], card["data-rows"]) == ("loading", "0")
        [csv] = page.all("a", href=f"/api/charts/{chart.id}.csv")
        assert csv["download"] == f"{chart.id}.csv"
    [body] = page.all("body")
    assert body == {"data-ready": "0", "data-refresh-seconds": "60"}
    assert [s["src"] for s in page.all("script")] == [
        "/static/uPlot.iife.min.js",
        "/static/dashboard.js",
    ]


def test_filters_show_the_selection_and_text_filters_load_their_choices():
    page = Elements(
        render_page(
            load_definition(), {"since": "7d", "asset": "eth"}, refresh_seconds=5
        )
    )
    [since] = page.all("select", name="since")
    assert since["data-filter"] == "range"
    assert [o["value"] for o in page.all("option") if "selected" in o] == ["7d", "eth"]
    [exchange] = page.all("select", name="exchange")
    assert exchange["data-options"] == "/api/filters/exchange"
    assert exchange["data-default"] == ""
    assert "Any exchange" in page.text
    assert "refreshes every 5 s" in " ".join(page.text)


def test_text_from_the_definition_and_the_request_is_escaped():
    dashboard = Dashboard(
        title=f"Market {EVIL}",
        filters=(
            Filter("since", "range", f"Range {EVIL}", ("24h", EVIL), "24h"),
            Filter("asset", "text", "Asset", (), None),
        ),
        charts=(
            Chart("c1", f"Chart {EVIL}", "line", "SELECT 1", "x", (EVIL,), None, EVIL),
        ),
    )
    html = render_page(dashboard, {"since": EVIL, "asset": EVIL}, refresh_seconds=60)
    assert "<script>alert" not in html
    page = Elements(html)
    assert [t for t, _ in page.tags].count("script") == 2  # only the static ones
    assert f"Market {EVIL}" in page.text and f"Chart {EVIL}" in page.text
    assert [o["value"] for o in page.all("option") if "selected" in o] == [EVIL, EVIL]
    [card] = page.all("section")
    assert json.loads(card["data-y"]) == [EVIL]
