"""crypto_etl: CoinCap market data into a PostgreSQL warehouse, with dashboards."""

__version__ = "0.1.0"
