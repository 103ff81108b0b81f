"""Reference data the simulated market is built from: real-looking names.

Only constants and one name generator live here; ``market.py`` turns them into
a seeded market. Prices are rough mid-2024 levels: the point is realistic
magnitudes (a BTC near 57,000, a SHIB near 0.00001), not accuracy.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class ExchangeSpec:
    """One exchange: its id, display name, URL and whether it still reports."""

    exchange_id: str
    name: str
    url: str
    reporting: bool = True


@dataclass(frozen=True)
class AssetSpec:
    """One asset: identity, a price level, supply and daily log volatility.

    ``max_supply`` is 0.0 for an unlimited supply (served as ``"0"``) and None
    when CoinCap does not know it (served as null).
    """

    asset_id: str
    symbol: str
    name: str
    price: float
    supply: float
    max_supply: float | None
    daily_vol: float


@dataclass(frozen=True)
class FiatSpec:
    """One fiat currency of ``/rates``: USD per unit at the start."""

    rate_id: str
    symbol: str
    currency_symbol: str
    rate_usd: float


# Ordered roughly by size; the non-reporting ones (null volume, ``updated: 0``,
# like ``itbit`` in the published example) are spread through the list so that
# a smaller ``n_exchanges`` still keeps some of them.
EXCHANGES: tuple[ExchangeSpec, ...] = (
    ExchangeSpec("binance", "Binance", "https://www.binance.com/"),
    ExchangeSpec("coinbase", "Coinbase", "https://www.coinbase.com/"),
    ExchangeSpec("okx", "OKX", "https://www.okx.com/"),
    ExchangeSpec("bybit", "Bybit", "https://www.bybit.com/"),
    ExchangeSpec("upbit", "Upbit", "https://upbit.com/"),
    ExchangeSpec("kraken", "Kraken", "https://www.kraken.com/"),
    ExchangeSpec("itbit", "Itbit", "https://www.itbit.com/", reporting=False),
    ExchangeSpec("bitget", "Bitget", "https://www.bitget.com/"),
    ExchangeSpec("gate", "Gate.io", "https://www.gate.io/"),
    ExchangeSpec("kucoin", "KuCoin", "https://www.kucoin.com/"),
    ExchangeSpec("htx", "HTX", "https://www.htx.com/"),
    ExchangeSpec("mexc", "MEXC", "https://www.mexc.com/"),
    ExchangeSpec("crypto-com", "Crypto.com Exchange", "https://crypto.com/exchange"),
    ExchangeSpec("bitfinex", "Bitfinex", "https://www.bitfinex.com/"),
    ExchangeSpec("bittrex", "Bittrex", "https://bittrex.com/", reporting=False),
    ExchangeSpec("bitstamp", "Bitstamp", "https://www.bitstamp.net/"),
    ExchangeSpec("binanceus", "Binance.US", "https://www.binance.us/"),
    ExchangeSpec("gemini", "Gemini", "https://www.gemini.com/"),
    ExchangeSpec("bithumb", "Bithumb", "https://www.bithumb.com/"),
    ExchangeSpec("bitflyer", "bitFlyer", "https://bitflyer.com/"),
    ExchangeSpec("liquid", "Liquid", "https://www.liquid.com/", reporting=False),
    ExchangeSpec("poloniex", "Poloniex", "https://poloniex.com/"),
    ExchangeSpec("whitebit", "WhiteBIT", "https://whitebit.com/"),
    ExchangeSpec("lbank", "LBank", "https://www.lbank.com/"),
    ExchangeSpec("bitmart", "BitMart", "https://www.bitmart.com/"),
    ExchangeSpec("coinex", "CoinEx", "https://www.coinex.com/"),
    ExchangeSpec("ftx", "FTX", "https://ftx.com/", reporting=False),
    ExchangeSpec("hitbtc", "HitBTC", "https://hitbtc.com/"),
    ExchangeSpec("digifinex", "DigiFinex", "https://www.digifinex.com/"),
    ExchangeSpec("ascendex", "AscendEX", "https://ascendex.com/"),
    ExchangeSpec("phemex", "Phemex", "https://phemex.com/"),
    ExchangeSpec("bitvavo", "Bitvavo", "https://bitvavo.com/"),
    ExchangeSpec("zaif", "Zaif", "https://zaif.jp/", reporting=False),
    ExchangeSpec("bitso", "Bitso", "https://bitso.com/"),
    ExchangeSpec("btcturk", "BtcTurk", "https://www.btcturk.com/"),
    ExchangeSpec("coincheck", "Coincheck", "https://coincheck.com/"),
    ExchangeSpec("bitbank", "bitbank", "https://bitbank.cc/"),
    ExchangeSpec("korbit", "Korbit", "https://www.korbit.co.kr/"),
    ExchangeSpec("coinone", "Coinone", "https://coinone.co.kr/"),
    ExchangeSpec("bibox", "Bibox", "https://www.bibox.com/", reporting=False),
    ExchangeSpec("indodax", "Indodax", "https://indodax.com/"),
    ExchangeSpec("wazirx", "WazirX", "https://wazirx.com/"),
    ExchangeSpec("luno", "Luno", "https://www.luno.com/"),
    ExchangeSpec("bitpanda", "Bitpanda Pro", "https://www.bitpanda.com/"),
    ExchangeSpec(
        "independent-reserve",
        "Independent Reserve",
        "https://www.independentreserve.com/",
    ),
    ExchangeSpec("btc-markets", "BTC Markets", "https://www.btcmarkets.net/"),
    ExchangeSpec("yobit", "YoBit", "https://yobit.net/", reporting=False),
    ExchangeSpec("coinjar", "CoinJar", "https://www.coinjar.com/"),
    ExchangeSpec("paribu", "Paribu", "https://www.paribu.com/"),
    ExchangeSpec(
        "mercado-bitcoin", "Mercado Bitcoin", "https://www.mercadobitcoin.com.br/"
    ),
    ExchangeSpec("novadax", "NovaDAX", "https://www.novadax.com.br/"),
    ExchangeSpec("exmo", "EXMO", "https://exmo.com/"),
    ExchangeSpec("probit", "ProBit Global", "https://www.probit.com/"),
    ExchangeSpec("bitrue", "Bitrue", "https://www.bitrue.com/"),
    ExchangeSpec("cex", "CEX.IO", "https://cex.io/", reporting=False),
    ExchangeSpec("xt", "XT.COM", "https://www.xt.com/"),
    ExchangeSpec("uniswap-v3", "Uniswap (V3)", "https://app.uniswap.org/"),
    ExchangeSpec("sushiswap", "SushiSwap", "https://www.sushi.com/"),
    ExchangeSpec("pancakeswap-v2", "PancakeSwap (V2)", "https://pancakeswap.finance/"),
    ExchangeSpec("dydx", "dYdX", "https://dydx.exchange/"),
    ExchangeSpec("curve-finance", "Curve", "https://curve.fi/"),
    ExchangeSpec("deribit", "Deribit", "https://www.deribit.com/"),
)

_STABLE = 0.0005
# id, symbol, name, price USD, supply, max supply (0 = unlimited, None =
# unknown), daily log volatility.
_ASSET_ROWS: tuple[tuple[str, str, str, float, float, float | None, float], ...] = (
    ("bitcoin", "BTC", "Bitcoin", 57400.0, 19752815.0, 21e6, 0.025),
    ("ethereum", "ETH", "Ethereum", 2350.0, 120.3e6, None, 0.03),
    ("tether", "USDT", "Tether", 1.0, 118e9, None, _STABLE),
    ("binance-coin", "BNB", "BNB", 520.0, 145.9e6, None, 0.03),
    ("solana", "SOL", "Solana", 135.0, 467e6, None, 0.045),
    ("usd-coin", "USDC", "USDC", 1.0, 35e9, None, _STABLE),
    ("ripple", "XRP", "XRP", 0.53, 56e9, 100e9, 0.04),
    ("dogecoin", "DOGE", "Dogecoin", 0.10, 146e9, 0.0, 0.05),
    ("tron", "TRX", "TRON", 0.15, 86.7e9, None, 0.03),
    ("cardano", "ADA", "Cardano", 0.34, 35e9, 45e9, 0.045),
    ("avalanche", "AVAX", "Avalanche", 22.0, 406e6, 720e6, 0.05),
    ("shiba-inu", "SHIB", "Shiba Inu", 0.000013, 589e12, None, 0.055),
    ("chainlink", "LINK", "Chainlink", 10.5, 608e6, 1e9, 0.045),
    ("polkadot", "DOT", "Polkadot", 4.2, 1.45e9, None, 0.045),
    ("bitcoin-cash", "BCH", "Bitcoin Cash", 320.0, 19.77e6, 21e6, 0.04),
    ("near-protocol", "NEAR", "NEAR Protocol", 3.9, 1.11e9, None, 0.05),
    ("uniswap", "UNI", "Uniswap", 6.1, 600e6, 1e9, 0.05),
    ("litecoin", "LTC", "Litecoin", 61.0, 75e6, 84e6, 0.035),
    ("polygon", "MATIC", "Polygon", 0.38, 9.3e9, 10e9, 0.05),
    ("dai", "DAI", "Dai", 1.0, 5.3e9, None, _STABLE),
    ("internet-computer", "ICP", "Internet Computer", 7.9, 470e6, None, 0.05),
    ("ethereum-classic", "ETC", "Ethereum Classic", 18.5, 148e6, 210.7e6, 0.04),
    ("stellar", "XLM", "Stellar", 0.09, 29.4e9, 50001806812.0, 0.04),
    ("monero", "XMR", "Monero", 165.0, 18.44e6, 0.0, 0.035),
    ("cosmos", "ATOM", "Cosmos", 4.3, 390e6, None, 0.045),
    ("filecoin", "FIL", "Filecoin", 3.4, 580e6, 2e9, 0.05),
    ("aptos", "APT", "Aptos", 6.3, 500e6, None, 0.05),
    ("hedera-hashgraph", "HBAR", "Hedera", 0.05, 37e9, 50e9, 0.045),
    ("vechain", "VET", "VeChain", 0.022, 80e9, 86712634466.0, 0.045),
    ("maker", "MKR", "Maker", 1500.0, 920e3, 1005577.0, 0.045),
    ("aave", "AAVE", "Aave", 140.0, 14.9e6, 16e6, 0.05),
    ("algorand", "ALGO", "Algorand", 0.12, 8.2e9, 10e9, 0.045),
    ("tezos", "XTZ", "Tezos", 0.65, 1e9, None, 0.04),
    ("wrapped-bitcoin", "WBTC", "Wrapped Bitcoin", 57300.0, 154e3, None, 0.025),
    ("theta", "THETA", "THETA", 1.0, 1e9, 1e9, 0.05),
    ("fantom", "FTM", "Fantom", 0.4, 2.8e9, 3.175e9, 0.06),
)
ASSETS: tuple[AssetSpec, ...] = tuple(AssetSpec(*row) for row in _ASSET_ROWS)
# Wrapped tokens and the asset each one is redeemable for: their prices move
# together (the price levels above keep WBTC a hair under BTC).
WRAPS: dict[str, str] = {"wrapped-bitcoin": "bitcoin"}

_ETHERSCAN = "https://etherscan.io/token/"
# Block explorers of the known assets; the others have none (null on the wire).
EXPLORERS: dict[str, str] = {
    "bitcoin": "https://blockchain.info/",
    "ethereum": "https://etherscan.io/",
    "tether": "https://www.omniexplorer.info/asset/31",
    "solana": "https://explorer.solana.com/",
    "usd-coin": _ETHERSCAN + "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48",
    "ripple": "https://xrpcharts.ripple.com/#/graph/",
    "dogecoin": "http://dogechain.info/chain/Dogecoin",
    "tron": "https://tronscan.org/",
    "cardano": "https://cardanoexplorer.com/",
    "avalanche": "https://avascan.info/",
    "shiba-inu": _ETHERSCAN + "0x95ad61b0a150d79219dcf64e1e6cc01f0b64c4ce",
    "chainlink": _ETHERSCAN + "0x514910771af9ca656af840dff83e8264ecf986ca",
    "polkadot": "https://polkascan.io/polkadot",
    "bitcoin-cash": "https://blockchair.com/bitcoin-cash/blocks",
    "near-protocol": "https://explorer.near.org/",
    "uniswap": _ETHERSCAN + "0x1f9840a85d5af5bf1d1762f925bdaddc4201f984",
    "litecoin": "http://explorer.litecoin.net/chain/Litecoin",
    "polygon": "https://polygonscan.com/",
    "dai": _ETHERSCAN + "0x6b175474e89094c44da98b954eedeac495271d0f",
    "ethereum-classic": "https://blockscout.com/etc/mainnet/",
    "stellar": "https://dashboard.stellar.org/",
    "cosmos": "https://www.mintscan.io/cosmos",
    "filecoin": "https://filfox.info/en",
    "aptos": "https://explorer.aptoslabs.com/",
    "hedera-hashgraph": "https://hashscan.io/mainnet/dashboard",
    "vechain": "https://explore.vechain.org/",
    "maker": _ETHERSCAN + "0x9f8f72aa9304c8b593d555f12ef6589cc3a579a2",
    "aave": _ETHERSCAN + "0x7fc66500c84a76ad7e9c93437bfc5ac33e2ddae9",
    "algorand": "https://algoexplorer.io/",
    "wrapped-bitcoin": _ETHERSCAN + "0x2260fac5e5542a773aa44fbcfedf7c193bc2c599",
    "theta": "https://explorer.thetatoken.org/",
    "fantom": "https://ftmscan.com/",
}

# Published token addresses for the largest assets (chain id -> addresses).
TOKENS: dict[str, dict[str, list[str]]] = {
    "bitcoin": {
        "1": ["0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"],
        "10": ["0x4200000000000000000000000000000000000006"],
        "137": ["0x7ceb23fd6bc0add59e62ac25578270cff1b9f619"],
        "42161": ["0x82af49447d8a07e3bd95bd0d56f35241523fbab1"],
    },
    "tether": {"1": ["0xdac17f958d2ee523a2206206994597c13d831ec7"]},
    "usd-coin": {"1": ["0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"]},
}

FIAT: tuple[FiatSpec, ...] = (
    FiatSpec("united-states-dollar", "USD", "$", 1.0),
    FiatSpec("euro", "EUR", "€", 1.1044),
    FiatSpec("british-pound-sterling", "GBP", "£", 1.3085),
    FiatSpec("japanese-yen", "JPY", "¥", 0.00699),
    FiatSpec("swiss-franc", "CHF", "Fr.", 1.178),
    FiatSpec("canadian-dollar", "CAD", "$", 0.7365),
    FiatSpec("australian-dollar", "AUD", "$", 0.666),
    FiatSpec("chinese-yuan-renminbi", "CNY", "¥", 0.1405),
    FiatSpec("indian-rupee", "INR", "₹", 0.01191),
    FiatSpec("indonesian-rupiah", "IDR", "Rp", 0.0000648),
    FiatSpec("south-korean-won", "KRW", "₩", 0.000747),
    FiatSpec("brazilian-real", "BRL", "R$", 0.1788),
    FiatSpec("mexican-peso", "MXN", "$", 0.0505),
    FiatSpec("russian-ruble", "RUB", "₽", 0.011),
    FiatSpec("turkish-lira", "TRY", "₺", 0.0294),
    FiatSpec("south-african-rand", "ZAR", "R", 0.0559),
    FiatSpec("swedish-krona", "SEK", "kr", 0.097),
    FiatSpec("norwegian-krone", "NOK", "kr", 0.0929),
    FiatSpec("danish-krone", "DKK", "kr.", 0.1481),
    FiatSpec("polish-zloty", "PLN", "zł", 0.258),
    FiatSpec("singapore-dollar", "SGD", "$", 0.767),
    FiatSpec("hong-kong-dollar", "HKD", "$", 0.1282),
    FiatSpec("new-zealand-dollar", "NZD", "$", 0.617),
    FiatSpec("thai-baht", "THB", "฿", 0.0295),
    FiatSpec("philippine-peso", "PHP", "₱", 0.0178),
    FiatSpec("ukrainian-hryvnia", "UAH", "₴", 0.0243),
    FiatSpec("nigerian-naira", "NGN", "₦", 0.000612),
    FiatSpec("argentine-peso", "ARS", "$", 0.00104),
    FiatSpec("israeli-new-shekel", "ILS", "₪", 0.266),
    FiatSpec("czech-republic-koruna", "CZK", "Kč", 0.0441),
    FiatSpec("hungarian-forint", "HUF", "Ft", 0.0028),
    FiatSpec("vietnamese-dong", "VND", "₫", 0.0000405),
)
FIAT_DAILY_VOL = 0.004

# Crypto assets also served by /rates, with their currency sign when they have
# one (CoinCap sends null otherwise).
CRYPTO_RATES: dict[str, str | None] = {
    "bitcoin": "₿",
    "ethereum": "Ξ",
    "litecoin": "Ł",
    "tether": "₮",
    "binance-coin": None,
    "solana": None,
    "ripple": None,
    "dogecoin": "Ð",
}

# The one rate served with a JSON number instead of a decimal string, as in the
# published /rates/{slug} example: clients must accept both.
NUMBER_RATE_ID = "euro"

# Quote currencies of markets and how often each is picked.
QUOTES: tuple[tuple[str, float], ...] = (
    ("tether", 0.42),
    ("united-states-dollar", 0.14),
    ("usd-coin", 0.12),
    ("bitcoin", 0.10),
    ("ethereum", 0.05),
    ("euro", 0.05),
    ("binance-coin", 0.03),
    ("south-korean-won", 0.03),
    ("japanese-yen", 0.02),
    ("turkish-lira", 0.02),
    ("british-pound-sterling", 0.02),
)

_SYLLABLES = (
    "ka", "zo", "ri", "mi", "ta", "ne", "lu", "vo", "xi", "ra", "po", "qua",
    "sen", "dra", "fy", "nex", "ar", "bit", "ko", "chai", "fi", "io", "sol",
    "ver", "zen", "mo", "ly", "tro", "vex", "om",
)  # fmt: skip
_SUFFIXES = ("", "", "", " Token", " Protocol", " Network", " Finance", " Chain")


def generated_name(rng: random.Random) -> tuple[str, str, str]:
    """Invent one asset identity from ``rng``.

    Returns ``(id, symbol, name)``, e.g. ``("zorix-network", "ZRX", "Zorix
    Network")``; the caller makes them unique.
    """
    stem = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3)))
    name = stem.capitalize() + rng.choice(_SUFFIXES)
    slug = name.lower().replace(" ", "-")
    symbol = stem[: rng.randint(3, 4)].upper()
    return slug, symbol, name
