"""The one dashboard definition both dashboards are built from.

``definition.json`` (next to this module) lists the filters and the charts:
each chart's id, title, type, SQL over the dbt marts, x column, y columns and
optional series column. The SQL uses Metabase's native-query syntax, so
Metabase gets it unchanged: ``{{name}}`` is a bound parameter and
``[[ ... ]]`` is an optional clause, kept only when its parameters have
values. ``render_sql`` turns that into psycopg2's ``%(name)s`` style for the
built-in dashboard; values are always bound, never spliced into the text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from crypto_etl.errors import ConfigError

CHART_TYPES = ("line", "bar", "stacked_area", "table", "status")
FILTER_TYPES = ("range", "text")
_VARIABLE = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_OPTIONAL = re.compile(r"\[\[(.*?)\]\]", re.S)


@dataclass(frozen=True)
class Filter:
    """A dashboard filter: a time range (fixed choices) or a text value."""

    name: str
    type: str
    label: str
    choices: tuple[str, ...] = ()
    default: str | None = None
    options_sql: str | None = None


@dataclass(frozen=True)
class Chart:
    """One chart: what to query and how to draw it."""

    id: str
    title: str
    type: str
    sql: str
    x: str | None
    y: tuple[str, ...]
    series: str | None = None
    description: str = ""

    @property
    def parameters(self) -> list[str]:
        """The ``{{names}}`` the SQL uses, in order of first use."""
        return list(dict.fromkeys(_VARIABLE.findall(self.sql)))


@dataclass(frozen=True)
class Dashboard:
    """The whole dashboard: title, filters and charts in display order."""

    title: str
    filters: tuple[Filter, ...]
    charts: tuple[Chart, ...]

    def chart(self, chart_id: str) -> Chart:
        """Return the chart with this id.

        Raises:
            KeyError: for an unknown id.
        """
        for chart in self.charts:
            if chart.id == chart_id:
                return chart
        raise KeyError(chart_id)


def required_parameters(sql: str) -> list[str]:
    """Return the ``{{names}}`` that ``sql`` uses outside any ``[[ ... ]]``
    clause, in order of first use: the values the query cannot run without."""
    return list(dict.fromkeys(_VARIABLE.findall(_OPTIONAL.sub("", sql))))


def render_sql(sql: str, params: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """Turn Metabase-style SQL into psycopg2 SQL plus the bound values.

    Optional ``[[ ... ]]`` clauses are kept when every variable in them has
    a non-None value, and dropped otherwise. A ``{{name}}`` outside such a
    clause is required.

    Raises:
        ValueError: a required parameter has no value.
    """
    bound: dict[str, Any] = {}

    def optional(match: re.Match[str]) -> str:
        names = _VARIABLE.findall(match.group(1))
        return match.group(1) if all(params.get(n) is not None for n in names) else ""

    text = _OPTIONAL.sub(optional, sql)

    def variable(match: re.Match[str]) -> str:
        name = match.group(1)
        if params.get(name) is None:
            raise ValueError(f"the query needs a value for {name!r}")
        bound[name] = params[name]
        return f"%({name})s"

    # A literal % must be doubled for psycopg2 once placeholders are used.
    text = _VARIABLE.sub(variable, text.replace("%", "%%"))
    return text, bound


def load_definition(path: Path | None = None) -> Dashboard:
    """Read and check the dashboard definition (default: the packaged file).

    Raises:
        ConfigError: the file is missing, not JSON, or not a valid definition.
    """
    try:
        if path is None:
            text = resources.files(__package__).joinpath("definition.json").read_text()
        else:
            text = path.read_text(encoding="utf-8")
        raw = json.loads(text)
        filters = tuple(
            Filter(**{**f, "choices": tuple(f.get("choices", ()))})
            for f in raw["filters"]
        )
        charts = tuple(
            Chart(**{**c, "y": tuple(c.get("y", ()))}) for c in raw["charts"]
        )
        dashboard = Dashboard(title=raw["title"], filters=filters, charts=charts)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"invalid dashboard definition: {exc}") from exc
    _check(dashboard)
    return dashboard


def _check(dashboard: Dashboard) -> None:
    names = {f.name for f in dashboard.filters}
    ids = [c.id for c in dashboard.charts]
    if len(ids) != len(set(ids)):
        raise ConfigError("invalid dashboard definition: chart ids must be unique")
    for f in dashboard.filters:
        if f.type not in FILTER_TYPES:
            raise ConfigError(f"filter {f.name}: type must be one of {FILTER_TYPES}")
    for c in dashboard.charts:
        if c.type not in CHART_TYPES:
            raise ConfigError(f"chart {c.id}: type must be one of {CHART_TYPES}")
        unknown = set(c.parameters) - names
        if unknown:
            raise ConfigError(f"chart {c.id}: unknown parameters {sorted(unknown)}")
