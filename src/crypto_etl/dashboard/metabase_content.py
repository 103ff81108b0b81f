"""What Metabase should hold for the shared dashboard definition.

Pure functions, no HTTP: the body of each card (a native SQL question with a
template tag per ``{{variable}}``), the dashboard filters, where each card sits
on Metabase's 24-column grid, the dashcards with their parameter mappings,
and the comparisons that tell whether what Metabase returned already matches.
Shapes follow Metabase v0.64 (see :mod:`crypto_etl.dashboard.metabase`).
"""

from __future__ import annotations

import itertools
import json
import uuid
from typing import Any

from crypto_etl.dashboard.definition import Chart, Dashboard, required_parameters

GRID_WIDTH = 24
_DISPLAY = {
    "line": "line",
    "bar": "bar",
    "stacked_area": "area",
    "table": "table",
    "status": "table",
}
_TAG_TYPE = {"range": "date", "text": "text"}
# A plain SQL date variable connects only to a "Single date" filter
# (metabase/metabase#70178); text variables to "string/=".
_PARAMETER_TYPE = {"range": ("date/single", "date"), "text": ("string/=", "string")}
# Template-tag ids must stay the same from run to run, or every run would
# "change" every card: derive them from the chart and variable names.
_TAG_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "crypto_etl/metabase/template-tags")


def card_payload(
    chart: Chart, definition: Dashboard, database_id: int, collection_id: int
) -> dict[str, Any]:
    """Return the ``POST /api/card`` body for one chart: a native SQL question.

    Each ``{{variable}}`` gets a template tag (``since`` a date, the others
    text). A variable used outside ``[[ ]]`` is required, with the filter's
    default when it has one (a text filter's default is a valid value; a
    range such as ``7d`` is not a date).
    """
    filters = {f.name: f for f in definition.filters}
    required = set(required_parameters(chart.sql))
    tags: dict[str, dict[str, Any]] = {}
    for name in chart.parameters:
        spec = filters[name]
        tag: dict[str, Any] = {
            "id": str(uuid.uuid5(_TAG_NAMESPACE, f"{chart.id}/{name}")),
            "name": name,
            "display-name": spec.label,
            "type": _TAG_TYPE[spec.type],
            "required": name in required,
        }
        if name in required and spec.type == "text" and spec.default is not None:
            tag["default"] = spec.default
        tags[name] = tag
    return {
        "name": chart.title,
        "description": chart.description or None,
        "display": _DISPLAY[chart.type],
        "visualization_settings": _visualization(chart),
        "collection_id": collection_id,
        "dataset_query": {
            "type": "native",
            "database": database_id,
            "native": {"query": chart.sql, "template-tags": tags},
        },
    }


def _visualization(chart: Chart) -> dict[str, Any]:
    if chart.type in ("table", "status"):
        return {"table.pivot": False}
    dimensions = [chart.x] + ([chart.series] if chart.series else [])
    settings: dict[str, Any] = {
        "graph.dimensions": dimensions,
        "graph.metrics": list(chart.y),
    }
    if chart.type == "stacked_area":
        settings["stackable.stack_type"] = "stacked"
    return settings


def _native_parts(query: dict[str, Any]) -> tuple[Any, Any, dict[str, Any]]:
    """Return (database, SQL, template tags) of a legacy or MBQL 5 native query."""
    if "stages" in query:
        stage = query["stages"][0] if query["stages"] else {}
        return (
            query.get("database"),
            stage.get("native"),
            stage.get("template-tags") or {},
        )
    native = query.get("native") or {}
    return query.get("database"), native.get("query"), native.get("template-tags") or {}


def card_matches(card: dict[str, Any], payload: dict[str, Any]) -> bool:
    """Tell whether a card as Metabase returned it already is ``payload``."""
    database, sql, tags = _native_parts(card.get("dataset_query") or {})
    wanted = payload["dataset_query"]
    return (
        card.get("display") == payload["display"]
        and (card.get("description") or None) == payload["description"]
        and card.get("collection_id") == payload["collection_id"]
        and database == wanted["database"]
        and sql == wanted["native"]["query"]
        and set(tags) == set(wanted["native"]["template-tags"])
        and contains(tags, wanted["native"]["template-tags"])
        and contains(
            card.get("visualization_settings"), payload["visualization_settings"]
        )
    )


def contains(actual: Any, wanted: Any) -> bool:
    """Tell whether ``actual`` holds everything in ``wanted``.

    Metabase may add keys of its own to what it stores, so only the keys this
    module sets are compared; a PUT always sends the whole value.
    """
    if isinstance(wanted, dict):
        return isinstance(actual, dict) and all(
            key in actual and contains(actual[key], value)
            for key, value in wanted.items()
        )
    if isinstance(wanted, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(wanted)
            and all(contains(a, w) for a, w in zip(actual, wanted))
        )
    return bool(actual == wanted)


def dashboard_parameters(definition: Dashboard) -> list[dict[str, Any]]:
    """Return the dashboard filters: a range as its start date, the others text."""
    parameters = []
    for spec in definition.filters:
        kind, section = _PARAMETER_TYPE[spec.type]
        parameter: dict[str, Any] = {
            "id": spec.name,
            # The range's fixed choices become a start-date picker in Metabase.
            "name": f"{spec.label}: from" if spec.type == "range" else spec.label,
            "slug": spec.name,
            "type": kind,
            "sectionId": section,
        }
        if spec.type == "text" and spec.default is not None:
            parameter["default"] = [spec.default]
        parameters.append(parameter)
    return parameters


def layout(charts: tuple[Chart, ...]) -> list[tuple[Chart, int, int, int, int]]:
    """Place charts on Metabase's 24-column grid in definition order.

    Tables take a full row; other charts half a row, two side by side.

    Returns:
        ``(chart, row, col, size_x, size_y)`` for each chart.
    """
    placed = []
    row = col = row_height = 0
    for chart in charts:
        wide = chart.type in ("table", "status")
        size_x, size_y = (GRID_WIDTH, 8) if wide else (GRID_WIDTH // 2, 6)
        if col + size_x > GRID_WIDTH:
            row, col, row_height = row + row_height, 0, 0
        placed.append((chart, row, col, size_x, size_y))
        col += size_x
        row_height = max(row_height, size_y)
    return placed


def build_dashcards(
    definition: Dashboard, card_ids: dict[str, int], current: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Return every dashcard for the PUT: kept ones by id, new ones negative."""
    kept: dict[int, int] = {}
    for dashcard in current:
        kept.setdefault(dashcard.get("card_id") or 0, int(dashcard["id"]))
    new_ids = itertools.count(-1, -1)
    result = []
    for chart, row, col, size_x, size_y in layout(definition.charts):
        card_id = card_ids[chart.id]
        mappings = [
            {
                "parameter_id": name,
                "card_id": card_id,
                "target": ["variable", ["template-tag", name]],
            }
            for name in chart.parameters
        ]
        result.append(
            {
                "id": kept.get(card_id) or next(new_ids),
                "card_id": card_id,
                "row": row,
                "col": col,
                "size_x": size_x,
                "size_y": size_y,
                "parameter_mappings": mappings,
            }
        )
    return result


def dashcards_match(
    current: list[dict[str, Any]], wanted: list[dict[str, Any]]
) -> bool:
    """Tell whether the dashboard's dashcards already are ``wanted``.

    Same ids, and for each the same card, place, size and parameter mappings.
    """
    by_id = {int(d["id"]): d for d in current}
    if set(by_id) != {d["id"] for d in wanted}:
        return False

    def mappings(dashcard: dict[str, Any]) -> list[tuple[Any, str]]:
        return sorted(
            (m.get("parameter_id"), json.dumps(m.get("target")))
            for m in dashcard.get("parameter_mappings") or []
        )

    layout_keys = ("card_id", "row", "col", "size_x", "size_y")
    return all(
        all(by_id[d["id"]].get(k) == d[k] for k in layout_keys)
        and mappings(by_id[d["id"]]) == mappings(d)
        for d in wanted
    )
