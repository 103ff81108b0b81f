"""The simulated market: exchanges, assets, markets and rates from one seed.

Everything is generated from ``seed`` at construction. Prices are
:class:`~crypto_etl.simulator.curve.PriceCurve` functions of the simulator
clock; volumes and ``updated`` stamps change only in :meth:`Market.tick`. The
wire rows (decimal strings, nulls, int ms) are rendered once per tick into a
:class:`Snapshot`, so between ticks every answer is identical.

The simulator computes with floats on purpose: it invents numbers, it does not
account for money; what matters is that the wire format is CoinCap's decimal
strings, which the product parses into Decimal.
"""

from __future__ import annotations

import copy
import random
import threading
from dataclasses import dataclass, field

from crypto_etl.simulator import catalog
from crypto_etl.simulator.curve import DAY_MS, HOUR_MS, PriceCurve

TICK_MS = 60_000
# 2024-09-11T19:53:20Z, next to the published examples' timestamps.
DEFAULT_START_MS = 1_726_084_400_000

Row = dict[str, object]
_KNOWN_IDS = frozenset(spec.asset_id for spec in catalog.ASSETS)


def dec(value: float) -> str:
    """Format a number as CoinCap's 16-decimal string, e.g. ``"1.5000000000000000"``."""
    return f"{value:.16f}"


@dataclass
class _Asset:
    spec: catalog.AssetSpec
    curve: PriceCurve
    explorer: str | None
    tokens: dict[str, list[str]]
    reports_change: bool
    rank: int = 0


@dataclass(frozen=True)
class _Quote:
    quote_id: str
    symbol: str
    curve: PriceCurve


@dataclass
class _Pair:
    base: _Asset
    quote: _Quote
    volume: float
    spread: float
    trade_size: float | None
    rank: int = 0
    updated: int = 0
    price_usd: float = 0.0
    price_quote: float = 0.0


@dataclass
class _Exchange:
    spec: catalog.ExchangeSpec
    socket: bool | None
    updated: int
    pairs: list[_Pair] = field(default_factory=list)
    rank: int = 0

    @property
    def volume(self) -> float | None:
        """Sum of the market volumes, None for an exchange that does not report."""
        if not self.spec.reporting:
            return None
        return sum(pair.volume for pair in self.pairs)


@dataclass(frozen=True)
class Snapshot:
    """The wire rows of one market state, in their stable serving order."""

    timestamp: int
    exchanges: list[Row]
    exchanges_by_id: dict[str, Row]
    assets: list[Row]
    assets_by_id: dict[str, Row]
    markets: list[Row]
    markets_by_asset: dict[str, list[Row]]
    rates: list[Row]
    rates_by_id: dict[str, Row]


class Market:
    """A seeded, thread-safe market that moves one step per :meth:`tick`."""

    def __init__(
        self,
        *,
        seed: int,
        start_ms: int,
        n_exchanges: int,
        n_assets: int,
        top_pairs: int = 250,
    ) -> None:
        """Generate ``n_exchanges`` exchanges and ``n_assets`` assets from ``seed``.

        The clock starts at ``start_ms`` (unix ms); the largest exchange
        lists ``top_pairs`` markets, smaller ones fewer (at least 5).
        """
        self._seed = seed
        self._top_pairs = top_pairs
        self._clock = start_ms
        # A seeded, repeatable fake market: not security.
        self._rng = random.Random(seed)  # nosec B311
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._exchange_rows: list[Row] | None = None
        self._assets = self._make_assets(n_assets)
        self._by_id = {asset.spec.asset_id: asset for asset in self._assets}
        self._fiat = {
            spec.rate_id: PriceCurve(
                seed,
                "fiat:" + spec.rate_id,
                spec.rate_usd,
                0.0 if spec.rate_usd == 1.0 else catalog.FIAT_DAILY_VOL,
            )
            for spec in catalog.FIAT
        }
        self._exchanges = self._make_exchanges(n_exchanges)

    @property
    def clock(self) -> int:
        """The simulator time in unix ms."""
        return self._clock

    def curve(self, asset_id: str) -> PriceCurve | None:
        """Return the price curve of ``asset_id``, None if there is no such asset."""
        asset = self._by_id.get(asset_id)
        return asset.curve if asset else None

    def tick(self, changed_exchanges: int | None, step_ms: int = TICK_MS) -> None:
        """Advance the clock by ``step_ms`` and move the market one step.

        ``changed_exchanges`` reporting exchanges (all of them if None) get new
        volumes, prices and a later ``updated``. Raises ValueError if more are
        asked for than report, or a negative number.
        """
        with self._lock:
            live = [ex for ex in self._exchanges if ex.spec.reporting]
            if changed_exchanges is None:
                chosen = live
            else:
                chosen = self._rng.sample(live, changed_exchanges)
            self._clock += step_ms
            prices: dict[tuple[str, int], float] = {}
            for exchange in chosen:
                lag = self._rng.randint(0, min(1999, step_ms - 1))
                exchange.updated = max(exchange.updated + 1, self._clock - lag)
                for pair in exchange.pairs:
                    if pair.volume > 0:
                        pair.volume *= self._rng.lognormvariate(0.0, 0.05)
                    self._reprice(pair, exchange.updated, prices)
            self._snapshot = None

    def set_exchange_rows(self, rows: list[Row] | None) -> None:
        """Serve ``rows`` verbatim from ``/exchanges``; None restores the generated."""
        with self._lock:
            self._exchange_rows = copy.deepcopy(rows)
            self._snapshot = None

    def snapshot(self) -> Snapshot:
        """Return the wire rows of the current state (rendered once per tick)."""
        with self._lock:
            if self._snapshot is None:
                self._snapshot = self._render()
            return self._snapshot

    # -- generation ---------------------------------------------------------

    def _make_assets(self, n_assets: int) -> list[_Asset]:
        rng = self._rng
        specs = list(catalog.ASSETS[:n_assets])
        ids = {spec.asset_id for spec in specs}
        symbols = {spec.symbol for spec in specs}
        while len(specs) < n_assets:
            slug, symbol, name = catalog.generated_name(rng)
            if slug in ids:
                continue
            while symbol in symbols:
                symbol += str(rng.randint(0, 9))
            place = len(specs) - len(catalog.ASSETS) + 1
            market_cap = 4e8 * place**-1.1 * rng.lognormvariate(0.0, 0.4)
            supply = 10 ** rng.uniform(6, 11)
            max_supply = rng.choice((None, None, 0.0, supply * rng.uniform(1, 3)))
            vol = rng.uniform(0.05, 0.09)
            specs.append(
                catalog.AssetSpec(
                    slug, symbol, name, market_cap / supply, supply, max_supply, vol
                )
            )
            ids.add(slug)
            symbols.add(symbol)
        assets = [self._make_asset(spec) for spec in specs]
        assets.sort(key=lambda a: -a.spec.price * a.spec.supply)
        for rank, asset in enumerate(assets, start=1):
            asset.rank = rank
        return assets

    def _make_asset(self, spec: catalog.AssetSpec) -> _Asset:
        rng = self._rng
        explorer = catalog.EXPLORERS.get(spec.asset_id)
        tokens = copy.deepcopy(catalog.TOKENS.get(spec.asset_id, {}))
        known = spec.asset_id in _KNOWN_IDS
        if not known and rng.random() < 0.5:
            address = "0x" + "".join(rng.choice("0123456789abcdef") for _ in range(40))
            explorer = "https://etherscan.io/token/" + address
            tokens = {"1": [address]}
        reports_change = known or rng.random() > 0.05
        # A wrapped asset moves with what it wraps: same noise, its own level.
        key = catalog.WRAPS.get(spec.asset_id, spec.asset_id)
        curve = PriceCurve(self._seed, key, spec.price, spec.daily_vol)
        return _Asset(spec, curve, explorer, tokens, reports_change)

    def _quotes(self) -> list[tuple[_Quote, float]]:
        quotes = []
        fiat = {spec.rate_id: spec for spec in catalog.FIAT}
        for quote_id, weight in catalog.QUOTES:
            asset = self._by_id.get(quote_id)
            if asset:
                quotes.append(
                    (_Quote(quote_id, asset.spec.symbol, asset.curve), weight)
                )
            elif quote_id in fiat:
                quote = _Quote(quote_id, fiat[quote_id].symbol, self._fiat[quote_id])
                quotes.append((quote, weight))
        return quotes

    def _make_exchanges(self, n_exchanges: int) -> list[_Exchange]:
        rng = self._rng
        specs = list(catalog.EXCHANGES[:n_exchanges])
        for i in range(len(specs), n_exchanges):
            specs.append(
                catalog.ExchangeSpec(
                    f"exchange-{i + 1}",
                    f"Exchange {i + 1}",
                    f"https://exchange-{i + 1}.example/",
                )
            )
        quotes = self._quotes()
        exchanges: list[_Exchange] = []
        place = 0  # rank of size among the reporting exchanges, before the noise
        for spec in specs:
            if not spec.reporting:
                exchanges.append(_Exchange(spec, None, 0))
                continue
            place += 1
            exchange = _Exchange(
                spec, rng.random() < 0.6, self._clock - rng.randint(1000, 120_000)
            )
            target = 5e9 * place**-1.25 * rng.lognormvariate(0.0, 0.3)
            self._make_pairs(
                exchange, max(5, int(self._top_pairs * place**-0.6)), target, quotes
            )
            exchanges.append(exchange)
        live = sorted(
            (ex for ex in exchanges if ex.spec.reporting),
            key=lambda ex: -(ex.volume or 0.0),
        )
        silent = [ex for ex in exchanges if not ex.spec.reporting]
        for rank, exchange in enumerate(live + silent, start=1):
            exchange.rank = rank
        return sorted(exchanges, key=lambda ex: ex.rank)

    def _make_pairs(
        self,
        exchange: _Exchange,
        count: int,
        volume: float,
        quotes: list[tuple[_Quote, float]],
    ) -> None:
        rng = self._rng
        weights = [w for _, w in quotes]
        seen: set[tuple[str, str]] = set()
        for _ in range(count * 3):
            if len(seen) == count:
                break
            # Every exchange lists bitcoin first; the rest lean to the top ranks.
            pick = int(len(self._assets) * rng.random() ** 2.5) if seen else 0
            base = self._assets[pick]
            quote = rng.choices(quotes, weights)[0][0]
            key = (base.spec.asset_id, quote.quote_id)
            if base.spec.asset_id == quote.quote_id or key in seen:
                continue
            # A few markets are dead (all zeros), never the first one.
            dead = bool(seen) and rng.random() < 0.03
            seen.add(key)
            share = 0.0 if dead else rng.paretovariate(1.5) * base.rank**-0.7
            trade_size = None if rng.random() < 0.2 else rng.uniform(200.0, 3000.0)
            exchange.pairs.append(
                _Pair(base, quote, share, rng.gauss(0.0, 0.002), trade_size)
            )
        total = sum(pair.volume for pair in exchange.pairs) or 1.0
        prices: dict[tuple[str, int], float] = {}
        exchange.pairs.sort(key=lambda p: -p.volume)
        for rank, pair in enumerate(exchange.pairs, start=1):
            pair.volume *= volume / total
            pair.rank = rank
            self._reprice(pair, exchange.updated, prices)

    def _reprice(
        self, pair: _Pair, t_ms: int, prices: dict[tuple[str, int], float]
    ) -> None:
        """Stamp ``pair`` as updated at ``t_ms`` with the prices of that time."""
        base = _price(prices, pair.base.spec.asset_id, pair.base.curve, t_ms)
        quote = _price(prices, pair.quote.quote_id, pair.quote.curve, t_ms)
        pair.updated = max(pair.updated, t_ms - self._rng.randint(0, 500))
        pair.price_usd = base * (1.0 + pair.spread)
        pair.price_quote = pair.price_usd / quote

    # -- rendering ----------------------------------------------------------

    def _render(self) -> Snapshot:
        exchanges = (
            self._exchange_rows
            if self._exchange_rows is not None
            else self._render_exchanges()
        )
        volumes: dict[str, float] = {}
        for ex in self._exchanges:
            for pair in ex.pairs:
                key = pair.base.spec.asset_id
                volumes[key] = volumes.get(key, 0.0) + pair.volume
        # Ranked by market cap at this moment, as CoinCap ranks and orders them.
        prices = {a.spec.asset_id: a.curve.at(self._clock) for a in self._assets}
        ranked = sorted(
            self._assets, key=lambda a: -a.spec.supply * prices[a.spec.asset_id]
        )
        assets = [
            self._render_asset(
                asset,
                rank,
                prices[asset.spec.asset_id],
                volumes.get(asset.spec.asset_id, 0.0),
            )
            for rank, asset in enumerate(ranked, start=1)
        ]
        markets: list[Row] = []
        for ex in self._exchanges:
            total = ex.volume or 1.0
            markets += (
                self._render_pair(ex.spec.exchange_id, total, p) for p in ex.pairs
            )
        rates = self._render_rates()
        return Snapshot(
            timestamp=self._clock,
            exchanges=exchanges,
            exchanges_by_id={
                str(row["exchangeId"]): row for row in exchanges if "exchangeId" in row
            },
            assets=assets,
            assets_by_id={str(row["id"]): row for row in assets},
            markets=markets,
            markets_by_asset=self._render_asset_markets(),
            rates=rates,
            rates_by_id={str(row["id"]): row for row in rates},
        )

    def _render_exchanges(self) -> list[Row]:
        total = sum(ex.volume or 0.0 for ex in self._exchanges) or 1.0
        rows: list[Row] = []
        # Ranked by volume now (volumes move every tick); silent ones last.
        ranked = sorted(
            self._exchanges, key=lambda ex: (ex.volume is None, -(ex.volume or 0.0))
        )
        for rank, ex in enumerate(ranked, start=1):
            volume = ex.volume
            rows.append(
                {
                    "exchangeId": ex.spec.exchange_id,
                    "name": ex.spec.name,
                    "rank": str(rank),
                    # CoinCap prints this one with 36 decimals, 18 of them zero.
                    "percentTotalVolume": (
                        None
                        if volume is None
                        else f"{volume / total * 100:.18f}" + "0" * 18
                    ),
                    "volumeUsd": None if volume is None else dec(volume),
                    "tradingPairs": str(len(ex.pairs)),
                    "socket": ex.socket,
                    "exchangeUrl": ex.spec.url,
                    "updated": ex.updated,
                }
            )
        return rows

    def _render_asset(
        self, asset: _Asset, rank: int, price: float, volume: float
    ) -> Row:
        spec, curve, now = asset.spec, asset.curve, self._clock
        if spec.max_supply is None:
            max_supply: str | None = None
        else:
            max_supply = dec(spec.max_supply) if spec.max_supply else "0"
        change = vwap = None
        if asset.reports_change:
            change = dec((price / curve.at(now - DAY_MS) - 1.0) * 100.0)
            vwap = dec(sum(curve.at(now - k * 6 * HOUR_MS) for k in range(5)) / 5)
        return {
            "id": spec.asset_id,
            "rank": str(rank),
            "symbol": spec.symbol,
            "name": spec.name,
            "supply": dec(spec.supply),
            "maxSupply": max_supply,
            "marketCapUsd": dec(spec.supply * price),
            "volumeUsd24Hr": dec(volume),
            "priceUsd": dec(price),
            "changePercent24Hr": change,
            "vwap24Hr": vwap,
            "explorer": asset.explorer,
            "tokens": asset.tokens,
        }

    @staticmethod
    def _render_pair(exchange_id: str, total: float, pair: _Pair) -> Row:
        """A ``/markets`` row; ``total`` is the exchange's volume."""
        live = pair.volume > 0
        trades = None
        if live and pair.trade_size is not None:
            trades = str(max(1, int(pair.volume / pair.trade_size)))
        return {
            "exchangeId": exchange_id,
            "rank": str(pair.rank),
            "baseSymbol": pair.base.spec.symbol,
            "baseId": pair.base.spec.asset_id,
            "quoteSymbol": pair.quote.symbol,
            "quoteId": pair.quote.quote_id,
            "priceQuote": dec(pair.price_quote if live else 0.0),
            "priceUsd": dec(pair.price_usd if live else 0.0),
            "volumeUsd24Hr": dec(pair.volume),
            "percentExchangeVolume": dec(pair.volume / total * 100.0),
            "tradesCount24Hr": trades,
            "updated": pair.updated,
        }

    def _render_asset_markets(self) -> dict[str, list[Row]]:
        """Rows of ``/assets/{slug}/markets``, named by exchange display name."""
        by_asset: dict[str, list[tuple[_Exchange, _Pair]]] = {}
        for ex in self._exchanges:
            for pair in ex.pairs:
                by_asset.setdefault(pair.base.spec.asset_id, []).append((ex, pair))
        result: dict[str, list[Row]] = {}
        for asset_id, entries in by_asset.items():
            entries.sort(key=lambda e: -e[1].volume)
            total = sum(pair.volume for _, pair in entries) or 1.0
            result[asset_id] = [
                {
                    "exchangeId": ex.spec.name,
                    "baseId": asset_id,
                    "quoteId": pair.quote.quote_id,
                    "baseSymbol": pair.base.spec.symbol,
                    "quoteSymbol": pair.quote.symbol,
                    "volumeUsd24Hr": dec(pair.volume),
                    "priceUsd": dec(pair.price_usd if pair.volume > 0 else 0.0),
                    "volumePercent": dec(pair.volume / total * 100.0),
                }
                for ex, pair in entries
            ]
        return result

    def _render_rates(self) -> list[Row]:
        rows: list[Row] = []
        for spec in catalog.FIAT:
            rate = self._fiat[spec.rate_id].at(self._clock)
            rows.append(
                {
                    "id": spec.rate_id,
                    "symbol": spec.symbol,
                    "currencySymbol": spec.currency_symbol,
                    "type": "fiat",
                    "rateUsd": (
                        round(rate, 8)
                        if spec.rate_id == catalog.NUMBER_RATE_ID
                        else dec(rate)
                    ),
                }
            )
        for asset_id, sign in catalog.CRYPTO_RATES.items():
            asset = self._by_id.get(asset_id)
            if asset:
                rows.append(
                    {
                        "id": asset_id,
                        "symbol": asset.spec.symbol,
                        "currencySymbol": sign,
                        "type": "crypto",
                        "rateUsd": dec(asset.curve.at(self._clock)),
                    }
                )
        rows.sort(key=lambda row: str(row["id"]))
        return rows


def _price(
    cache: dict[tuple[str, int], float], key: str, curve: PriceCurve, t_ms: int
) -> float:
    """Return ``curve.at(t_ms)``, memoised in ``cache`` under ``(key, t_ms)``."""
    found = cache.get((key, t_ms))
    if found is None:
        found = cache[(key, t_ms)] = curve.at(t_ms)
    return found
