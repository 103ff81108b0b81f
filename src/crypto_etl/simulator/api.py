"""The CoinCap v3 routes: a request path and query in, a status and JSON out.

No HTTP here (``server.py`` does that), so routing, paging and validation read
as plain functions of a :class:`~crypto_etl.simulator.market.Snapshot`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from crypto_etl.simulator.curve import (
    INTERVAL_MS,
    MAX_HISTORY_WINDOW_MS,
    PriceCurve,
    iso_ms,
)
from crypto_etl.simulator.market import Market, Row, Snapshot, dec

MAX_LIMIT = 2000
BAD_QUERY: dict[str, object] = {"error": "Invalid query parameters"}
RETIRED_MESSAGE = (
    "We are deprecating this version of the CoinCap API on March 31, 2025. "
    "Sign up for our new V3 API at https://pro.coincap.io/dashboard"
)
_MARKET_FILTERS: dict[str, Callable[[Row, str], bool]] = {
    "exchangeId": lambda row, v: row["exchangeId"] == v,
    "baseId": lambda row, v: row["baseId"] == v,
    "quoteId": lambda row, v: row["quoteId"] == v,
    "baseSymbol": lambda row, v: str(row["baseSymbol"]).upper() == v.upper(),
    "quoteSymbol": lambda row, v: str(row["quoteSymbol"]).upper() == v.upper(),
    "assetId": lambda row, v: v in (row["baseId"], row["quoteId"]),
    "assetSymbol": lambda row, v: v.upper()
    in (str(row["baseSymbol"]).upper(), str(row["quoteSymbol"]).upper()),
}

Reply = tuple[int, object]


def route_name(path: str) -> str:
    """Name the route of ``path`` for accounting, e.g. ``/assets/{slug}/history``."""
    parts = path.strip("/").split("/")
    if parts[0] == "v2":
        return "/v2"
    if parts[0] != "v3" or len(parts) < 2:
        return "unknown"
    names = {
        ("exchanges",): "/exchanges",
        ("exchanges", "*"): "/exchanges/{id}",
        ("assets",): "/assets",
        ("assets", "*"): "/assets/{slug}",
        ("assets", "*", "history"): "/assets/{slug}/history",
        ("assets", "*", "markets"): "/assets/{slug}/markets",
        ("markets",): "/markets",
        ("rates",): "/rates",
        ("rates", "*"): "/rates/{slug}",
    }
    shape = tuple(p if i == 0 or i == 2 else "*" for i, p in enumerate(parts[1:]))
    return names.get(shape, "unknown")


def retired(timestamp: int) -> dict[str, object]:
    """The body every v2 path answers since the API's retirement."""
    return {"data": {"message": RETIRED_MESSAGE}, "timestamp": timestamp}


def dispatch(market: Market, path: str, params: Mapping[str, str]) -> Reply:
    """Answer a v3 GET of ``path`` with query ``params`` (apiKey removed).

    Returns ``(status, body)``: the ``{data, timestamp}`` envelope on success,
    CoinCap's error bodies on 400 and 404.
    """
    snap = market.snapshot()
    parts = path.strip("/").split("/")[1:]
    route = route_name(path)
    if route == "/exchanges":
        return _paged(snap, snap.exchanges, params, default_limit=10)
    if route == "/exchanges/{id}":
        row = snap.exchanges_by_id.get(parts[1])
        return _one(snap, row, {"error": "Exchange not found"})
    if route == "/assets":
        return _assets(snap, params)
    if route == "/markets":
        rows = snap.markets
        for name, keep in _MARKET_FILTERS.items():
            if name in params:
                rows = [row for row in rows if keep(row, params[name])]
        return _paged(snap, rows, params, default_limit=10)
    if route == "/rates":
        return _rates(snap, params)
    if route == "/rates/{slug}":
        row = snap.rates_by_id.get(parts[1])
        return _one(snap, row, {"error": "Conversion rate not found"})
    if route == "/assets/{slug}/history":
        curve = market.curve(parts[1])
        if curve is None:
            return _asset_missing(snap, parts[1])
        return _history(curve, snap, params)
    if route.startswith("/assets/{slug}"):
        slug = parts[1]
        if slug not in snap.assets_by_id:
            return _asset_missing(snap, slug)
        if route == "/assets/{slug}/markets":
            rows = snap.markets_by_asset.get(slug, [])
            return _paged(snap, rows, params, default_limit=10)
        return 200, _envelope(snap, snap.assets_by_id[slug])
    return 404, {"error": "Not found"}


def _envelope(snap: Snapshot, data: object) -> dict[str, object]:
    return {"data": data, "timestamp": snap.timestamp}


def _one(snap: Snapshot, row: Row | None, missing: dict[str, object]) -> Reply:
    return (404, missing) if row is None else (200, _envelope(snap, row))


def _asset_missing(snap: Snapshot, slug: str) -> Reply:
    return 404, {"error": f"{slug} not found", "timestamp": snap.timestamp}


def _int_param(params: Mapping[str, str], name: str) -> int | None:
    """Return ``params[name]`` as an int, None if absent; ValueError if not an int."""
    text = params.get(name)
    return None if text is None else int(text.strip())


def _paged(
    snap: Snapshot, rows: list[Row], params: Mapping[str, str], default_limit: int
) -> Reply:
    """Slice ``rows`` by ``limit`` (1..2000) and ``offset`` (>= 0); else a 400."""
    try:
        limit = _int_param(params, "limit")
        offset = _int_param(params, "offset")
    except ValueError:
        return 400, BAD_QUERY
    limit = default_limit if limit is None else limit
    offset = offset or 0
    if not 1 <= limit <= MAX_LIMIT or offset < 0:
        return 400, BAD_QUERY
    return 200, _envelope(snap, rows[offset : offset + limit])


def _assets(snap: Snapshot, params: Mapping[str, str]) -> Reply:
    rows = snap.assets
    if "ids" in params:
        wanted = {part.strip() for part in params["ids"].split(",")}
        rows = [row for row in rows if row["id"] in wanted]
    search = params.get("search", "").strip().lower()
    if search:
        rows = [
            row
            for row in rows
            if any(search in str(row[key]).lower() for key in ("id", "symbol", "name"))
        ]
    return _paged(snap, rows, params, default_limit=100)


def _rates(snap: Snapshot, params: Mapping[str, str]) -> Reply:
    if "ids" not in params:
        return 200, _envelope(snap, snap.rates)
    wanted = [part.strip() for part in params["ids"].split(",")]
    rows = [snap.rates_by_id[i] for i in wanted if i in snap.rates_by_id]
    if not rows:
        return 404, {"error": "Conversion rate not found"}
    return 200, _envelope(snap, rows)


def _history(curve: PriceCurve, snap: Snapshot, params: Mapping[str, str]) -> Reply:
    """Points of ``curve`` on the interval grid in ``[start, end)``, up to the clock.

    Without start and end the window is the interval's maximum ending at the
    simulator clock. A missing or unknown interval, only one of start and end,
    ``start > end``, a negative time or a window over the maximum is a 400.
    """
    interval = params.get("interval", "")
    if interval not in INTERVAL_MS:
        return 400, BAD_QUERY
    try:
        start = _int_param(params, "start")
        end = _int_param(params, "end")
    except ValueError:
        return 400, BAD_QUERY
    window = MAX_HISTORY_WINDOW_MS[interval]
    if start is None and end is None:
        start, end = snap.timestamp - window, snap.timestamp
    if start is None or end is None or not 0 <= start <= end or end - start > window:
        return 400, BAD_QUERY
    # Like CoinCap, no prices after "now": a window reaching past the clock
    # is cut there (and is empty when it starts after it).
    points = curve.series(start, min(end, snap.timestamp), INTERVAL_MS[interval])
    data = [{"priceUsd": dec(p), "time": t, "date": iso_ms(t)} for t, p in points]
    return 200, _envelope(snap, data)
