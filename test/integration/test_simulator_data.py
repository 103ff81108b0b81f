"""The simulator's data is coherent as a market, and its server speaks JSON
even to requests it does not serve."""

import json
import socket

import pytest
import requests

from crypto_etl.simulator import CoinCapSimulator

from conftest import API_KEY

DAY_MS = 86_400_000


def get(sim, path, **params):
    response = requests.get(
        sim.base_url + path,
        params=params,
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=10,
    )
    response.raise_for_status()
    return response.json()["data"]


@pytest.fixture
def moved(simulator):
    """The market a month and a half on: prices have drifted apart."""
    for _ in range(45):
        simulator.tick(step_ms=DAY_MS)
    return simulator


def test_asset_rank_follows_market_cap_at_every_moment(moved):
    rows = get(moved, "/assets", limit=2000)
    caps = [float(row["marketCapUsd"]) for row in rows]
    assert [int(row["rank"]) for row in rows] == list(range(1, len(rows) + 1))
    assert caps == sorted(caps, reverse=True)


def test_exchange_rank_follows_volume_and_silent_ones_come_last(moved):
    rows = get(moved, "/exchanges", limit=2000)
    assert [int(row["rank"]) for row in rows] == list(range(1, len(rows) + 1))
    volumes = [float(r["volumeUsd"]) for r in rows if r["volumeUsd"] is not None]
    assert volumes == sorted(volumes, reverse=True)
    assert all(r["volumeUsd"] is None for r in rows[len(volumes) :])


def test_wrapped_bitcoin_tracks_bitcoin_now_and_in_history(moved):
    now = {
        row["id"]: float(row["priceUsd"]) for row in get(moved, "/assets", limit=2000)
    }
    assert 0.99 < now["wrapped-bitcoin"] / now["bitcoin"] < 1.0
    end = moved.clock_ms
    params = {"interval": "d1", "start": end - 300 * DAY_MS, "end": end}
    btc = get(moved, "/assets/bitcoin/history", **params)
    wbtc = get(moved, "/assets/wrapped-bitcoin/history", **params)
    assert len(btc) == len(wbtc) > 250
    for a, b in zip(btc, wbtc):
        assert 0.99 < float(b["priceUsd"]) / float(a["priceUsd"]) < 1.0


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_get_a_json_405(simulator, method):
    response = requests.request(method, simulator.base_url + "/assets", timeout=10)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET"
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == {"error": f"method {method} is not allowed; use GET"}


def test_a_malformed_request_line_gets_json_not_html():
    with CoinCapSimulator(api_key=API_KEY) as sim:
        with socket.create_connection(("127.0.0.1", sim.port), timeout=10) as conn:
            conn.sendall(b"GET /v3/assets extra HTTP/1.1\r\n\r\n")
            chunks = []
            while chunk := conn.recv(65536):  # the server closes after an error
                chunks.append(chunk)
            answer = b"".join(chunks).decode()
    head, _, body = answer.partition("\r\n\r\n")
    assert head.split()[1] == "400"
    assert "application/json" in head
    assert "error" in json.loads(body)
