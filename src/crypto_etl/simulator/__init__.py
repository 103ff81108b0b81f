"""A local CoinCap v3 API server for tests and demos (standard library only).

The pipelines never import it: the product's client keeps its own copy of the
interval tables (a test checks that both agree); only `crypto-etl simulate`
and `crypto-etl demo` start it.

    with CoinCapSimulator(api_key="k") as sim:
        requests.get(sim.base_url + "/exchanges", headers={"Authorization": "Bearer k"})
"""

from crypto_etl.simulator.accounting import RequestRecord
from crypto_etl.simulator.curve import INTERVAL_MS, MAX_HISTORY_WINDOW_MS
from crypto_etl.simulator.faults import Latency
from crypto_etl.simulator.server import CoinCapSimulator

__all__ = [
    "CoinCapSimulator",
    "INTERVAL_MS",
    "Latency",
    "MAX_HISTORY_WINDOW_MS",
    "RequestRecord",
]
