"""The CoinCap client over real HTTP against the simulator: paging, retries, errors."""

import time

import pytest

from crypto_etl import errors
from crypto_etl.coincap.client import CoinCapClient, RetryPolicy, parse_retry_after
from crypto_etl.coincap.credits import credits_for
from crypto_etl.config import Secret

from conftest import API_KEY

FAST = RetryPolicy(max_attempts=4, backoff_base=0.01, backoff_cap=0.05, total_budget=10)


class RecordingSleep:
    """Really sleeps, and remembers for how long (to check Retry-After was honoured)."""

    def __init__(self):
        self.calls = []

    def __call__(self, seconds):
        self.calls.append(seconds)
        time.sleep(seconds)


def client_for(sim, key=API_KEY, retry=FAST, **kwargs):
    return CoinCapClient(sim.base_url, Secret(key), retry=retry, **kwargs)


def test_pages_until_a_short_page_sending_limit_and_offset(simulator):
    with client_for(simulator) as client:
        pages = list(client.iter_pages("/exchanges", page_size=25))
    assert [len(p.data) for p in pages] == [25, 25, 10]
    ids = [row["exchangeId"] for p in pages for row in p.data]
    assert len(ids) == len(set(ids)) == 60
    offsets = [
        (e.params.get("limit"), e.params.get("offset")) for e in simulator.request_log
    ]
    assert offsets == [("25", "0"), ("25", "25"), ("25", "50")]


def test_an_exact_multiple_of_the_page_size_ends_on_an_empty_page(simulator):
    with client_for(simulator) as client:
        pages = list(client.iter_pages("/exchanges", page_size=30))
    assert [len(p.data) for p in pages] == [30, 30, 0]


def test_401_is_fatal_names_the_key_setting_and_is_not_retried(simulator):
    with client_for(simulator, key="wrong-key-abcdef") as client:
        with pytest.raises(errors.AuthError) as info:
            client.get("/exchanges", {"limit": 5})
    assert "COINCAP_API_KEY" in str(info.value)
    assert "wrong-key-abcdef" not in str(info.value)
    assert simulator.calls == 1


def test_429_with_retry_after_waits_that_long_then_succeeds(simulator):
    simulator.fail_next(429, retry_after="1")
    sleep = RecordingSleep()
    with client_for(simulator, sleep=sleep) as client:
        page = client.get("/exchanges", {"limit": 5})
    assert len(page.data) == 5
    assert sleep.calls == [1.0]
    assert simulator.calls == 2


def test_429_without_retry_after_backs_off_and_succeeds(simulator):
    simulator.fail_next(429, times=2)
    sleep = RecordingSleep()
    with client_for(simulator, sleep=sleep) as client:
        assert len(client.get("/exchanges", {"limit": 3}).data) == 3
    assert len(sleep.calls) == 2 and all(0 <= s <= 0.05 for s in sleep.calls)


def test_500_then_200_succeeds_on_the_retry(simulator):
    simulator.fail_next(500)
    with client_for(simulator) as client:
        assert len(client.get("/exchanges", {"limit": 2}).data) == 2
    assert simulator.calls == 2
    assert client.stats.calls == 2


def test_persistent_5xx_gives_up_after_the_attempt_limit(simulator):
    simulator.fail_always(503, path="/exchanges")
    with client_for(simulator) as client:
        with pytest.raises(errors.ServerError, match="gave up after 4 attempts"):
            client.get("/exchanges")
    assert simulator.calls == 4


def test_a_retry_after_beyond_the_time_budget_gives_up_without_waiting(simulator):
    simulator.fail_next(429, retry_after="3600")
    sleep = RecordingSleep()
    with client_for(simulator, sleep=sleep) as client:
        with pytest.raises(errors.RateLimitedError, match="budget"):
            client.get("/exchanges")
    assert sleep.calls == []


@pytest.mark.parametrize("mode", ["short_body", "bad_json"])
def test_a_truncated_response_is_retried(simulator, mode):
    simulator.truncate_next(mode=mode)
    with client_for(simulator) as client:
        assert len(client.get("/exchanges", {"limit": 4}).data) == 4
    assert client.stats.calls == 2


def test_a_body_that_stays_truncated_fails_clearly(simulator):
    simulator.truncate_next(times=10, mode="bad_json")
    with client_for(simulator) as client:
        with pytest.raises(errors.ApiConnectionError, match="not valid JSON"):
            client.get("/exchanges")


def test_a_slow_answer_times_out_and_the_retry_succeeds(simulator):
    simulator.delay_next(1.5)
    with client_for(simulator, timeout=(2.0, 0.5)) as client:
        assert len(client.get("/exchanges", {"limit": 1}).data) == 1
    # The client gave up on the slow answer and asked again.
    assert client.stats.calls == 2


def test_400_and_404_are_fatal_with_the_api_message(simulator):
    with client_for(simulator) as client:
        with pytest.raises(errors.BadRequestError, match="Invalid query parameters"):
            client.get("/exchanges", {"limit": 5000})
        with pytest.raises(errors.NotFoundError, match="not found"):
            client.get("/exchanges/no-such-exchange")
    assert simulator.calls == 2


def test_the_retired_v2_api_is_detected_and_explained(simulator):
    v2 = simulator.base_url.removesuffix("/v3") + "/v2"
    with CoinCapClient(v2, Secret(API_KEY), retry=FAST) as client:
        with pytest.raises(errors.ApiRetiredError, match="rest.coincap.io/v3"):
            client.get("/exchanges")


def test_a_payload_that_is_not_the_envelope_is_fatal(simulator):
    simulator.fail_next(200, body=b'{"exchanges": []}')
    with client_for(simulator) as client:
        with pytest.raises(errors.BadPayloadError, match="envelope"):
            client.get("/exchanges")
    assert simulator.calls == 1


def test_the_key_goes_in_a_bearer_header_never_in_the_url(simulator):
    with client_for(simulator) as client:
        client.get("/exchanges", {"limit": 1})
    entry = simulator.request_log[0]
    assert "apiKey" not in entry.params
    assert API_KEY not in entry.path


def test_calls_bytes_and_credits_match_what_the_server_sent(simulator):
    with client_for(simulator) as client:
        pages = list(client.iter_pages("/markets", page_size=500))
    assert client.stats.calls == simulator.calls == len(pages)
    assert client.stats.bytes == simulator.bytes_sent
    assert client.stats.credits == sum(
        credits_for(e.body_bytes) for e in simulator.request_log
    )


def test_credit_formula_is_one_per_call_plus_one_per_extra_2500_bytes():
    assert [credits_for(n) for n in (0, 2500, 2501, 5000, 5001)] == [1, 1, 2, 2, 3]


def test_retry_after_accepts_seconds_and_http_dates():
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
