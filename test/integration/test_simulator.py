"""The CoinCap v3 simulator, exercised over real HTTP on 127.0.0.1."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from crypto_etl.simulator import INTERVAL_MS, MAX_HISTORY_WINDOW_MS, CoinCapSimulator

KEY = "test-key-123"
DAY_MS = 86_400_000
RETIRED = (
    "We are deprecating this version of the CoinCap API on March 31, 2025. "
    "Sign up for our new V3 API at https://pro.coincap.io/dashboard"
)


@pytest.fixture(scope="module")
def running_sim() -> Iterator[CoinCapSimulator]:
    with CoinCapSimulator(api_key=KEY) as simulator:
        yield simulator


@pytest.fixture
def sim(running_sim: CoinCapSimulator) -> CoinCapSimulator:
    """The module's simulator, without faults, overrides or stats of earlier tests.

    Its market may have ticked: every test here compares states it saw itself.
    """
    running_sim.clear_faults()
    running_sim.set_exchanges(None)
    running_sim.reset_stats()
    return running_sim


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {KEY}"
        yield session


def get(
    http: requests.Session, sim: CoinCapSimulator, path: str, **params: Any
) -> requests.Response:
    return http.get(sim.base_url + path, params=params, timeout=10)


def all_exchanges(http: requests.Session, sim: CoinCapSimulator) -> list[Any]:
    response = get(http, sim, "/exchanges", limit=2000)
    assert response.status_code == 200
    rows: list[Any] = response.json()["data"]
    return rows


# -- auth --------------------------------------------------------------------


def test_request_without_key_is_401_with_empty_body(sim: CoinCapSimulator) -> None:
    response = requests.get(sim.base_url + "/exchanges", timeout=10)
    assert response.status_code == 401
    assert response.content == b""


def test_wrong_key_is_401(sim: CoinCapSimulator) -> None:
    headers = {"Authorization": "Bearer not-the-key"}
    response = requests.get(sim.base_url + "/assets", headers=headers, timeout=10)
    assert response.status_code == 401


def test_bearer_header_and_api_key_query_both_authorize(
    sim: CoinCapSimulator, http: requests.Session
) -> None:
    assert get(http, sim, "/exchanges").status_code == 200
    query = requests.get(
        sim.base_url + "/exchanges", params={"apiKey": KEY}, timeout=10
    )
    assert query.status_code == 200


def test_request_log_never_holds_the_api_key(sim: CoinCapSimulator) -> None:
    requests.get(
        sim.base_url + "/assets", params={"apiKey": KEY, "limit": "3"}, timeout=10
    )
    (record,) = sim.request_log
    assert record.params == {"limit": "3"}
    assert KEY not in repr(sim.request_log)


# -- paging and errors -------------------------------------------------------


def test_exchanges_default_to_10_and_offset_continues_the_ranking(
    sim: CoinCapSimulator, http: requests.Session
) -> None:
    first = get(http, sim, "/exchanges").json()["data"]
    second = get(http, sim, "/exchanges", limit=10, offset=10).json()["data"]
    ranks = [int(row["rank"]) for row in first + second]
    assert ranks == list(range(1, 21))
    assert len(all_exchanges(http, sim)) == 60


def test_markets_default_to_10_and_assets_to_100(
    sim: CoinCapSimulator, http: requests.Session
) -> None:
    assert len(get(http, sim, "/markets").json()["data"]) == 10
    assert len(get(http, sim, "/assets").json()["data"]) == 100


def test_paging_markets_to_a_short_page_sees_every_market_once(
    sim: CoinCapSimulator, http: requests.Session
) -> None:
    seen: list[tuple[str, str, str]] = []
    offset = 0
    while True:
        page = get(http, sim, "/markets", limit=2000, offset=offset).json()["data"]
        seen += [(m["exchangeId"], m["baseId"], m["quoteId"]) for m in page]
        offset += 2000
        if len(page) < 2000:
            break
    assert len(seen) == len(set(seen)) > 2000


def test_markets_filters_keep_only_matching_rows(
    sim: CoinCapSimulator, http: requests.Session
) -> None:
    rows = get(
        http, sim, "/markets", exchangeId="kraken", assetSymbol="btc", limit=2000
    ).json()["data"]
    assert rows
    assert all(row["exchangeId"] == "kraken" for row in rows)
    assert all("BTC" in (row["baseSymbol"], row["quoteSymbol"]) for row in rows)


def test_assets_ids_and_search_filters(
    sim: CoinCapSimulator, http: requests.Session
) -> None:
    by_ids = get(http, sim, "/assets", ids="ethereum,bitcoin,nope").json()["data"]
    assert [row["id"] for row in by_ids] == ["bitcoin", "ethereum"]
    found = get(http, sim, "/assets", search="DOGE").json()["data"]
    assert [row["id"] for row in found] == ["dogecoin"]


@pytest.mark.parametrize(
    "query",
    [
        {"limit": 2001},
        {"limit": "ten"},
        {"limit": 0},
        {"offset": -1},
        {"offset": "x"},
    ],
)
def test_bad_paging_is_400_invalid_query_parameters(
    sim: CoinCapSimulator, http: requests.Session, query: dict[str, Any]
) -> None:
    response = get(http, sim, "/markets", **query)
    assert response.status_code == 400
    assert response.json() == {"error": "Invalid query parameters"}


def test_unknown_ids_are_404_with_the_documented_bodies(
    sim: CoinCapSimulator, http: requests.Session
) -> None:
    exchange = get(http, sim, "/exchanges/no-such-exchange")
    assert (exchange.status_code, exchange.json()) == (
        404,
        {"error": "Exchange not found"},
    )
    rate = get(http, sim, "/rates/no-such-rate")
    assert (rate.status_code, rate.json()) == (
        404,
        {"error": "Conversion rate not found"},
    )
    asset = get(http, sim, "/assets/no-such-coin/history", interval="h1")
    assert asset.status_code == 404
    assert asset.json()["error"] == "no-such-coin not found"


def test_v2_paths_answer_the_retirement_body(sim: CoinCapSimulator) -> None:
    url = sim.base_url.removesuffix("/v3") + "/v2/assets"
    response = requests.get(url, timeout=10)
    assert response.status_code == 200
    body = response.json()
    assert body["data"] == {"message": RETIRED}
    assert isinstance(body["timestamp"], int)


# -- contract shapes ---------------------------------------------------------


def test_exchanges_follow_the_contract_types_and_null_pattern(
    sim: CoinCapSimulator, http: requests.Session
) -> None:
    rows = all_exchanges(http, sim)
    silent = [row for row in rows if row["volumeUsd"] is None]
    assert silent and all(
        row["percentTotalVolume"] is None
        and row["socket"] is None
        and row["updated"] == 0
        for row in silent
    )
    live = [row for row in rows if row["volumeUsd"] is not None]
    assert all(isinstance(row["updated"], int) and row["updated"] > 0 for row in live)
    assert all(isinstance(row["rank"], str) for row in rows)
    total = sum(float(row["percentTotalVolume"]) for row in live)
    assert total == pytest.approx(100.0)


def test_exactly_one_rate_is_a_json_number(
    sim: CoinCapSimulator, http: requests.Session
) -> None:
    rates = get(http, sim, "/rates").json()["data"]
    numbers = [row["id"] for row in rates if not isinstance(row["rateUsd"], str)]
    assert len(rates) >= 35
    assert len(numbers) == 1


def test_set_exchanges_serves_rows_verbatim_and_pages_them(
    sim: CoinCapSimulator, http: requests.Session
) -> None:
    rows: list[dict[str, object]] = [
        {"exchangeId": f"x{i}", "rank": i, "weird": [i]} for i in range(25)
    ]
    sim.set_exchanges(rows)
    page = get(http, sim, "/exchanges", offset=20).json()["data"]
    assert page == rows[20:]
    assert get(http, sim, "/exchanges/x3").json()["data"] == rows[3]


# -- history -----------------------------------------------------------------


def test_history_has_no_points_after_the_clock(
    sim: CoinCapSimulator, http: requests.Session
) -> None:
    step = INTERVAL_MS["h1"]
    start = sim.clock_ms - 5 * step
    data = get(
        http,
        sim,
        "/assets/bitcoin/history",
        interval="h1",
        start=start,
        end=start + 20 * step,
    )
    times = [p["time"] for p in data.json()["data"]]
    assert times and max(times) <= sim.clock_ms
    # The clock is frozen (no auto tick), and [start, clock) is five hours
    # long: exactly five points on the hourly grid, whatever the clock's minute.
    assert len(times) == 5


@pytest.mark.parametrize("interval", ["m5", "h1", "d1"])
def test_history_points_sit_on_the_interval_grid(
    sim: CoinCapSimulator, http: requests.Session, interval: str
) -> None:
    step = INTERVAL_MS[interval]
    start = 1_720_000_000_000 + 12_345  # 50 days of d1 still end before the clock
    end = start + 50 * step
    data = get(
        http, sim, "/assets/bitcoin/history", interval=interval, start=start, end=end
    )
    points = data.json()["data"]
    times = [p["time"] for p in points]
    assert times == list(range(-(-start // step) * step, end, step))
    assert all(
        isinstance(p["priceUsd"], str) and float(p["priceUsd"]) > 0 for p in points
    )
    assert all(
        re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z", p["date"]) for p in points
    )


def test_history_date_matches_time(
    sim: CoinCapSimulator, http: requests.Session
) -> None:
    response = get(
        http,
        sim,
        "/assets/bitcoin/history",
        interval="h1",
        start=1_725_915_600_000,
        end=1_725_919_200_000,
    )
    (point,) = response.json()["data"]
    assert point["date"] == "2024-09-09T21:00:00.000Z"


def test_history_is_the_same_from_another_simulator_with_the_same_seed(
    sim: CoinCapSimulator, http: requests.Session
) -> None:
    query = {"interval": "m15", "start": 1_600_000_000_000, "end": 1_600_500_000_000}
    ours = get(http, sim, "/assets/ethereum/history", **query).json()["data"]
    with (
        CoinCapSimulator(api_key=KEY) as twin,
        CoinCapSimulator(api_key=KEY, seed=8) as other,
    ):
        assert (
            get(http, twin, "/assets/ethereum/history", **query).json()["data"] == ours
        )
        assert (
            get(http, other, "/assets/ethereum/history", **query).json()["data"] != ours
        )


def test_history_window_at_the_maximum_is_served_and_one_ms_more_is_400(
    sim: CoinCapSimulator, http: requests.Session
) -> None:
    start = 1_700_000_000_000 - 1_700_000_000_000 % DAY_MS
    end = start + MAX_HISTORY_WINDOW_MS["m1"]
    ok = get(http, sim, "/assets/bitcoin/history", interval="m1", start=start, end=end)
    assert len(ok.json()["data"]) == 1440
    too_long = get(
        http, sim, "/assets/bitcoin/history", interval="m1", start=start, end=end + 1
    )
    assert too_long.status_code == 400
    assert too_long.json() == {"error": "Invalid query parameters"}


@pytest.mark.parametrize(
    "query",
    [
        {"interval": "m2"},
        {},
        {"interval": "h1", "start": 1_700_000_000_000},
        {"interval": "h1", "end": 1_700_000_000_000},
        {"interval": "h1", "start": 1_700_000_000_000, "end": 1_600_000_000_000},
    ],
)
def test_bad_history_query_is_400(
    sim: CoinCapSimulator, http: requests.Session, query: dict[str, Any]
) -> None:
    response = get(http, sim, "/assets/bitcoin/history", **query)
    assert response.status_code == 400


def test_history_without_range_ends_at_the_simulator_clock(
    sim: CoinCapSimulator, http: requests.Session
) -> None:
    points = get(http, sim, "/assets/bitcoin/history", interval="m1").json()["data"]
    assert len(points) == 1440
    assert sim.clock_ms - 60_000 <= points[-1]["time"] < sim.clock_ms


def test_history_window_of_2000_points_is_served_whole(
    sim: CoinCapSimulator, http: requests.Session
) -> None:
    # How fast it is served is measured by `make bench`, not here.
    start = 1_500_000_000_000 - 1_500_000_000_000 % DAY_MS
    response = get(
        http,
        sim,
        "/assets/bitcoin/history",
        interval="d1",
        start=start,
        end=start + 2000 * DAY_MS,
    )
    assert len(response.json()["data"]) == 2000


# -- the market moves ----------------------------------------------------------


def test_market_is_frozen_between_ticks(
    sim: CoinCapSimulator, http: requests.Session
) -> None:
    paths = [
        "/exchanges?limit=2000",
        "/assets?limit=2000",
        "/markets?limit=500",
        "/rates",
    ]
    first = [http.get(sim.base_url + p, timeout=10).content for p in paths]
    second = [http.get(sim.base_url + p, timeout=10).content for p in paths]
    assert first == second


def test_tick_changes_updated_of_exactly_n_exchanges(
    sim: CoinCapSimulator, http: requests.Session
) -> None:
    before = {row["exchangeId"]: row["updated"] for row in all_exchanges(http, sim)}
    sim.tick(changed_exchanges=3)
    after = {row["exchangeId"]: row["updated"] for row in all_exchanges(http, sim)}
    changed = [key for key in before if after[key] != before[key]]
    assert len(changed) == 3
    assert all(after[key] > before[key] for key in changed)


def test_tick_without_n_updates_every_reporting_exchange_only(
    sim: CoinCapSimulator, http: requests.Session
) -> None:
    before = all_exchanges(http, sim)
    sim.tick()
    after = {row["exchangeId"]: row for row in all_exchanges(http, sim)}
    for row in before:
        new = after[row["exchangeId"]]
        if row["volumeUsd"] is None:
            assert new["updated"] == 0
        else:
            assert new["updated"] > row["updated"]


def test_envelope_timestamp_is_the_clock_and_advances_with_tick(
    sim: CoinCapSimulator, http: requests.Session
) -> None:
    first = get(http, sim, "/assets/bitcoin").json()
    sim.tick(0)
    second = get(http, sim, "/assets/bitcoin").json()
    assert first["timestamp"] == sim.clock_ms - 60_000
    assert second["timestamp"] == sim.clock_ms
    assert second["data"]["priceUsd"] != first["data"]["priceUsd"]


def test_auto_tick_moves_the_clock_on_its_own() -> None:
    with CoinCapSimulator(api_key=KEY, auto_tick_seconds=0.05) as sim:
        start = sim.clock_ms
        deadline = time.monotonic() + 5
        while sim.clock_ms == start and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sim.clock_ms > start


# -- faults ------------------------------------------------------------------


def test_fail_next_429_with_and_without_retry_after(
    sim: CoinCapSimulator, http: requests.Session
) -> None:
    sim.fail_next(429, retry_after="2")
    sim.fail_next(429)
    with_header = get(http, sim, "/assets")
    without = get(http, sim, "/assets")
    assert (with_header.status_code, with_header.headers.get("Retry-After")) == (
        429,
        "2",
    )
    assert (without.status_code, without.headers.get("Retry-After")) == (429, None)
    assert get(http, sim, "/assets").status_code == 200


def test_fail_next_500_twice_then_data(
    sim: CoinCapSimulator, http: requests.Session
) -> None:
    sim.fail_next(500, times=2)
    statuses = [get(http, sim, "/rates").status_code for _ in range(3)]
    assert statuses == [500, 500, 200]


def test_fault_restricted_to_a_path_spares_other_routes(
    sim: CoinCapSimulator, http: requests.Session
) -> None:
    sim.fail_next(503, path="/markets")
    assert get(http, sim, "/exchanges").status_code == 200
    assert get(http, sim, "/markets").status_code == 503
    assert get(http, sim, "/markets").status_code == 200


def test_fail_always_lasts_until_clear_faults(
    sim: CoinCapSimulator, http: requests.Session
) -> None:
    sim.fail_always(401, path="/assets")
    assert [get(http, sim, "/assets").status_code for _ in range(3)] == [401] * 3
    sim.clear_faults()
    assert get(http, sim, "/assets").status_code == 200


def test_short_body_breaks_the_read(
    sim: CoinCapSimulator, http: requests.Session
) -> None:
    sim.truncate_next(mode="short_body")
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        get(http, sim, "/exchanges")
    assert get(http, sim, "/exchanges").status_code == 200


def test_bad_json_is_valid_http_with_half_a_document(
    sim: CoinCapSimulator, http: requests.Session
) -> None:
    sim.truncate_next(mode="bad_json")
    response = get(http, sim, "/exchanges")
    assert response.status_code == 200
    assert int(response.headers["Content-Length"]) == len(response.content)
    with pytest.raises(requests.exceptions.JSONDecodeError):
        response.json()


def test_delay_next_slows_one_answer_without_blocking_others(
    sim: CoinCapSimulator, http: requests.Session
) -> None:
    sim.delay_next(3.0, path="/rates")
    slow: list[float] = []

    def fetch_slow() -> None:
        began = time.perf_counter()
        requests.get(sim.base_url + "/rates", params={"apiKey": KEY}, timeout=10)
        slow.append(time.perf_counter() - began)

    worker = threading.Thread(target=fetch_slow)
    worker.start()
    assert get(http, sim, "/exchanges").status_code == 200
    # The other answer came while the delayed one is still held back.
    assert worker.is_alive()
    worker.join()
    assert slow[0] >= 3.0


def _chaos_outcome(sim: CoinCapSimulator) -> str:
    """What one request to ``sim`` got: a status, a broken body, or a whole answer."""
    try:
        response = requests.get(
            sim.base_url + "/rates", params={"apiKey": KEY}, timeout=10
        )
    except requests.exceptions.ChunkedEncodingError:
        return "short body"
    if response.status_code != 200:
        return str(response.status_code)
    try:
        response.json()
    except requests.exceptions.JSONDecodeError:
        return "bad json"
    return "whole"


def test_chaos_mode_injects_faults() -> None:
    with CoinCapSimulator(api_key=KEY, fault_rate=1.0, seed=3) as sim:
        outcomes = [_chaos_outcome(sim) for _ in range(12)]
    # Every request draws a fault, from the seeded generator: the same ones in
    # the same order on every run. "whole" is the slow fault's late answer.
    assert outcomes == [
        "500",
        "short body",
        "bad json",
        "500",
        "bad json",
        "500",
        "500",
        "short body",
        "429",
        "429",
        "whole",
        "bad json",
    ]


# -- accounting and lifecycle -------------------------------------------------


def test_bytes_sent_equals_the_body_bytes_received(
    sim: CoinCapSimulator, http: requests.Session
) -> None:
    sim.truncate_next(mode="bad_json", path="/assets")
    sim.fail_next(500, path="/rates")
    received = 0
    for path in ["/exchanges", "/assets", "/rates", "/markets?limit=300", "/nope"]:
        received += len(http.get(sim.base_url + path, timeout=10).content)
    received += len(requests.get(sim.base_url + "/rates", timeout=10).content)
    assert sim.bytes_sent == received
    assert sim.calls == 6
    assert sim.calls_by_route["/rates"] == 2
    assert sum(r.body_bytes for r in sim.request_log) == received


def test_reset_stats_starts_counting_from_zero(
    sim: CoinCapSimulator, http: requests.Session
) -> None:
    get(http, sim, "/exchanges")
    sim.reset_stats()
    assert (sim.calls, sim.bytes_sent, sim.calls_by_route, sim.request_log) == (
        0,
        0,
        {},
        [],
    )


def test_stop_closes_kept_alive_connections(http: requests.Session) -> None:
    sim = CoinCapSimulator(api_key=KEY)
    sim.start()
    assert get(http, sim, "/rates").status_code == 200
    url = sim.base_url + "/rates"
    sim.stop()
    with pytest.raises(requests.exceptions.ConnectionError):
        http.get(url, timeout=5)


def test_latency_delays_every_answer_by_a_fixed_time_or_one_drawn_from_a_range(
    http: requests.Session,
) -> None:
    from crypto_etl.simulator import Latency

    with CoinCapSimulator(api_key=KEY, latency_ms=(200, 300)) as sim:
        took = []
        for _ in range(3):
            began = time.perf_counter()
            assert get(http, sim, "/rates").status_code == 200
            took.append(time.perf_counter() - began)
    assert min(took) >= 0.2
    assert Latency.parse("250") == Latency(250, 250)
    assert Latency.parse(" 100-400 ") == Latency(100, 400)
    for bad in ("fast", "400-100", "-5", "nan", "inf"):
        with pytest.raises(ValueError, match="latency must be"):
            Latency.parse(bad)


def test_simulate_refuses_a_bad_latency_as_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from crypto_etl.cli import main

    with pytest.raises(SystemExit) as info:
        main(["simulate", "--latency-ms", "soon"])
    assert info.value.code == 2
    assert "latency must be milliseconds like 250 or 100-400" in capsys.readouterr().err
