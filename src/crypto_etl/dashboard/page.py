"""The dashboard's HTML page, rendered on the server from the definition.

The page needs no database to render: it holds the title, the filters and one
card per chart, and ``static/dashboard.js`` fills the cards from the JSON
endpoints. Every text that comes from the definition or the request is
HTML-escaped; the script reads its settings from ``data-`` attributes, so the
page has no inline script and a strict Content-Security-Policy holds.
"""

from __future__ import annotations

import json
from html import escape
from typing import Mapping

from crypto_etl.dashboard.definition import Chart, Dashboard, Filter

# Where the browser finds the scripts and styles, in load order.
STYLESHEETS = ("uPlot.min.css", "dashboard.css")
SCRIPTS = ("uPlot.iife.min.js", "dashboard.js")


def render_page(
    dashboard: Dashboard,
    selections: Mapping[str, str | None],
    *,
    refresh_seconds: int,
) -> str:
    """Return the page's HTML.

    Args:
        dashboard: the definition (title, filters, charts).
        selections: each filter's initial value (None: off).
        refresh_seconds: how often the page reloads every chart.
    """
    head = "\n".join(
        [f'<link rel="stylesheet" href="/static/{name}">' for name in STYLESHEETS]
        + [f'<script src="/static/{name}" defer></script>' for name in SCRIPTS]
    )
    filters = "\n".join(_filter(f, selections.get(f.name)) for f in dashboard.filters)
    cards = "\n".join(_card(chart) for chart in dashboard.charts)
    title = escape(dashboard.title)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="data:,">
{head}
</head>
<body data-ready="0" data-refresh-seconds="{refresh_seconds}">
<header class="top">
  <h1>{title}</h1>
  <form id="filters" class="filters">
{filters}
    <button type="button" id="refresh">Refresh</button>
  </form>
  <p class="refreshed">Updated <time id="refreshed">never</time>
    · refreshes every {refresh_seconds} s
    · <a href="/docs/">model docs and lineage</a></p>
</header>
<main class="grid">
{cards}
</main>
<noscript><p class="notice">The charts need JavaScript; each card's CSV link
works without it.</p></noscript>
</body>
</html>
"""


def _filter(f: Filter, value: str | None) -> str:
    label = escape(f.label)
    name = escape(f.name, quote=True)
    if f.type == "range":
        options = "".join(
            f'<option value="{escape(c, quote=True)}"'
            f'{" selected" if c == value else ""}>{escape(c)}</option>'
            for c in f.choices
        )
        return (
            f'    <label>{label} <select name="{name}" data-filter="range">'
            f"{options}</select></label>"
        )
    # Text filters start with their current value only; the script loads
    # the other choices from /api/filters/<name>.
    first = (
        f'<option value="">Any {escape(f.label.lower())}</option>'
        if f.default is None
        else ""
    )
    current = (
        f'<option value="{escape(value, quote=True)}" selected>{escape(value)}</option>'
        if value
        else ""
    )
    return (
        f'    <label>{label} <select name="{name}" data-filter="text"'
        f' data-options="/api/filters/{name}" data-default="'
        f'{escape(f.default or "", quote=True)}">{first}{current}</select></label>'
    )


def _card(chart: Chart) -> str:
    cid = escape(chart.id, quote=True)
    attributes = {
        "id": f"chart-{chart.id}",
        "data-chart": chart.id,
        "data-type": chart.type,
        "data-x": chart.x or "",
        "data-y": json.dumps(list(chart.y)),
        "data-series": chart.series or "",
        "data-uses": json.dumps(chart.parameters),
        "data-state": "loading",
        "data-rows": "0",
    }
    attrs = " ".join(f'{k}="{escape(v, quote=True)}"' for k, v in attributes.items())
    description = (
        f'<p class="description">{escape(chart.description)}</p>'
        if chart.description
        else ""
    )
    return f"""<section class="card card-{escape(chart.type, quote=True)}" {attrs}>
  <header><h2>{escape(chart.title)}</h2>
    <a class="csv" href="/api/charts/{cid}.csv" download="{cid}.csv">CSV</a></header>
  {description}
  <div class="plot"><p class="message">Loading…</p></div>
</section>"""
