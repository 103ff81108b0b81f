"""InFlight: at most N calls at a time, results in order of completion, clean stops.

Driven by events, not by timing: each call reports its start and blocks
until the test releases it.
"""

import queue
import threading

import pytest

from crypto_etl.coincap.inflight import InFlight


class Gate:
    """Calls that report their start and wait until the test releases them."""

    def __init__(self):
        self.started: queue.Queue[int] = queue.Queue()
        self.release = {i: threading.Event() for i in range(10)}
        self.finished = []
        self.running = 0
        self.most_running = 0
        self._lock = threading.Lock()

    def __call__(self, item):
        with self._lock:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        self.started.put(item)
        try:
            assert self.release[item].wait(10)
            if item == 3:
                raise ValueError("item 3 fails")
            return item * 10
        finally:
            with self._lock:
                self.running -= 1
                self.finished.append(item)

    def next_start(self):
        return self.started.get(timeout=10)


def test_no_more_than_the_limit_run_and_results_come_in_order_of_completion():
    gate = Gate()
    items = iter(range(5))
    with InFlight(gate, items, 2) as calls:
        results = iter(calls)
        gate.release[1].set()
        first = next(results)
        assert (first.item, first.result()) == (1, 10)
        assert {gate.next_start(), gate.next_start()} == {0, 1}
        assert gate.next_start() == 2  # started when 1's result was taken
        gate.release[2].set()
        assert next(results).item == 2
        assert gate.next_start() == 3
        # 0 finishes first, so 4 starts before 3 fails (a failure stops
        # new calls): release them in that order.
        gate.release[0].set()
        zero = next(results)
        assert gate.next_start() == 4  # started when 0's result was taken
        for item in (3, 4):
            gate.release[item].set()
        rest = [zero, *results]
    assert gate.most_running == 2
    assert [d.item for d in rest if d.error is None] == [0, 4]
    failed = [d for d in rest if d.error is not None]
    assert [d.item for d in failed] == [3]
    with pytest.raises(ValueError, match="item 3 fails"):
        failed[0].result()


def test_after_stop_calls_in_flight_finish_and_nothing_new_starts():
    gate = Gate()
    items = iter(range(10))
    with InFlight(gate, items, 3) as calls:
        results = iter(calls)
        gate.release[0].set()
        assert next(results).item == 0
        calls.stop()
        for item in (1, 2, 3):
            gate.release[item].set()
        finished = sorted(d.item for d in results)
    assert finished == [1, 2, 3]  # the three in flight when it stopped
    assert next(items) == 4  # never taken


def test_leaving_the_block_with_an_error_waits_for_the_calls_in_flight():
    gate = Gate()
    items = iter(range(10))
    with pytest.raises(RuntimeError, match="loading failed"):
        with InFlight(gate, items, 2) as calls:
            results = iter(calls)
            gate.release[0].set()
            next(results)
            # 1 and 2 are in flight: let them end after the block is left.
            for item in (1, 2):
                threading.Timer(0.05, gate.release[item].set).start()
            raise RuntimeError("loading failed")
    assert sorted(gate.finished) == [0, 1, 2]  # both had ended
    assert next(items) == 3


def test_a_limit_below_one_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        InFlight(abs, [1], 0)
