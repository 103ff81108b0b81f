"""The dashboard under attack: hostile input gets 400/404/405/413/414/421 and
the warehouse stays exactly as it was.

A real uvicorn server over 127.0.0.1, a warehouse the pipelines and dbt
filled, and the read-only role. Requests go out through raw sockets where an
HTTP client would tidy them up (a path with ``..``, a missing Host).
"""

from __future__ import annotations

import dataclasses
import gzip
import socket
from urllib.parse import urlsplit

import psycopg2
import pytest
import requests

from crypto_etl.dashboard.server import DashboardServer
from crypto_etl.errors import ConfigError

from conftest import query
from dashboard_data import READER_PASSWORD, loaded_warehouse

pytestmark = pytest.mark.postgres

INJECTIONS = [
    "' OR '1'='1",
    "x'; DROP TABLE coincap.exchanges; --",
    "1; DELETE FROM coincap.etl_runs",
    "bitcoin') UNION SELECT usename, passwd FROM pg_shadow --",
    "$$; DROP SCHEMA analytics CASCADE; $$",
    "%(since)s",
    "\\'; TRUNCATE coincap.etl_runs; --",
]
TRAVERSALS = [
    "/static/../server.py",
    "/static/%2e%2e/server.py",
    "/static/%2E%2E%2Fserver.py",
    "/static/..%2f..%2f..%2fetc%2fpasswd",
    "/static/%252e%252e/server.py",
    "/docs/../../../etc/passwd",
    "/docs/%2e%2e/%2e%2e/etc/passwd",
    "/docs/..%5c..%5cprofiles.yml",
    "/api/charts/..%2f..%2fetc%2fpasswd",
    "/static/dashboard.js%00.png",
    "/../../etc/passwd",
]


@pytest.fixture(scope="module")
def loaded(pg_server, tmp_path_factory):
    with loaded_warehouse(pg_server[1], "sec", tmp_path_factory.mktemp("s")) as s:
        yield s


@pytest.fixture(scope="module")
def dashboard(loaded):
    with DashboardServer(loaded, port=0) as server:
        yield server


@pytest.fixture(scope="module")
def fingerprint(loaded):
    """Every table of the warehouse and a digest of its rows, before any attack."""
    return lambda: warehouse_fingerprint(loaded.warehouse)


def warehouse_fingerprint(db) -> dict[str, tuple[int, str]]:
    tables = query(
        db,
        "SELECT schemaname || '.' || tablename FROM pg_tables"
        " WHERE schemaname IN ('coincap', 'analytics') ORDER BY 1",
    )
    return {
        name: tuple(
            query(
                db,
                f"SELECT count(*), coalesce(md5(string_agg(t::text, ',' ORDER BY"
                f" t::text)), '') FROM {name} t",
            )[0]
        )
        for (name,) in tables
    }


def raw_request(
    server, request_line: str, headers: dict[str, str | None] | None = None
):
    """Send one request byte for byte; return (status, headers, body)."""
    address = urlsplit(server.url)
    lines = [request_line]
    sent = {"Host": address.netloc, "Connection": "close", **(headers or {})}
    lines += [f"{k}: {v}" for k, v in sent.items() if v is not None]
    with socket.create_connection((address.hostname, address.port), timeout=10) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parsed = {}
    for line in header_lines:
        key, _, value = line.partition(":")
        parsed[key.strip().lower()] = value.strip()
    return int(status_line.split()[1]), parsed, body


def url(server, path: str) -> str:
    return str(server.url).rstrip("/") + path


def assert_security_headers(headers) -> None:
    headers = {k.lower(): v for k, v in headers.items()}
    assert "default-src 'self'" in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert "server" not in headers  # uvicorn does not announce itself


@pytest.mark.parametrize("attempt", INJECTIONS)
@pytest.mark.parametrize(
    "chart, parameter",
    [("total_volume", "exchange"), ("price_history", "asset"), ("top_assets", "since")],
)
def test_sql_injection_in_a_parameter_is_a_bound_value_or_a_400(
    dashboard, fingerprint, attempt, chart, parameter
):
    before = fingerprint()
    response = requests.get(
        url(dashboard, f"/api/charts/{chart}"),
        params={"since": "all", parameter: attempt},
        timeout=10,
    )
    if parameter == "since":
        # Ranges come from a whitelist: anything else is refused.
        assert response.status_code == 400, response.text
        assert "since must be one of" in response.json()["error"]
    else:
        # A filter value is bound, never spliced: it matches nothing.
        assert response.status_code == 200, response.text
        assert response.json()["rows"] == []
    assert fingerprint() == before


@pytest.mark.parametrize("attempt", INJECTIONS)
def test_sql_injection_in_the_path_is_a_400(dashboard, fingerprint, attempt):
    before = fingerprint()
    for prefix in ("/api/charts/", "/api/filters/"):
        response = requests.get(url(dashboard, prefix + attempt), timeout=10)
        assert response.status_code in (400, 404), response.text
    assert fingerprint() == before


@pytest.mark.parametrize("path", TRAVERSALS)
def test_path_traversal_never_leaves_the_packaged_files(dashboard, path):
    status, headers, body = raw_request(dashboard, f"GET {path} HTTP/1.1")
    assert status in (400, 404), (path, body[:200])
    assert b"import " not in body and b"root:" not in body
    assert_security_headers(headers)


@pytest.mark.parametrize(
    "params, status",
    [
        ({"exchange": "x" * 201}, 400),
        ({"since": "7d" * 1100}, 414),
        ({"since": "7d\x00"}, 400),
        ({"since": "7 days"}, 400),
        ({"nope": "1"}, 400),
        ({"since": ["7d", "24h"]}, 400),
        ({"exchange": "\x00"}, 400),
    ],
)
def test_oversized_and_malformed_parameters_are_refused(
    dashboard, fingerprint, params, status
):
    before = fingerprint()
    response = requests.get(
        url(dashboard, "/api/charts/total_volume"), params=params, timeout=10
    )
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert "error" in response.json()
    assert fingerprint() == before


def test_malformed_escapes_and_huge_headers_are_refused(dashboard):
    status, _, _ = raw_request(
        dashboard, "GET /api/charts/total_volume?exchange=%ff%fe%00 HTTP/1.1"
    )
    assert status == 400
    status, _, _ = raw_request(dashboard, "GET / HTTP/1.1", {"X-Padding": "a" * 20_000})
    assert status == 431
    status, _, _ = raw_request(dashboard, "GET /\x7f\x01 not-http")
    assert status == 400


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "evil.example:8050",
        "localhost.evil.example",
        "127.0.0.1.nip.io",
        "",
        "[::2]:8050",
        "localhost@evil.example",
    ],
)
def test_a_bad_host_header_is_421_and_nothing_is_queried(dashboard, host):
    status, headers, body = raw_request(
        dashboard, "GET /api/charts/top_exchanges HTTP/1.1", {"Host": host}
    )
    assert status == 421, body
    assert b"DASHBOARD_ALLOWED_HOSTS" in body
    assert headers["content-type"].startswith("application/json")
    assert_security_headers(headers)


def test_a_request_without_a_host_header_is_refused(dashboard):
    status, _, _ = raw_request(dashboard, "GET / HTTP/1.1", {"Host": None})
    assert status in (400, 421)


@pytest.mark.parametrize(
    "method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"]
)
def test_methods_other_than_get_and_head_are_405_with_allow(
    dashboard, fingerprint, method
):
    before = fingerprint()
    target = "127.0.0.1:80" if method == "CONNECT" else "/api/charts/top_exchanges"
    status, headers, body = raw_request(
        dashboard, f"{method} {target} HTTP/1.1", {"Content-Length": "0"}
    )
    assert status == 405, body
    assert headers["allow"] == "GET, HEAD"
    assert b"not allowed" in body
    assert_security_headers(headers)
    assert fingerprint() == before


def test_a_get_with_a_body_is_413(dashboard):
    status, _, body = raw_request(dashboard, "GET / HTTP/1.1", {"Content-Length": "5"})
    assert status == 413, body


def test_head_answers_the_headers_of_get_without_a_body(dashboard):
    get = requests.get(url(dashboard, "/api/charts/top_exchanges"), timeout=10)
    head = requests.head(url(dashboard, "/api/charts/top_exchanges"), timeout=10)
    assert head.status_code == get.status_code == 200
    assert head.content == b""
    assert head.headers["Content-Type"] == get.headers["Content-Type"]


def test_every_answer_carries_the_security_headers(dashboard):
    for path in ("/", "/api/charts/top_exchanges", "/static/dashboard.js", "/x"):
        response = requests.get(url(dashboard, path), timeout=10)
        assert_security_headers(response.headers)
    assert requests.get(url(dashboard, "/x"), timeout=10).status_code == 404


def test_answers_are_gzipped_for_clients_that_ask(dashboard):
    status, headers, body = raw_request(
        dashboard, "GET /api/charts/price_history HTTP/1.1", {"Accept-Encoding": "gzip"}
    )
    assert status == 200 and headers["content-encoding"] == "gzip"
    assert gzip.decompress(body).startswith(b'{"chart":"price_history"')


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO coincap.etl_runs (pipeline, started_at, status)"
        " VALUES ('x', now(), 'running')",
        "UPDATE coincap.etl_runs SET status = 'failed'",
        "DELETE FROM coincap.exchanges",
        "CREATE TABLE coincap.planted (x int)",
        "CREATE TABLE analytics.planted (x int)",
        "CREATE TABLE public.planted (x int)",
        "TRUNCATE coincap.rejects",
    ],
)
def test_the_reader_role_really_cannot_write(loaded, fingerprint, statement):
    before = fingerprint()
    reader = loaded.require_reader("the test")
    conn = psycopg2.connect(
        host=loaded.warehouse.host,
        port=loaded.warehouse.port,
        dbname=loaded.warehouse.dbname,
        user=reader.user,
        password=READER_PASSWORD,
    )
    try:
        with conn.cursor() as cur:
            # The role's sessions are read-only by default; asking to write
            # must still be refused by its privileges.
            cur.execute("SET default_transaction_read_only = off")
            conn.commit()
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute(statement)
        conn.rollback()
    finally:
        conn.close()
    assert fingerprint() == before


def test_bound_beyond_loopback_it_needs_its_allowed_hosts(loaded):
    with pytest.raises(ConfigError, match="DASHBOARD_ALLOWED_HOSTS is not set"):
        DashboardServer(loaded, "0.0.0.0", port=0)
    with pytest.raises(ConfigError, match="must list host names"):
        DashboardServer(
            dataclasses.replace(loaded, dashboard_allowed_hosts=("*",)),
            "0.0.0.0",
            port=0,
        )


def test_an_allowed_host_list_is_all_it_answers_for(loaded):
    listed = dataclasses.replace(
        loaded, dashboard_allowed_hosts=("dash.example.org", "*.corp.example")
    )
    with DashboardServer(listed, "0.0.0.0", port=0) as server:
        port = urlsplit(server.url).port
        target = f"http://127.0.0.1:{port}/api/charts/top_exchanges"

        def status(host: str) -> int:
            return requests.get(target, headers={"Host": host}, timeout=10).status_code

        assert status(f"dash.example.org:{port}") == 200
        assert status("eu.corp.example") == 200
        assert status("corp.example.evil") == 421
        assert status(f"127.0.0.1:{port}") == 421  # not listed
        assert status("localhost") == 421
