"""The dashboard's HTML page, rendered on the server from the definition.

The page needs no database to render: it holds the title, the filters and one
card per chart, and ``static/dashboard.js`` fills the cards from the JSON
endpoints. The markup is the Jinja2 template ``templates/page.html``, rendered
with autoescaping on, so every text that comes from the definition or the
request is HTML-escaped; the script reads its settings from ``data-``
attributes, so the page has no inline script and a strict
Content-Security-Policy holds.
"""

from __future__ import annotations

import json
from typing import Mapping

import jinja2

from crypto_etl.dashboard.definition import Dashboard

# Where the browser finds the scripts and styles, in load order.
STYLESHEETS = ("uPlot.min.css", "dashboard.css")
SCRIPTS = ("uPlot.iife.min.js", "dashboard.js")

_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("crypto_etl.dashboard", "templates"),
    autoescape=True,
    # A name the template misspells is an error, not an empty string.
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
# Plain JSON text for data- attributes; autoescaping then quotes it.
_TEMPLATES.filters["json"] = json.dumps


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
    return _TEMPLATES.get_template("page.html").render(
        dashboard=dashboard,
        selections=selections,
        refresh_seconds=refresh_seconds,
        stylesheets=STYLESHEETS,
        scripts=SCRIPTS,
    )
