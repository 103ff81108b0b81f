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

    ``max_supply`` is the wire string: a number, ``"0"`` for unlimited, or
    None when CoinCap does not know it.
    """

    asset_id: str
    symbol: str
    name: str
    price: float
    supply: float
    max_supply: str | None
    daily_vol: float
    explorer: str | None


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
ASSETS: tuple[AssetSpec, ...] = (
    AssetSpec(
        "bitcoin",
        "BTC",
        "Bitcoin",
        57400.0,
        19752815.0,
        "21000000.0000000000000000",
        0.025,
        "https://blockchain.info/",
    ),
    AssetSpec(
        "ethereum",
        "ETH",
        "Ethereum",
        2350.0,
        120300000.0,
        None,
        0.03,
        "https://etherscan.io/",
    ),
    AssetSpec(
        "tether",
        "USDT",
        "Tether",
        1.0,
        118000000000.0,
        None,
        _STABLE,
        "https://www.omniexplorer.info/asset/31",
    ),
    AssetSpec("binance-coin", "BNB", "BNB", 520.0, 145900000.0, None, 0.03, None),
    AssetSpec(
        "solana",
        "SOL",
        "Solana",
        135.0,
        467000000.0,
        None,
        0.045,
        "https://explorer.solana.com/",
    ),
    AssetSpec(
        "usd-coin",
        "USDC",
        "USDC",
        1.0,
        35000000000.0,
        None,
        _STABLE,
        "https://etherscan.io/token/0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48",
    ),
    AssetSpec(
        "ripple",
        "XRP",
        "XRP",
        0.53,
        56000000000.0,
        "100000000000.0000000000000000",
        0.04,
        "https://xrpcharts.ripple.com/#/graph/",
    ),
    AssetSpec(
        "dogecoin",
        "DOGE",
        "Dogecoin",
        0.10,
        146000000000.0,
        "0",
        0.05,
        "http://dogechain.info/chain/Dogecoin",
    ),
    AssetSpec(
        "tron", "TRX", "TRON", 0.15, 86700000000.0, None, 0.03, "https://tronscan.org/"
    ),
    AssetSpec(
        "cardano",
        "ADA",
        "Cardano",
        0.34,
        35000000000.0,
        "45000000000.0000000000000000",
        0.045,
        "https://cardanoexplorer.com/",
    ),
    AssetSpec(
        "avalanche",
        "AVAX",
        "Avalanche",
        22.0,
        406000000.0,
        "720000000.0000000000000000",
        0.05,
        "https://avascan.info/",
    ),
    AssetSpec(
        "shiba-inu",
        "SHIB",
        "Shiba Inu",
        0.000013,
        589000000000000.0,
        None,
        0.055,
        "https://etherscan.io/token/0x95ad61b0a150d79219dcf64e1e6cc01f0b64c4ce",
    ),
    AssetSpec(
        "chainlink",
        "LINK",
        "Chainlink",
        10.5,
        608000000.0,
        "1000000000.0000000000000000",
        0.045,
        "https://etherscan.io/token/0x514910771af9ca656af840dff83e8264ecf986ca",
    ),
    AssetSpec(
        "polkadot",
        "DOT",
        "Polkadot",
        4.2,
        1450000000.0,
        None,
        0.045,
        "https://polkascan.io/polkadot",
    ),
    AssetSpec(
        "bitcoin-cash",
        "BCH",
        "Bitcoin Cash",
        320.0,
        19770000.0,
        "21000000.0000000000000000",
        0.04,
        "https://blockchair.com/bitcoin-cash/blocks",
    ),
    AssetSpec(
        "near-protocol",
        "NEAR",
        "NEAR Protocol",
        3.9,
        1110000000.0,
        None,
        0.05,
        "https://explorer.near.org/",
    ),
    AssetSpec(
        "uniswap",
        "UNI",
        "Uniswap",
        6.1,
        600000000.0,
        "1000000000.0000000000000000",
        0.05,
        "https://etherscan.io/token/0x1f9840a85d5af5bf1d1762f925bdaddc4201f984",
    ),
    AssetSpec(
        "litecoin",
        "LTC",
        "Litecoin",
        61.0,
        75000000.0,
        "84000000.0000000000000000",
        0.035,
        "http://explorer.litecoin.net/chain/Litecoin",
    ),
    AssetSpec(
        "polygon",
        "MATIC",
        "Polygon",
        0.38,
        9300000000.0,
        "10000000000.0000000000000000",
        0.05,
        "https://polygonscan.com/",
    ),
    AssetSpec(
        "dai",
        "DAI",
        "Dai",
        1.0,
        5300000000.0,
        None,
        _STABLE,
        "https://etherscan.io/token/0x6b175474e89094c44da98b954eedeac495271d0f",
    ),
    AssetSpec(
        "internet-computer",
        "ICP",
        "Internet Computer",
        7.9,
        470000000.0,
        None,
        0.05,
        "https://www.icpexplorer.org/",
    ),
    AssetSpec(
        "ethereum-classic",
        "ETC",
        "Ethereum Classic",
        18.5,
        148000000.0,
        "210700000.0000000000000000",
        0.04,
        "https://blockscout.com/etc/mainnet/",
    ),
    AssetSpec(
        "stellar",
        "XLM",
        "Stellar",
        0.09,
        29400000000.0,
        "50001806812.0000000000000000",
        0.04,
        "https://dashboard.stellar.org/",
    ),
    AssetSpec("monero", "XMR", "Monero", 165.0, 18440000.0, "0", 0.035, None),
    AssetSpec(
        "cosmos",
        "ATOM",
        "Cosmos",
        4.3,
        390000000.0,
        None,
        0.045,
        "https://www.mintscan.io/cosmos",
    ),
    AssetSpec(
        "filecoin",
        "FIL",
        "Filecoin",
        3.4,
        580000000.0,
        "2000000000.0000000000000000",
        0.05,
        "https://filfox.info/en",
    ),
    AssetSpec(
        "aptos",
        "APT",
        "Aptos",
        6.3,
        500000000.0,
        None,
        0.05,
        "https://explorer.aptoslabs.com/",
    ),
    AssetSpec(
        "hedera-hashgraph",
        "HBAR",
        "Hedera",
        0.05,
        37000000000.0,
        "50000000000.0000000000000000",
        0.045,
        "https://hashscan.io/mainnet/dashboard",
    ),
    AssetSpec(
        "vechain",
        "VET",
        "VeChain",
        0.022,
        80000000000.0,
        "86712634466.0000000000000000",
        0.045,
        "https://explore.vechain.org/",
    ),
    AssetSpec(
        "maker",
        "MKR",
        "Maker",
        1500.0,
        920000.0,
        "1005577.0000000000000000",
        0.045,
        "https://etherscan.io/token/0x9f8f72aa9304c8b593d555f12ef6589cc3a579a2",
    ),
    AssetSpec(
        "aave",
        "AAVE",
        "Aave",
        140.0,
        14900000.0,
        "16000000.0000000000000000",
        0.05,
        "https://etherscan.io/token/0x7fc66500c84a76ad7e9c93437bfc5ac33e2ddae9",
    ),
    AssetSpec(
        "algorand",
        "ALGO",
        "Algorand",
        0.12,
        8200000000.0,
        "10000000000.0000000000000000",
        0.045,
        "https://algoexplorer.io/",
    ),
    AssetSpec("tezos", "XTZ", "Tezos", 0.65, 1000000000.0, None, 0.04, None),
    AssetSpec(
        "wrapped-bitcoin",
        "WBTC",
        "Wrapped Bitcoin",
        57300.0,
        154000.0,
        None,
        0.025,
        "https://etherscan.io/token/0x2260fac5e5542a773aa44fbcfedf7c193bc2c599",
    ),
    AssetSpec(
        "theta",
        "THETA",
        "THETA",
        1.0,
        1000000000.0,
        "1000000000.0000000000000000",
        0.05,
        "https://explorer.thetatoken.org/",
    ),
    AssetSpec(
        "fantom",
        "FTM",
        "Fantom",
        0.4,
        2800000000.0,
        "3175000000.0000000000000000",
        0.06,
        "https://ftmscan.com/",
    ),
)

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
