"""The HTTP side of the simulator: auth, faults, accounting, and the public class.

:class:`CoinCapSimulator` serves a seeded :class:`~.market.Market` on
127.0.0.1 with ``ThreadingHTTPServer`` (HTTP/1.1 keep-alive, one daemon thread
per connection). The access log is quiet: the request line can carry the API
key in ``?apiKey=``, so only the path (never the query) is logged, at DEBUG.
"""

from __future__ import annotations

import hmac
import json
import logging
import random
import socket
import struct
import threading
import time
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from types import TracebackType
from typing import cast
from urllib.parse import parse_qs, urlsplit

from crypto_etl.httpjson import JsonErrorsHandler
from crypto_etl.simulator.accounting import RequestRecord, Stats
from crypto_etl.simulator.api import dispatch, retired, route_name
from crypto_etl.simulator.faults import Fault, FaultPlan, Latency, drift_rows
from crypto_etl.simulator.market import DEFAULT_START_MS, TICK_MS, Market

_log = logging.getLogger(__name__)


# The API's sizes: "small" for fast tests and the demo, "real" for the
# estimated sizes of the live API (200 exchanges, 2,000 assets, ~10,000
# markets, 40 rates), with the same realistic row widths.
SIZES: dict[str, dict[str, int]] = {
    "small": {"n_exchanges": 60, "n_assets": 300, "top_pairs": 250},
    "real": {"n_exchanges": 200, "n_assets": 2000, "top_pairs": 550},
}
# What an exhausted key gets (the body speaks of the credit limit, as seen).
EXHAUSTED_BODY = (
    b'{"error":"Monthly credit limit exceeded for this API key: upgrade your '
    b'plan at https://pro.coincap.io/dashboard"}'
)


class _State:
    """What request handlers share: the market, the faults, the stats, the key,
    and the key's credit allowance (None: unlimited)."""

    def __init__(
        self,
        api_key: str,
        market: Market,
        faults: FaultPlan,
        latency: Latency,
        seed: int,
        monthly_credits: int | None = None,
        exhausted_status: int = 403,
    ) -> None:
        self.market = market
        self.faults = faults
        self.latency = latency
        self.stats = Stats()
        self.monthly_credits = monthly_credits
        self.exhausted_status = exhausted_status
        self._bearer = ("Bearer " + api_key).encode()
        self._key = api_key.encode()
        # Seeded network latency for tests and demos: not security.
        self._rng = random.Random(seed)  # nosec B311
        self._rng_lock = threading.Lock()

    def network_delay(self) -> float:
        """Seconds to hold this answer, as a network would."""
        with self._rng_lock:
            return self.latency.draw(self._rng)

    def exhausted(self) -> bool:
        """Tell whether the key has used its monthly credits."""
        allowance = self.monthly_credits
        return allowance is not None and self.stats.credits >= allowance

    def authorized(self, header: str | None, query_key: str | None) -> bool:
        """Tell whether the Authorization header or ``?apiKey=`` carries the key."""
        if header is not None and hmac.compare_digest(header.encode(), self._bearer):
            return True
        return query_key is not None and hmac.compare_digest(
            query_key.encode(), self._key
        )


class _Server(ThreadingHTTPServer):
    """A threading server that can also cut its open keep-alive connections."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], state: _State) -> None:
        super().__init__(address, _Handler)
        self.state = state
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def track(self, conn: socket.socket, is_open: bool) -> None:
        """Remember (or forget) a connection so :meth:`close_all` can cut it."""
        with self._open_lock:
            if is_open:
                self._open.add(conn)
            else:
                self._open.discard(conn)

    def close_all(self) -> None:
        """Shut every open connection, so a stopped server answers nothing."""
        with self._open_lock:
            for conn in self._open:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # already closed by the peer
            self._open.clear()


class _Handler(JsonErrorsHandler):
    ALLOWED = ("GET",)
    protocol_version = "HTTP/1.1"
    timeout = 30  # drop idle keep-alive connections eventually

    def setup(self) -> None:
        super().setup()
        cast(_Server, self.server).track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            cast(_Server, self.server).track(self.connection, False)

    def log_message(self, format: str, *args: object) -> None:
        """Stay quiet: the default access log prints the query, hence the key."""

    def do_GET(self) -> None:
        received_at = time.monotonic()
        state = cast(_Server, self.server).state
        split = urlsplit(self.path)
        path = split.path
        params = {k: v[0] for k, v in parse_qs(split.query, True).items()}
        query_key = params.pop("apiKey", None)
        route = route_name(path)
        if route == "/v2":
            reply = _Reply(200, _json(retired(state.market.clock)))
        elif not state.authorized(self.headers.get("Authorization"), query_key):
            reply = _Reply(401, b"")
        elif state.exhausted():
            reply = _Reply(state.exhausted_status, EXHAUSTED_BODY)
        else:
            reply = self._answer(state, path, params)
        delay = state.network_delay()
        if delay:
            time.sleep(delay)
        sent = len(reply.payload)
        # Counted before writing: a client may check the stats as soon as it
        # has read the answer, before this thread runs again.
        record = RequestRecord(
            "GET", path, params, reply.status, sent, received_at, time.monotonic()
        )
        state.stats.record(route, record)
        _log.debug("GET %s -> %d (%d bytes)", path, reply.status, sent)
        self._send(reply)

    def _answer(self, state: _State, path: str, params: dict[str, str]) -> _Reply:
        """Apply the faults due (delay, injected status, truncation) or serve data."""
        decision = state.faults.take(path)
        if decision.delay_seconds:
            time.sleep(decision.delay_seconds)
        if decision.status is not None:
            return _Reply(decision.status, decision.body, decision.retry_after)
        status, payload = dispatch(state.market, path, params)
        if decision.drift is not None and isinstance(payload, dict):
            mode, field = decision.drift
            payload = {**payload, "data": drift_rows(payload.get("data"), mode, field)}
        body = _json(payload)
        if decision.pad_to > len(body):
            body += b" " * (decision.pad_to - len(body))  # still valid JSON
        return _Reply(
            status,
            body,
            truncate=decision.truncate,
            content_type=decision.content_type,
        )

    def _send(self, reply: _Reply) -> None:
        """Write ``reply``; a short body closes the connection after it."""
        try:
            self.send_response(reply.status)
            if reply.content_type is not None:
                self.send_header("Content-Type", reply.content_type)
            elif reply.body.startswith(b"<"):
                self.send_header("Content-Type", "text/html")
            elif reply.body:
                self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(reply.content_length))
            if reply.retry_after is not None:
                self.send_header("Retry-After", reply.retry_after)
            self.end_headers()
            self.wfile.write(reply.payload)
            self.wfile.flush()
            if reply.truncate == "reset":
                self._reset()
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (its timeout ran out during a delay).
            self.close_connection = True
        if reply.truncate == "short_body":
            self.close_connection = True

    def _reset(self) -> None:
        """Abort the connection: a zero linger makes close() send an RST."""
        self.connection.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
        )
        self.close_connection = True
        self.connection.close()


@dataclass(frozen=True)
class _Reply:
    """One answer: ``truncate="short_body"`` announces the whole length but
    writes half; ``"bad_json"`` sends half the body as a complete response;
    ``"reset"`` announces the whole length, writes half, then resets the
    connection. ``content_type`` replaces the usual Content-Type."""

    status: int
    body: bytes
    retry_after: str | None = None
    truncate: str | None = None
    content_type: str | None = None

    @property
    def payload(self) -> bytes:
        """The bytes actually written."""
        return self.body[: len(self.body) // 2] if self.truncate else self.body

    @property
    def content_length(self) -> int:
        """The announced length, larger than the payload for a short body."""
        whole = self.truncate in ("short_body", "reset")
        return len(self.body) if whole else len(self.payload)


def _json(payload: object) -> bytes:
    """Encode as CoinCap does: compact UTF-8 JSON."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


class CoinCapSimulator:
    """A local CoinCap v3 API for tests and demos.

    Serves ``/v3/...`` on ``host`` (``port`` 0 picks a free one) with the key
    ``api_key``, a market generated from ``seed`` whose clock starts at
    ``start_ms`` (default: a fixed 2024 instant, or now when
    ``auto_tick_seconds`` is set, in which case the market ticks by itself and
    its clock follows the wall clock). ``fault_rate`` > 0 turns on chaos mode:
    that share of requests gets a 429, a 500, a slow or a truncated answer.
    ``size`` picks the market's size (``SIZES``: ``small`` or ``real``);
    ``n_exchanges``/``n_assets`` override it. With ``monthly_credits`` set,
    once the requests served have cost that many credits (CoinCap's rule)
    every request gets ``exhausted_status`` (403 or 429) and a body about
    the credit limit, as an exhausted key does.
    ``latency_ms`` (milliseconds, fixed or a ``(low, high)`` range) delays
    every answer, as a real network does.
    """

    def __init__(
        self,
        *,
        api_key: str = "demo-key",
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 7,
        start_ms: int | None = None,
        auto_tick_seconds: float | None = None,
        fault_rate: float = 0.0,
        size: str = "small",
        n_exchanges: int | None = None,
        n_assets: int | None = None,
        monthly_credits: int | None = None,
        exhausted_status: int = 403,
        latency_ms: float | tuple[float, float] = 0.0,
    ) -> None:
        """Build the market; raises ValueError for an empty key or bad options."""
        if size not in SIZES:
            raise ValueError(f"size must be one of {', '.join(SIZES)}")
        if monthly_credits is not None and monthly_credits < 0:
            raise ValueError("monthly_credits must not be negative")
        if exhausted_status not in (403, 429):
            raise ValueError("exhausted_status must be 403 or 429")
        shape = dict(SIZES[size])
        if n_exchanges is not None:
            shape["n_exchanges"] = n_exchanges
        if n_assets is not None:
            shape["n_assets"] = n_assets
        n_exchanges, n_assets = shape["n_exchanges"], shape["n_assets"]
        if not api_key:
            raise ValueError("api_key must not be empty")
        if auto_tick_seconds is not None and auto_tick_seconds <= 0:
            raise ValueError("auto_tick_seconds must be positive")
        if not 0.0 <= fault_rate <= 1.0:
            raise ValueError("fault_rate must be within [0, 1]")
        if n_assets < 1 or n_exchanges < 0:
            raise ValueError("n_assets must be at least 1, n_exchanges at least 0")
        if start_ms is None:
            start_ms = DEFAULT_START_MS if auto_tick_seconds is None else _now_ms()
        market = Market(seed=seed, start_ms=start_ms, **shape)
        bounds = latency_ms if isinstance(latency_ms, tuple) else (latency_ms,) * 2
        self._state = _State(
            api_key,
            market,
            FaultPlan(fault_rate=fault_rate, seed=seed),
            Latency(*bounds),
            seed,
            monthly_credits,
            exhausted_status,
        )
        self._address = (host, port)
        self._auto_tick_seconds = auto_tick_seconds
        self._httpd: _Server | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()

    # -- lifecycle ----------------------------------------------------------

    def start(self) -> None:
        """Bind and serve in daemon threads; returns once connections are accepted.

        Raises RuntimeError if already started, OSError if the port is taken.
        """
        if self._httpd is not None:
            raise RuntimeError("the simulator is already running")
        self._httpd = _Server(self._address, self._state)
        self._state.market.snapshot()  # render now, not during the first request
        self._stopping.clear()
        # The socket listens from the bind on: no readiness wait is needed.
        self._threads = [
            threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="coincap-simulator",
                daemon=True,
            )
        ]
        if self._auto_tick_seconds is not None:
            self._threads.append(
                threading.Thread(
                    target=self._auto_tick, name="coincap-simulator-ticker", daemon=True
                )
            )
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop serving and close every connection; does nothing if not running."""
        self._stopping.set()
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.close_all()
        httpd.server_close()
        for thread in self._threads:
            thread.join()
        self._threads = []

    def serve_forever(self) -> None:
        """Serve until :meth:`stop` or Ctrl-C (for the CLI), then stop cleanly.

        Starts the server unless :meth:`start` already did (so a caller can
        print :attr:`base_url` with the bound port first).

        """
        if self._httpd is None:
            self.start()
        try:
            self._stopping.wait()
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def __enter__(self) -> CoinCapSimulator:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port; raises RuntimeError before :meth:`start`."""
        if self._httpd is None:
            raise RuntimeError("the simulator is not running")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v3``; raises RuntimeError before :meth:`start`."""
        return f"http://{self._address[0]}:{self.port}/v3"

    # -- the market ---------------------------------------------------------

    @property
    def clock_ms(self) -> int:
        """The simulator clock (unix ms): the envelope ``timestamp``."""
        return self._state.market.clock

    def tick(
        self, changed_exchanges: int | None = None, step_ms: int = TICK_MS
    ) -> None:
        """Advance the market one step (``step_ms``: a minute of simulator time).

        Exactly ``changed_exchanges`` reporting exchanges (all if None) get new
        volumes and a later ``updated``. Raises ValueError if more than the
        reporting exchanges, or a negative number, are asked for.
        """
        self._state.market.tick(changed_exchanges, step_ms)

    def start_ticking(self, seconds: float) -> None:
        """From now on, tick every ``seconds``, keeping pace with the wall clock.

        For a simulator started in the past and stepped up to now (the demo's
        warm start). Raises ValueError for a non-positive period, RuntimeError
        when not serving or already ticking.
        """
        if seconds <= 0:
            raise ValueError("seconds must be positive")
        if self._httpd is None or self._auto_tick_seconds is not None:
            raise RuntimeError("start ticking once, on a running simulator")
        self._auto_tick_seconds = seconds
        ticker = threading.Thread(
            target=self._auto_tick, name="coincap-simulator-ticker", daemon=True
        )
        self._threads.append(ticker)
        ticker.start()

    def set_exchanges(self, rows: list[dict[str, object]] | None) -> None:
        """Serve ``rows`` verbatim from ``/exchanges`` (paging still applies).

        ``/exchanges/{id}`` finds them by ``exchangeId``; None restores the
        generated exchanges.
        """
        self._state.market.set_exchange_rows(rows)

    def _auto_tick(self) -> None:
        """Tick every ``auto_tick_seconds``, keeping the clock on wall time."""
        interval = cast(float, self._auto_tick_seconds)
        origin_ms, origin = self._state.market.clock, time.monotonic()
        while not self._stopping.wait(interval):
            target = origin_ms + round((time.monotonic() - origin) * 1000)
            step = max(1, target - self._state.market.clock)
            self._state.market.tick(None, step)

    # -- faults -------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        times: int = 1,
        retry_after: str | None = None,
        body: bytes | None = None,
        path: str | None = None,
    ) -> None:
        """Answer the next ``times`` matching requests with ``status``.

        ``retry_after`` adds a Retry-After header; ``body`` replaces the
        default body (the documented JSON error for 400/500, an HTML page for
        502-504, else empty); ``path`` is a prefix such as ``/markets``.
        """
        _check_times(times)
        fault = Fault("status", times, path, status, retry_after, body)
        self._state.faults.add(fault)

    def fail_always(self, status: int, path: str | None = None) -> None:
        """Answer every matching request with ``status`` until :meth:`clear_faults`."""
        self._state.faults.add(Fault("status", None, path, status))

    def delay_next(
        self, seconds: float, times: int = 1, path: str | None = None
    ) -> None:
        """Sleep ``seconds`` before answering the next ``times`` matching requests."""
        _check_times(times)
        self._state.faults.add(Fault("delay", times, path, seconds=seconds))

    def truncate_next(
        self, times: int = 1, path: str | None = None, mode: str = "short_body"
    ) -> None:
        """Cut the body of the next ``times`` matching answers in half.

        ``mode="short_body"`` announces the full Content-Length then closes the
        connection; ``"bad_json"`` is valid HTTP with half a JSON document;
        ``"reset"`` resets the connection (RST) mid-body. Raises ValueError for
        another mode.
        """
        _check_times(times)
        self._state.faults.add(Fault("truncate", times, path, mode=mode))

    def drift_next(
        self, mode: str, field: str = "", times: int = 1, path: str | None = None
    ) -> None:
        """Change every row of the next ``times`` matching answers.

        ``mode`` is one of ``faults.DRIFT_MODES``: ``"new_field"`` adds a key,
        ``"missing_field"`` drops ``field``, ``"null_number"`` sets it to null,
        ``"number_for_string"`` sets it to a number. Raises ValueError for
        another mode.
        """
        _check_times(times)
        self._state.faults.add(Fault("drift", times, path, mode=mode, field=field))

    def pad_next(self, size: int, times: int = 1, path: str | None = None) -> None:
        """Grow the next ``times`` matching JSON answers to ``size`` bytes.

        The padding is whitespace after the document, so it stays valid JSON:
        only its size is wrong.
        """
        _check_times(times)
        self._state.faults.add(Fault("pad", times, path, size=size))

    def content_type_next(
        self, content_type: str, times: int = 1, path: str | None = None
    ) -> None:
        """Serve the next ``times`` matching answers as ``content_type``."""
        _check_times(times)
        fault = Fault("content_type", times, path, content_type=content_type)
        self._state.faults.add(fault)

    def clear_faults(self) -> None:
        """Drop every pending and permanent fault."""
        self._state.faults.clear()

    # -- accounting ---------------------------------------------------------

    @property
    def calls(self) -> int:
        """Requests received (any status, v2 and 401 included)."""
        return self._state.stats.calls

    @property
    def calls_by_route(self) -> dict[str, int]:
        """Requests per route, e.g. ``{"/assets/{slug}/history": 3}``."""
        return self._state.stats.calls_by_route

    @property
    def bytes_sent(self) -> int:
        """Response body bytes written in total."""
        return self._state.stats.bytes_sent

    @property
    def request_log(self) -> list[RequestRecord]:
        """Every request served, oldest first, without the API key."""
        return self._state.stats.request_log

    @property
    def credits_charged(self) -> int:
        """Credits the requests served cost by CoinCap's rule (any status)."""
        return self._state.stats.credits

    def set_monthly_credits(self, allowance: int | None) -> None:
        """Give the key ``allowance`` credits in all (None: unlimited)."""
        self._state.monthly_credits = allowance

    def reset_stats(self) -> None:
        """Zero the counters and empty the request log."""
        self._state.stats.reset()


def _check_times(times: int) -> None:
    """Raise ValueError unless ``times`` is at least 1."""
    if times < 1:
        raise ValueError("times must be at least 1")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
