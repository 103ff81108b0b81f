"""The yardstick: the least code that makes the backfill's calls and loads them.

One ``requests`` session, one call per m1 day of each asset, one after the
other, ``json.loads`` and a COPY of the points into ``coincap.asset_history``
in one transaction per call. No rate limit, no retries, no checks, no
checkpoints: what ``bench/throughput_bench.py`` compares ``crypto-etl
backfill`` against. Reads WAREHOUSE_* and COINCAP_* from the environment.

    python bench/minimal_backfill.py bitcoin,ethereum 2024-07-01 30
"""

from __future__ import annotations

import io
import json
import os
import sys
from datetime import datetime, timezone

import psycopg2
import requests

DAY_MS = 86_400_000


def main(argv: list[str]) -> int:
    """Fetch and load ``days`` m1 days from ``start`` for each asset."""
    assets, start, days = argv[0].split(","), argv[1], int(argv[2])
    first = datetime.fromisoformat(start).replace(tzinfo=timezone.utc)
    first_ms = int(first.timestamp()) * 1000
    base = os.environ["COINCAP_BASE_URL"]
    http = requests.Session()
    http.headers["Authorization"] = "Bearer " + os.environ["COINCAP_API_KEY"]
    conn = psycopg2.connect(
        host=os.environ["WAREHOUSE_HOST"],
        port=os.environ["WAREHOUSE_PORT"],
        dbname=os.environ["WAREHOUSE_DB"],
        user=os.environ["WAREHOUSE_USER"],
        password=os.environ["WAREHOUSE_PASSWORD"],
    )
    for asset in assets:
        for day in range(days):
            at = first_ms + day * DAY_MS
            params: dict[str, str | int] = {"interval": "m1", "start": at}
            params["end"] = at + DAY_MS - 1
            response = http.get(f"{base}/assets/{asset}/history", params=params)
            response.raise_for_status()
            buffer = io.StringIO()
            for point in json.loads(response.content)["data"]:
                when = datetime.fromtimestamp(point["time"] / 1000, timezone.utc)
                buffer.write(f"{asset}\tm1\t{when.isoformat()}\t{point['priceUsd']}\n")
            buffer.seek(0)
            with conn, conn.cursor() as cur:
                cur.copy_expert(
                    'COPY coincap.asset_history (asset_id, "interval", "time",'
                    " price_usd) FROM STDIN",
                    buffer,
                )
    conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
