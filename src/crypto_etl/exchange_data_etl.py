"""The exchanges pipeline: CoinCap ``/exchanges`` into ``coincap.exchanges``.

Keeps the public names of the original project (``run``,
``get_exchange_data``, ``get_utc_from_unix_time``, ``WarehouseConnection``)
on top of the shared client, parser, loader and snapshot runner.
"""

from __future__ import annotations

from typing import Any

from crypto_etl.coincap.client import CoinCapClient
from crypto_etl.config import Settings, load_settings
from crypto_etl.pipelines.catalog import EXCHANGES
from crypto_etl.pipelines.cost import Budget
from crypto_etl.pipelines.snapshot import fetch, run_snapshot
from crypto_etl.records.parse import get_utc_from_unix_time
from crypto_etl.records.rows import RunRecord
from crypto_etl.warehouse.connection import WarehouseConnection

__all__ = [
    "EXCHANGES",
    "WarehouseConnection",
    "get_exchange_data",
    "get_utc_from_unix_time",
    "run",
]


def get_exchange_data(client: CoinCapClient) -> list[dict[str, Any]]:
    """Return every raw exchange row from CoinCap (all pages).

    Raises:
        ApiError: when CoinCap cannot give the data (see ``crypto_etl.errors``).
    """
    rows, _ = fetch(EXCHANGES, client)
    return rows


def run(settings: Settings | None = None) -> RunRecord:
    """Fetch the exchanges and load them into the warehouse once.

    Args:
        settings: defaults to ``load_settings()`` (environment, then ``env``).

    Returns:
        The run record stored in ``coincap.etl_runs``.

    Raises:
        CryptoEtlError: a subclass saying what failed and what to check.
    """
    settings = settings or load_settings()
    with (
        CoinCapClient.from_settings(settings) as client,
        WarehouseConnection(settings.warehouse) as warehouse,
    ):
        budget = Budget(settings.monthly_credits)
        return run_snapshot(EXCHANGES, client, warehouse, budget=budget)
