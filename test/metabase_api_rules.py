"""The request rules of Metabase v0.64 that the fake Metabase enforces.

Pure checks with no state of their own: each raises ``Refused`` with the status
and body Metabase would answer. They follow Metabase's own request schemas
(metabase/metabase: ``src/metabase/setup_rest/api.clj``,
``queries_rest/api/card.clj`` ``CardCreateSchema``/``CardUpdateSchema``,
``dashboards_rest/api.clj`` ``DashUpdates``/``UpdatedDashboardCard``,
``lib/schema/template_tag.cljc``, ``parameters/schema.cljc``): closed key
sets stay closed, required keys are required, and a SQL date variable
connects only to a "date/single" filter (metabase/metabase#70178).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

GRID_WIDTH = 24
ENGINES = ("postgres", "h2", "mysql", "redshift")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_VARIABLE = re.compile(r"\{\{\s*([^}\s]+)\s*\}\}")
# fmt: off
CARD_CREATE_KEYS = {
    "name", "type", "dataset_query", "entity_id", "parameters", "parameter_mappings",
    "description", "display", "visualization_settings", "collection_id",
    "collection_position", "result_metadata", "cache_ttl", "dashboard_id",
    "dashboard_tab_id", "size", "source_card_id",
}
CARD_UPDATE_KEYS = CARD_CREATE_KEYS - {"entity_id", "size", "source_card_id"} | {
    "archived", "enable_embedding", "embedding_type", "embedding_params",
    "collection_preview",
}
DASHBOARD_CREATE_KEYS = {
    "name", "parameters", "description", "cache_ttl", "collection_id",
    "collection_position",
}
DASHBOARD_UPDATE_KEYS = {
    "name", "description", "caveats", "points_of_interest", "show_in_getting_started",
    "enable_embedding", "embedding_type", "embedding_params", "parameters", "position",
    "width", "archived", "auto_apply_filters", "collection_id", "collection_position",
    "cache_ttl", "dashcards", "tabs",
}
DASHCARD_KEYS = {
    "id", "size_x", "size_y", "row", "col", "card_id", "action_id", "dashboard_tab_id",
    "parameter_mappings", "visualization_settings", "inline_parameters", "series",
}
PARAMETER_TYPES = {
    "date/single", "date/range", "date/relative", "date/month-year",
    "date/quarter-year", "date/all-options", "string/=", "string/!=",
    "string/contains", "string/does-not-contain", "string/starts-with",
    "string/ends-with", "number/=", "number/!=", "number/between", "number/>=",
    "number/<=", "category", "id", "temporal-unit", "boolean/=",
}
# fmt: on
# Which dashboard parameter types each kind of SQL variable can connect to.
TAG_ACCEPTS = {
    "date": {"date/single"},
    "text": {"string/=", "category"},
    "number": {"number/=", "category"},
    "boolean": {"boolean/="},
}


class Refused(Exception):
    """Answer the request with this status and JSON body."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status, self.body = status, body


def bad(key: str, message: str) -> Refused:
    """Return the 400 Metabase gives for an invalid request value."""
    return Refused(400, {"errors": {key: message}})


def non_blank(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != ""


def positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def closed(body: Any, allowed: set[str], what: str) -> dict[str, Any]:
    """Return ``body`` if it is an object with no key outside ``allowed``."""
    if not isinstance(body, dict):
        raise bad(what, "must be a JSON object")
    extra = sorted(set(body) - allowed)
    if extra:
        raise bad(extra[0], f"disallowed key in {what}")
    return body


def check_setup(user: Any, prefs: Any) -> None:
    """The first admin (email, password, names) and the prefs of POST /api/setup."""
    if not isinstance(user, dict) or not isinstance(prefs, dict):
        raise bad("user", "user and prefs must be maps")
    if not isinstance(user.get("email"), str) or not _EMAIL.match(user["email"]):
        raise bad("email", "value must be a valid email address.")
    password = user.get("password")
    # Metabase's default ("normal") complexity: 6 characters, one digit.
    if not isinstance(password, str) or len(password) < 6:
        raise bad("password", "password is too common.")
    if not re.search(r"\d", password):
        raise bad("password", "password is too common.")
    for key in ("first_name", "last_name"):
        if user.get(key) is not None and not non_blank(user[key]):
            raise bad(key, "value must be a non-blank string.")
    if not non_blank(prefs.get("site_name")):
        raise bad("site_name", "value must be a non-blank string.")


def check_details(details: Any) -> None:
    """A PostgreSQL connection: host, port, dbname, user, password."""
    if not isinstance(details, dict):
        raise bad("details", "value must be a map.")
    for key in ("host", "dbname", "user", "password"):
        if not non_blank(details.get(key)):
            raise bad("details", f"missing {key}")
    if not positive_int(details.get("port")):
        raise bad("details", "port must be a positive integer")


def check_card(
    body: dict[str, Any],
    creating: bool,
    collections: Collection[int],
    databases: Collection[int],
) -> None:
    """A card body for POST (``creating``) or PUT /api/card, keys already checked."""
    required = ("name", "dataset_query", "display", "visualization_settings")
    for key in required if creating else ():
        if body.get(key) is None:
            raise bad(key, "required")
    for key in ("name", "display"):
        if key in body and not non_blank(body[key]):
            raise bad(key, "value must be a non-blank string.")
    if not isinstance(body.get("visualization_settings", {}), dict):
        raise bad("visualization_settings", "value must be a map.")
    description = body.get("description")
    # POST wants a non-blank description or none; PUT also takes "".
    if description is not None and not (
        non_blank(description) or (not creating and isinstance(description, str))
    ):
        raise bad("description", "value must be a non-blank string.")
    if body.get("collection_id") not in (None, *collections):
        raise bad("collection_id", "no such collection")
    if "dataset_query" in body:
        check_native_query(body["dataset_query"], databases)


def check_native_query(query: Any, databases: Collection[int]) -> None:
    """A legacy native query whose template tags are exactly its variables."""
    if not isinstance(query, dict) or query.get("type") != "native":
        raise bad("dataset_query", "expected a legacy native query (type native)")
    if query.get("database") not in databases:
        raise bad("dataset_query", "database must be the id of a database")
    native = query.get("native")
    if not isinstance(native, dict) or not non_blank(native.get("query")):
        raise bad("dataset_query", "native.query must be a non-blank string")
    tags = native.get("template-tags") or {}
    variables = set(_VARIABLE.findall(native["query"]))
    if not isinstance(tags, dict) or set(tags) != variables:
        message = f"need exactly one tag per variable {sorted(variables)}"
        raise bad("template-tags", message)
    for name, tag in tags.items():
        check_tag(name, tag)


def check_tag(name: str, tag: Any) -> None:
    """One template tag: id, name (its key), display-name and a valid type."""
    if not isinstance(tag, dict) or tag.get("name") != name:
        message = "keys in template tag map must match the :name of their values"
        raise bad("template-tags", message)
    if not non_blank(tag.get("id")) or not non_blank(tag.get("display-name")):
        raise bad("template-tags", f"tag {name} needs an id and a display-name")
    if tag.get("type") == "dimension":
        if "dimension" not in tag or "widget-type" not in tag:
            message = f"field filter {name} needs dimension and widget-type"
            raise bad("template-tags", message)
    elif tag.get("type") not in TAG_ACCEPTS or "dimension" in tag:
        raise bad("template-tags", f"tag {name}: invalid type {tag.get('type')!r}")
    if "required" in tag and not isinstance(tag["required"], bool):
        raise bad("template-tags", f"tag {name}: required must be a boolean")


def check_parameters(parameters: Any) -> None:
    """Dashboard parameters: unique non-blank ids, known types."""
    if not isinstance(parameters, list):
        raise bad("parameters", "must be a list")
    ids = [p.get("id") if isinstance(p, dict) else None for p in parameters]
    if not all(non_blank(i) for i in ids) or len(set(ids)) != len(ids):
        message = "parameter must be a map with unique :id and :type keys"
        raise bad("parameters", message)
    for parameter in parameters:
        if parameter.get("type") not in PARAMETER_TYPES:
            message = f"unknown parameter type {parameter.get('type')!r}"
            raise bad("parameters", message)


def check_dashcard(
    dashcard: dict[str, Any],
    current: Collection[int],
    kinds: Mapping[str, str],
    cards: Mapping[int, dict[str, Any]],
) -> None:
    """One entry of ``dashcards`` in PUT /api/dashboard/:id, keys already checked.

    Args:
        current: ids of the dashboard's dashcards now.
        kinds: the dashboard's parameter ids -> types, after this update.
        cards: every card by id, queries in the legacy form.
    """
    id_ = dashcard.get("id")
    if not isinstance(id_, int) or id_ == 0 or (id_ > 0 and id_ not in current):
        message = f"dashcard id {id_!r} is neither new (<0) nor on this dashboard"
        raise bad("dashcards", message)
    if not all(positive_int(dashcard.get(k)) for k in ("size_x", "size_y")):
        raise bad("dashcards", "size_x and size_y must be positive integers")
    row, col = dashcard.get("row"), dashcard.get("col")
    if not all(isinstance(v, int) and v >= 0 for v in (row, col)):
        raise bad("dashcards", "row and col must be integers >= 0")
    # Not in Metabase's schema, but beyond the grid a card is cut off.
    if col + dashcard["size_x"] > GRID_WIDTH:
        raise bad("dashcards", f"col + size_x exceeds the {GRID_WIDTH}-column grid")
    card_id = dashcard.get("card_id")
    card = cards.get(card_id) if isinstance(card_id, int) else None
    if card is None or card["archived"]:
        raise bad("dashcards", f"card {card_id!r} does not exist")
    tags = card["dataset_query"]["native"].get("template-tags") or {}
    for mapping in dashcard.get("parameter_mappings") or []:
        check_mapping(mapping, card["id"], tags, kinds)


def check_mapping(
    mapping: Any, card_id: int, tags: Mapping[str, Any], kinds: Mapping[str, str]
) -> None:
    """A parameter mapping: a dashboard parameter to a compatible template tag."""
    if not isinstance(mapping, dict) or mapping.get("parameter_id") not in kinds:
        raise bad("parameter_mappings", f"no dashboard parameter {mapping!r}")
    if mapping.get("card_id", card_id) != card_id:
        raise bad("parameter_mappings", "card_id differs from the dashcard's card")
    target: Any = mapping.get("target")
    well_formed = (
        isinstance(target, list)
        and len(target) == 2
        and target[0] in ("variable", "dimension")
        and isinstance(target[1], list)
        and len(target[1]) == 2
        and target[1][0] == "template-tag"
    )
    if not well_formed:
        raise bad("parameter_mappings", f"invalid target {target!r}")
    target_kind, (_, tag_name) = target
    tag = tags.get(tag_name)
    if tag is None:
        message = f"card {card_id} has no template tag {tag_name!r}"
        raise bad("parameter_mappings", message)
    if (target_kind == "dimension") != (tag["type"] == "dimension"):
        message = "variable targets are for raw tags, dimension for field filters"
        raise bad("parameter_mappings", message)
    kind = kinds[mapping["parameter_id"]]
    if tag["type"] in TAG_ACCEPTS and kind not in TAG_ACCEPTS[tag["type"]]:
        message = f"a {tag['type']} variable cannot be connected to a {kind} filter"
        raise bad("parameter_mappings", message)
