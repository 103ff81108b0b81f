"""The rate limiter holds its rate (measured on a fake clock, so not timing-flaky)."""

import threading
import time

import pytest

from crypto_etl.coincap.ratelimit import RateLimiter


class FakeTime:
    def __init__(self):
        self.now = 1000.0

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_holds_the_rate_after_the_burst():
    t = FakeTime()
    limiter = RateLimiter(600, burst=5, clock=t.clock, sleep=t.sleep)
    start = t.now
    for _ in range(605):
        limiter.acquire()
    # 5 free calls, then one every 0.1 s: 600 more calls take 60 s.
    assert t.now - start == pytest.approx(60.0, abs=1e-6)


def test_a_burst_passes_without_waiting():
    t = FakeTime()
    limiter = RateLimiter(60, burst=3, clock=t.clock, sleep=t.sleep)
    waits = [limiter.acquire() for _ in range(4)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3] == pytest.approx(1.0)


def test_shared_between_threads_it_still_holds_the_rate():
    limiter = RateLimiter(1200, burst=1)  # one call per 50 ms
    stamps = []
    lock = threading.Lock()

    def worker():
        for _ in range(5):
            limiter.acquire()
            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    stamps.sort()
    # 20 calls at 20/s need at least 19 intervals of 50 ms.
    assert stamps[-1] - stamps[0] >= 19 * 0.05 - 0.01


def test_rejects_a_rate_of_zero():
    with pytest.raises(ValueError):
        RateLimiter(0)


def test_a_pause_holds_the_next_call_then_resumes_at_the_rate_without_a_burst():
    t = FakeTime()
    limiter = RateLimiter(600, burst=5, clock=t.clock, sleep=t.sleep)
    limiter.acquire()
    paused_at = t.now
    limiter.pause(2.0)
    limiter.pause(0.5)  # a shorter pause does not cut the running one
    stamps = []
    for _ in range(4):
        limiter.acquire()
        stamps.append(t.now - paused_at)
    assert stamps == pytest.approx([2.0, 2.1, 2.2, 2.3])


def test_a_caller_already_waiting_when_a_pause_begins_waits_for_it_too():
    t = FakeTime()
    limiters: list[RateLimiter] = []

    def sleep(seconds):
        # Another worker's call gets a 429 while this one waits for its slot.
        t.sleep(seconds)
        if t.now < 1001.5:
            limiters[0].pause(3.0)

    limiter = RateLimiter(60, burst=1, clock=t.clock, sleep=sleep)
    limiters.append(limiter)
    limiter.acquire()  # t = 1000
    limiter.acquire()  # its slot is t = 1001, but the pause runs to 1004
    assert t.now == pytest.approx(1004.0)
