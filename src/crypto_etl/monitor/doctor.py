"""``crypto-etl doctor``: is everything in place? One line per check.

Each check says ok, warn or fail and what to do. The API-key check makes
one small call (``GET /rates/bitcoin``, 1 credit), recorded as a ``doctor``
run so the month's spend stays exact; it is skipped when the warehouse
cannot record it. Alerts and pings are only parsed unless ``send_test``:
then one test notification goes to each destination, and each ping URL gets
a ``/log`` ping (recorded by healthchecks.io without changing the check's
state).
"""

from __future__ import annotations

import os
import shutil

# Runs `crontab -l` and `systemctl list-timers`: fixed argument lists, no shell.
import subprocess  # nosec B404
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Generator, Iterator

import requests

from crypto_etl.coincap.client import CoinCapClient
from crypto_etl.config import Settings
from crypto_etl.dashboard.health import reader_session
from crypto_etl.errors import ConfigError, CryptoEtlError
from crypto_etl.monitor import notify
from crypto_etl.monitor.freshness import human_age
from crypto_etl.monitor.pings import Pinger, targets
from crypto_etl.pipelines.catalog import ALL_PIPELINES
from crypto_etl.warehouse.connection import WarehouseConnection
from crypto_etl.warehouse.migrations import available_migrations
from crypto_etl.warehouse.runlog import now_utc, tracked_run
from crypto_etl.warehouse.status import credit_usage

API_CHECK_PATH = "/rates/bitcoin"
PING_NAMES = (*ALL_PIPELINES, "transform")
BUDGET_EXHAUSTED_EXIT = 15


@dataclass(frozen=True)
class Check:
    """One line of the report; ``exit_code`` is what a ``fail`` exits with."""

    status: str
    name: str
    message: str
    exit_code: int = 0

    def line(self) -> str:
        return f"{self.status:<4}  {self.name:<10} {self.message}"


def ok(name: str, message: str) -> Check:
    return Check("ok", name, message)


def warn(name: str, message: str) -> Check:
    return Check("warn", name, message)


def fail(name: str, message: str, exit_code: int) -> Check:
    return Check("fail", name, message, exit_code)


def run_doctor(
    load: Callable[[], Settings],
    send_test: bool,
    on_check: Callable[[Check], None],
) -> list[Check]:
    """Run every check, calling ``on_check`` as each one ends.

    Args:
        load: reads the settings (a ConfigError is the first check's fail).
        send_test: send a test alert and a ``/log`` ping to each URL.

    Returns:
        The checks; the command exits with the first fail's code, else 0.
    """
    done = []
    for check in _checks(load, send_test):
        on_check(check)
        done.append(check)
    return done


def exit_code(checks: list[Check]) -> int:
    """The first failed check's exit code, or 0 when nothing failed."""
    return next((c.exit_code for c in checks if c.status == "fail"), 0)


def _checks(load: Callable[[], Settings], send_test: bool) -> Iterator[Check]:
    try:
        settings = load()
    except ConfigError as exc:
        yield fail("settings", f"{exc}", exc.exit_code)
        return
    yield ok("settings", f"read from {' and '.join(settings.sources)}")
    with WarehouseConnection(
        settings.warehouse, application_name="crypto-etl-doctor"
    ) as warehouse:
        reachable = yield from _warehouse(warehouse, settings)
        yield _reader(settings)
        yield _api(settings, warehouse if reachable else None)
        if reachable:
            yield _credits(warehouse, settings.monthly_credits)
        yield _schedule(warehouse if reachable else None)
    yield _metabase(settings)
    yield from _alerts(settings, send_test)
    yield from _pings(settings, send_test)


def _warehouse(
    warehouse: WarehouseConnection, settings: Settings
) -> Generator[Check, None, bool]:
    """Check the warehouse and its migrations; return whether it answers."""
    where = settings.warehouse.describe()
    try:
        with warehouse.managed_cursor() as cur:
            cur.execute("SHOW server_version")
            row = cur.fetchone()
            cur.execute("SELECT to_regclass('coincap.schema_migrations') IS NOT NULL")
            has_table = cur.fetchone()
            applied: dict[int, str] = {}
            if has_table and has_table[0]:
                cur.execute("SELECT version, checksum FROM coincap.schema_migrations")
                applied = dict(cur.fetchall())
    except CryptoEtlError as exc:
        yield fail("warehouse", str(exc), exc.exit_code)
        return False
    yield ok("warehouse", f"{where} answers (PostgreSQL {row[0] if row else '?'})")
    shipped = available_migrations()
    pending = [m for m in shipped if m.version not in applied]
    edited = [m for m in shipped if applied.get(m.version, m.checksum) != m.checksum]
    if edited:
        names = ", ".join(f"{m.version:04d}_{m.name}" for m in edited)
        yield fail("migrations", f"{names} edited after it was applied", 12)
    elif pending:
        yield fail(
            "migrations",
            f"{len(pending)} of {len(shipped)} not applied: run `crypto-etl migrate`",
            12,
        )
    else:
        yield ok("migrations", f"all {len(shipped)} applied")
    return True


def _reader(settings: Settings) -> Check:
    if settings.reader is None:
        return warn(
            "reader",
            "WAREHOUSE_READER_USER/WAREHOUSE_READER_PASSWORD not set: the "
            "dashboard and Metabase read through that role",
        )
    login = settings.reader.login(settings.warehouse)
    try:
        with reader_session(login) as warehouse, warehouse.managed_cursor() as cur:
            cur.execute("SELECT count(*) FROM coincap.etl_runs")
    except CryptoEtlError as exc:
        return fail("reader", f"{exc}; `crypto-etl migrate` creates it", exc.exit_code)
    return ok("reader", f"{login.user} logs in and reads the warehouse")


def _api(settings: Settings, warehouse: WarehouseConnection | None) -> Check:
    try:
        settings.api_key()
    except ConfigError as exc:
        return fail("api key", str(exc), exc.exit_code)
    if warehouse is None:
        return warn(
            "api key", "not tried: the warehouse must record the credit it costs"
        )
    try:
        with CoinCapClient.from_settings(settings) as client:
            with tracked_run(warehouse, "doctor", client.stats, atomic=True) as run:
                client.get(API_CHECK_PATH)
                with warehouse.managed_cursor() as cur:
                    run.succeed(cur)
    except CryptoEtlError as exc:
        return fail("api key", str(exc), exc.exit_code)
    spent = run.run.spent.credits
    return ok(
        "api key",
        f"CoinCap accepted it: GET {API_CHECK_PATH} cost {spent} "
        f"credit{'s' if spent != 1 else ''} (recorded as a `doctor` run)",
    )


def _credits(warehouse: WarehouseConnection, budget: int) -> Check:
    try:
        usage = credit_usage(warehouse, budget)
    except CryptoEtlError as exc:
        return fail("credits", str(exc), exc.exit_code)
    text = (
        f"{usage.month} of {usage.budget} this month "
        f"({100 * usage.month // max(usage.budget, 1)}%), {usage.today} today"
    )
    if usage.month >= usage.budget:
        return fail(
            "credits",
            f"{text}: budget spent; raise COINCAP_MONTHLY_CREDITS if your plan allows",
            BUDGET_EXHAUSTED_EXIT,
        )
    if usage.month * 10 >= usage.budget * 8:
        return warn("credits", f"{text}: over 80%, check COINCAP_MONTHLY_CREDITS")
    return ok("credits", text)


def _schedule(warehouse: WarehouseConnection | None) -> Check:
    runner = _scheduler()
    last = ""
    if warehouse is not None:
        try:
            with warehouse.managed_cursor() as cur:
                cur.execute(
                    "SELECT max(started_at) FROM coincap.etl_runs"
                    " WHERE pipeline <> 'doctor'"
                )
                row = cur.fetchone()
            when = row[0] if row else None
            last = (
                "; no run yet"
                if when is None
                else f"; last run started {human_age(now_utc() - when)} ago"
            )
        except CryptoEtlError:
            last = ""
    if runner is None:
        return warn(
            "schedule",
            "no supercronic, crontab or systemd timer runs crypto-etl on this "
            "machine: copy scheduler/crontab's lines into `crontab -e`, or run "
            f"the Docker stack (`make up`){last}",
        )
    return ok("schedule", runner + last)


def _scheduler() -> str | None:
    """Say what runs the schedule on this machine, or None."""
    for proc in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = proc.read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and Path(argv[0].decode(errors="replace")).name == "supercronic":
            return "supercronic runs " + " ".join(
                a.decode(errors="replace") for a in argv[1:] if a
            )
    for command, found in (
        (["crontab", "-l"], "the crontab of this user runs crypto-etl"),
        (
            ["systemctl", "list-timers", "--all", "--no-legend"],
            "a systemd timer runs crypto-etl",
        ),
    ):
        if shutil.which(command[0]) is None:
            continue
        try:
            out = subprocess.run(  # nosec B603
                command, capture_output=True, text=True, timeout=5, env=dict(os.environ)
            ).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        if "crypto-etl" in out or "crypto_etl" in out:
            return found
    return None


def _metabase(settings: Settings) -> Check:
    if settings.metabase is None:
        return ok("metabase", "not configured (METABASE_URL unset)")
    url = settings.metabase.url
    try:
        response = requests.get(f"{url}/api/health", timeout=5)
        healthy = response.status_code == 200
        detail = f"HTTP {response.status_code}"
    except requests.RequestException as exc:
        healthy, detail = False, type(exc).__name__
    if healthy:
        return ok("metabase", f"{url} is healthy")
    return warn(
        "metabase",
        f"{url} does not answer ({detail}): start it (`make up`) or unset METABASE_URL",
    )


def _alerts(settings: Settings, send_test: bool) -> Iterator[Check]:
    urls = settings.monitor.alert_urls
    if not urls:
        yield warn(
            "alerts",
            "ALERT_URLS not set: failures go to etl_runs and the log, "
            "and nobody is told",
        )
        return
    for target in notify.destinations(urls):
        if target.service is None:
            yield fail(
                "alerts", f"ALERT_URLS {target.label} is not a URL Apprise knows", 3
            )
        elif not send_test:
            yield ok("alerts", f"{target.label} (`--send-test` sends a test alert)")
        elif notify.send(
            [target],
            "crypto-etl: test alert",
            "A test from `crypto-etl doctor --send-test`: alerts reach you.",
            "info",
        ):
            yield ok("alerts", f"{target.label}: test alert delivered")
        else:
            yield fail(
                "alerts",
                f"{target.label}: test alert not delivered (see the warning above)",
                3,
            )


def _pings(settings: Settings, send_test: bool) -> Iterator[Check]:
    monitor = settings.monitor
    unknown = [n for n, _ in monitor.pipeline_pings if n not in PING_NAMES]
    for name in unknown:
        yield fail(
            "pings",
            f"HEALTHCHECK_URL_{name.upper()} names nothing that runs; "
            f"use one of {', '.join(n.upper() for n in PING_NAMES)}",
            3,
        )
    found = targets(monitor, list(PING_NAMES))
    if not found:
        yield warn(
            "pings",
            "HEALTHCHECK_URL not set: nothing raises the alarm when the schedule stops",
        )
        return
    pinger = Pinger(monitor.ping_timeout)
    try:
        for target in found:
            if not send_test:
                yield ok(
                    "pings", f"{target.variable} set (`--send-test` pings its /log)"
                )
            elif pinger.ping(target, "log", "crypto-etl doctor --send-test"):
                yield ok("pings", f"{target.variable}: /log ping delivered")
            else:
                yield fail("pings", f"{target.variable}: /log ping not delivered", 3)
    finally:
        pinger.close()
