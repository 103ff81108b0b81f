"""Calls kept in flight: a few worker threads, results in order of completion.

A backfill or ``run all`` spends most of its time waiting on the network,
so it keeps several calls in flight on the process's one client (whose rate
limiter still spaces every call) while its one thread loads what came back
on the one database connection. ``InFlight`` is that bounded overlap:

    with InFlight(fetch, windows, client.max_in_flight) as calls:
        for done in calls:
            load(done.item, done.result())

Memory holds at most ``limit`` calls' results (running, or done and not yet
taken) plus the one the caller is handling, however many items there are.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from types import TracebackType
from typing import Callable, Generic, Iterable, Iterator, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Done(Generic[T, R]):
    """One finished call: its ``item`` and either a value or the error it raised."""

    item: T
    value: R | None
    error: BaseException | None

    def result(self) -> R:
        """Return the call's value, or raise the error it raised."""
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]  # None only with an error


class _Stop:
    """Tells a worker to end."""


class InFlight(Generic[T, R]):
    """Run ``fn`` over ``items`` with at most ``limit`` calls at a time.

    Iterate (inside the ``with`` block) to take finished calls, as ``Done``,
    in order of completion. The next item starts as soon as a result is
    taken, before the caller handles it, so the network stays busy while
    the caller works.

    ``stop()`` starts no new call; the iteration then ends once the calls
    already started have finished. Leaving the block stops as well: after an
    ``Exception`` (or none) it first waits for the calls in flight to end,
    so none goes on behind the caller's back; after an interrupt
    (``KeyboardInterrupt``, ``SystemExit``) it does not wait: the workers
    are daemon threads and what they bring back is dropped.

    Args:
        fn: the call; it runs on a worker thread, so it must be thread-safe.
        items: what to call it with, taken lazily in order.
        limit: the most calls in flight at once.

    Raises:
        ValueError: for a ``limit`` below 1.
    """

    def __init__(self, fn: Callable[[T], R], items: Iterable[T], limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self._fn = fn
        self._items = iter(items)
        self._limit = limit
        self._work: queue.Queue[T | _Stop] = queue.Queue()
        self._results: queue.Queue[Done[T, R]] = queue.Queue()
        self._pending = 0  # started, and not yet taken by the caller
        self._stopped = False
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> InFlight[T, R]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        if exc_type is None or issubclass(exc_type, Exception):
            while self._pending:
                self._results.get()
                self._pending -= 1
        for _ in self._threads:
            self._work.put(_Stop())

    def __iter__(self) -> Iterator[Done[T, R]]:
        self._start_more()
        while self._pending:
            done = self._results.get()
            self._pending -= 1
            self._start_more()
            yield done

    def stop(self) -> None:
        """Start no new call (those in flight still finish)."""
        self._stopped = True

    def _start_more(self) -> None:
        while not self._stopped and self._pending < self._limit:
            try:
                item = next(self._items)
            except StopIteration:
                self._stopped = True
                return
            self._pending += 1
            if len(self._threads) < self._pending:
                thread = threading.Thread(
                    target=self._work_loop, name="coincap-call", daemon=True
                )
                thread.start()
                self._threads.append(thread)
            self._work.put(item)

    def _work_loop(self) -> None:
        while True:
            item = self._work.get()
            if isinstance(item, _Stop):
                return
            try:
                done: Done[T, R] = Done(item, self._fn(item), None)
            except BaseException as exc:  # handed to the caller's thread
                done = Done(item, None, exc)
            self._results.put(done)
