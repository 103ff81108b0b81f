"""HTTP client for the CoinCap v3 REST API.

One ``CoinCapClient`` per process: it sends the key as a Bearer header, times
out every request, pages list routes until a short page, retries transient
failures (timeouts, dropped or truncated responses, a plain 429, 5xx) with
exponential backoff and full jitter while honouring ``Retry-After``, and
never retries what a person must fix (400, 401, 404, a body that is not the
documented envelope) nor an out-of-credits answer (403, or a 429 whose body
speaks of credits, quota or a plan limit): retrying that only spends what is
left. It counts calls, bytes and credits so each run can
record what it spent. The key never appears in a URL, log line or message.

It is thread-safe: the workers of a concurrent run share one client, hence
its one rate limiter (a 429 pauses them all) and its exact counters, each
call taking a pooled ``requests.Session`` of its own for the request.

A success must also look like one: a body that is not JSON by its
Content-Type (a proxy's or captive portal's page answered 200) or that runs
past ``MAX_RESPONSE_BYTES`` is refused as a ``BadPayloadError`` before it is
parsed, so an HTML page is never mistaken for a truncated answer and a
runaway body cannot fill the memory.
"""

from __future__ import annotations

import copy
import json
import logging
import random
import re
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any, Callable, Iterator, Mapping

import requests

from crypto_etl import errors
from crypto_etl.config import DEFAULT_MAX_IN_FLIGHT, KEY_SIGNUP_URL, Secret, Settings
from crypto_etl.coincap.ratelimit import RateLimiter
from crypto_etl.records.rows import CallStats

log = logging.getLogger(__name__)

MAX_PAGE_SIZE = 2000
# The largest answer the contract allows is a 2000-row page of /markets,
# about 1 MiB; anything 16 times that is not CoinCap data.
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
USER_AGENT = "crypto-etl/0.1 (+https://github.com/crypto-etl-dashboard)"


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: attempts, backoff base and cap, and a total time budget."""

    max_attempts: int = 5
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    total_budget: float = 120.0


@dataclass(frozen=True)
class Envelope:
    """One successful response: ``data`` as parsed JSON, the API's ``timestamp``."""

    data: Any
    timestamp: int
    body_bytes: int = field(default=0, compare=False)


class CoinCapClient:
    """Talk to CoinCap v3 (or anything that speaks its contract).

    Args:
        base_url: e.g. ``https://rest.coincap.io/v3``.
        api_key: sent as ``Authorization: Bearer``; never logged.
        timeout: (connect, read) seconds for every request.
        retry: the retry policy for transient failures.
        limiter: a rate limiter shared by the process (None: no limit).
        max_in_flight: how many calls a pipeline keeps in flight at once on
            this client (all through the one limiter).
        max_response_bytes: a longer body is refused (BadPayloadError).
        sleep, clock, rng: injectable for deterministic behaviour.

    Raises:
        ValueError: for ``max_in_flight`` below 1.
    """

    def __init__(
        self,
        base_url: str,
        api_key: Secret,
        *,
        timeout: tuple[float, float] = (5.0, 30.0),
        retry: RetryPolicy = RetryPolicy(),
        limiter: RateLimiter | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retry = retry
        self.limiter = limiter
        self.max_in_flight = max_in_flight
        self.max_response_bytes = max_response_bytes
        self.stats = CallStats()
        self._counters: tuple[CallStats, ...] = (self.stats,)
        self._sleep = sleep
        self._clock = clock
        # Jitter for the backoff only: nothing secret depends on it.
        self._rng = rng or random.Random()  # nosec B311
        self._sessions = _SessionPool(
            {
                "Authorization": f"Bearer {api_key.reveal()}",
                "Accept": "application/json",
                "Accept-Encoding": "gzip",
                "User-Agent": USER_AGENT,
            }
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> CoinCapClient:
        """The client a process uses: the configured API, key and rate limit.

        Make one per process, so that every call of every pipeline goes
        through its one rate limiter.

        Raises:
            ConfigError: when ``COINCAP_API_KEY`` is not set.
        """
        return cls(
            settings.coincap_base_url,
            settings.api_key(),
            timeout=settings.coincap_timeout,
            retry=RetryPolicy(max_attempts=settings.coincap_max_attempts),
            limiter=RateLimiter(settings.calls_per_minute),
            max_in_flight=settings.max_in_flight,
        )

    def with_own_stats(self) -> CoinCapClient:
        """A view of this client for one of several runs going on at once.

        It shares the connections, the rate limiter and the retry policy,
        and has its own ``stats`` (its calls still count in this client's
        too), so each run records exactly what it spent. Close the parent,
        not the view.
        """
        view = copy.copy(self)
        view.stats = CallStats()
        view._counters = (*self._counters, view.stats)
        return view

    def close(self) -> None:
        """Close the pooled connections."""
        self._sessions.close()

    def __enter__(self) -> CoinCapClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Envelope:
        """GET ``path`` (e.g. ``/exchanges``) and return the checked envelope.

        Raises:
            TransientApiError: a subclass, once retries or the time budget ran out.
            FatalApiError: a subclass, at once, for what retrying cannot fix.
        """
        url = self.base_url + path
        started = self._clock()
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._attempt(url, path, params)
            except errors.TransientApiError as exc:
                delay = self._backoff(attempt, exc)
                elapsed = self._clock() - started
                if attempt >= self.retry.max_attempts:
                    raise type(exc)(
                        f"{exc} (gave up after {attempt} attempts)"
                    ) from exc
                if elapsed + delay > self.retry.total_budget:
                    raise type(exc)(
                        f"{exc} (gave up: the next retry, in {delay:.0f} s, would pass "
                        f"the {self.retry.total_budget:.0f} s budget)"
                    ) from exc
                log.warning(
                    "GET %s failed: %s; retry %d/%d in %.1f s",
                    path,
                    exc,
                    attempt,
                    self.retry.max_attempts - 1,
                    delay,
                )
                if isinstance(exc, errors.RateLimitedError) and self.limiter:
                    # The API refused the process, not this call: hold every
                    # worker; this call's retry waits in the limiter too.
                    self.limiter.pause(delay)
                else:
                    self._sleep(delay)

    def get_list(self, path: str, params: Mapping[str, Any] | None = None) -> Envelope:
        """GET a list route: as ``get``, and ``data`` must be a list.

        Raises:
            ApiError: as ``get``; BadPayloadError if ``data`` is not a list.
        """
        page = self.get(path, params)
        if not isinstance(page.data, list):
            raise errors.BadPayloadError(
                f"GET {path}: expected a list in 'data', got "
                f"{type(page.data).__name__}; check COINCAP_BASE_URL"
            )
        return page

    def iter_pages(
        self, path: str, params: Mapping[str, Any] | None = None, page_size: int = 0
    ) -> Iterator[Envelope]:
        """Yield every page of a list route, sending ``limit`` and ``offset``.

        Stops after the first page shorter than ``page_size`` (default and
        maximum 2000), since the API gives no total count.

        Raises:
            ApiError: as ``get``; BadPayloadError if ``data`` is not a list.
        """
        limit = page_size or MAX_PAGE_SIZE
        offset = 0
        while True:
            page = self.get_list(
                path, {**(params or {}), "limit": limit, "offset": offset}
            )
            yield page
            if len(page.data) < limit:
                return
            offset += limit

    def _attempt(
        self, url: str, path: str, params: Mapping[str, Any] | None
    ) -> Envelope:
        if self.limiter is not None:
            self.limiter.acquire()
        try:
            with self._sessions.session() as session:
                response = session.get(
                    url, params=params, timeout=self.timeout, stream=True
                )
                body = _read_body(response, path, self.max_response_bytes)
        except requests.Timeout as exc:
            self._count(0)
            raise errors.ApiTimeoutError(f"GET {path}: no answer in time") from exc
        except requests.RequestException as exc:
            self._count(0)
            raise errors.ApiConnectionError(
                f"GET {path}: connection failed ({type(exc).__name__}); "
                f"check that {self.base_url} is reachable"
            ) from exc
        self._count(len(body))
        log.debug(
            "GET %s %s -> HTTP %d, %d bytes",
            path,
            dict(params or {}),
            response.status_code,
            len(body),
        )
        _raise_for_status(response, path)
        _check_content_type(response, path)
        return _envelope(body, path)

    def _count(self, body_bytes: int) -> None:
        for stats in self._counters:
            stats.add(body_bytes)

    def _backoff(self, attempt: int, exc: errors.TransientApiError) -> float:
        if isinstance(exc, errors.RateLimitedError) and exc.retry_after is not None:
            return exc.retry_after
        ceiling = min(self.retry.backoff_cap, self.retry.backoff_base * 2**attempt)
        return self._rng.uniform(0, ceiling)


def _read_body(response: requests.Response, path: str, limit: int) -> bytes:
    """Read the (decoded) body, refusing one longer than ``limit`` bytes.

    Raises:
        BadPayloadError: the announced or the received body is too long.
        requests.RequestException: the connection failed while reading.
    """
    with response:
        announced = response.headers.get("Content-Length", "")
        if announced.isdigit() and int(announced) > limit:
            raise _too_large(path, limit, f"{int(announced)} bytes announced")
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_content(chunk_size=256 * 1024):
            size += len(chunk)
            if size > limit:
                raise _too_large(path, limit, "more received")
            chunks.append(chunk)
    body = b"".join(chunks)
    # Streamed bodies are not kept; keep this one, so .json() and .text
    # (the error details) read it as for an unstreamed response.
    response._content = body
    return body


def _too_large(path: str, limit: int, seen: str) -> errors.BadPayloadError:
    return errors.BadPayloadError(
        f"GET {path}: the response is larger than {limit // (1024 * 1024)} MiB "
        f"({seen}), far more than CoinCap sends; check COINCAP_BASE_URL"
    )


def _check_content_type(response: requests.Response, path: str) -> None:
    """Refuse a success whose Content-Type says it is not JSON.

    No Content-Type at all is left to the JSON parser to judge.

    Raises:
        BadPayloadError: e.g. an HTML page answered with status 200.
    """
    kind = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if kind and kind != "application/json" and not kind.endswith("+json"):
        raise errors.BadPayloadError(
            f"GET {path}: expected JSON, got {kind} (HTTP {response.status_code}; "
            "a proxy's or captive portal's page?); check COINCAP_BASE_URL and "
            "the network between here and CoinCap"
        )


# A 429 body that speaks of credits, a quota or a plan limit is an exhausted
# key, not a rate limit ("rate limit exceeded" stays a rate limit).
_OUT_OF_CREDITS = re.compile(
    r"credit|quota|\bplan\b|(?<!rate )limit (?:exceeded|reached)", re.IGNORECASE
)


class _SessionPool:
    """``requests.Session`` objects lent to one call at a time.

    A Session is not documented as thread-safe, so concurrent calls never
    share one; a call takes a free session (or a new one) and gives it
    back, so the pool grows to the number of calls in flight and keeps its
    connections alive between them.
    """

    def __init__(self, headers: Mapping[str, str]) -> None:
        self._headers = dict(headers)
        self._free: list[requests.Session] = []
        self._lock = threading.Lock()
        self._closed = False

    @contextmanager
    def session(self) -> Iterator[requests.Session]:
        """Lend a session for one request."""
        with self._lock:
            session = self._free.pop() if self._free else None
        if session is None:
            session = requests.Session()
            session.headers.update(self._headers)
        try:
            yield session
        finally:
            with self._lock:
                if self._closed:
                    session.close()
                else:
                    self._free.append(session)

    def close(self) -> None:
        """Close every idle session, and each busy one when it is given back."""
        with self._lock:
            self._closed = True
            free, self._free = self._free, []
        for session in free:
            session.close()


def _raise_for_status(response: requests.Response, path: str) -> None:
    status = response.status_code
    if status < 400:
        return
    detail = _error_detail(response)
    if status == 403 or (status == 429 and _OUT_OF_CREDITS.search(response.text)):
        raise errors.CreditsExhausted(
            f"GET {path}: CoinCap says the key's credits are used up (HTTP {status})"
            f"{detail or ': no detail given'}; check your plan and this month's "
            f"usage at {KEY_SIGNUP_URL} (credits renew monthly; a bigger plan adds "
            "more), and set COINCAP_MONTHLY_CREDITS to your plan's figure"
        )
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        raise errors.RateLimitedError(
            f"GET {path}: rate limited (HTTP 429)", retry_after=retry_after
        )
    if status >= 500:
        raise errors.ServerError(f"GET {path}: CoinCap server error (HTTP {status})")
    if status == 401:
        raise errors.AuthError(
            f"GET {path}: CoinCap refused the API key (HTTP {status}); check "
            f"COINCAP_API_KEY (get or renew one at {KEY_SIGNUP_URL})"
        )
    if status == 404:
        raise errors.NotFoundError(f"GET {path}: not found (HTTP 404{detail})")
    raise errors.BadRequestError(
        f"GET {path}: CoinCap rejected the request (HTTP {status}{detail}); "
        "check the ids, interval and dates you asked for"
    )


def _error_detail(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    message = None
    if isinstance(body, dict):
        message = body.get("error", body.get("message"))
    # Bounded: the detail goes into one line of output and into etl_runs.
    return f": {message[:200]}" if isinstance(message, str) else ""


def _envelope(body: bytes, path: str) -> Envelope:
    try:
        payload = json.loads(body, parse_float=Decimal)
    except ValueError as exc:
        # A cut-off body is the usual cause, so it is worth another try.
        raise errors.ApiConnectionError(
            f"GET {path}: the response is not valid JSON (truncated?)"
        ) from exc
    if not isinstance(payload, dict) or "data" not in payload:
        raise errors.BadPayloadError(
            f"GET {path}: the response is not the {{data, timestamp}} envelope; "
            "check that COINCAP_BASE_URL points at the CoinCap v3 API"
        )
    data = payload["data"]
    if isinstance(data, dict) and "deprecat" in str(data.get("message", "")).lower():
        raise errors.ApiRetiredError(
            f"GET {path}: this is the retired CoinCap v2 API; set COINCAP_BASE_URL "
            f"to https://rest.coincap.io/v3 and COINCAP_API_KEY ({KEY_SIGNUP_URL})"
        )
    timestamp = payload.get("timestamp")
    if not isinstance(timestamp, int) or isinstance(timestamp, bool):
        raise errors.BadPayloadError(
            f"GET {path}: the envelope has no integer 'timestamp'; "
            "check that COINCAP_BASE_URL points at the CoinCap v3 API"
        )
    return Envelope(data=data, timestamp=timestamp, body_bytes=len(body))


def parse_retry_after(value: str | None) -> float | None:
    """Return the seconds a ``Retry-After`` header asks for, or None.

    Accepts delta-seconds and HTTP dates; a date in the past gives 0.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())
