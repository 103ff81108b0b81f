"""The one hook between a scheduled command and the monitoring.

``monitored`` wraps ``crypto-etl run``, ``backfill`` and ``transform`` in
the CLI: a ``/start`` ping when the command begins; when it ends, a success
or ``/fail`` ping (a lock or budget skip counts as success) and, when
``ALERT_URLS`` is set, the alert check (``checks`` + ``alerts``). Nothing in
here can change the command's exit code or its data: every failure of the
monitoring itself is a logged warning.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from datetime import datetime
from typing import Callable, Iterator, Mapping, Sequence

from crypto_etl.config import Settings
from crypto_etl.errors import CryptoEtlError, DataQualityError, Interrupted
from crypto_etl.monitor import alerts, checks, notify
from crypto_etl.monitor.checks import Outcome
from crypto_etl.logs import redact
from crypto_etl.pipelines.freshness import limits_for_settings
from crypto_etl.monitor.pings import Pinger, PingTarget, targets
from crypto_etl.warehouse.connection import WarehouseConnection
from crypto_etl.warehouse.runlog import describe, now_utc

log = logging.getLogger(__name__)

# Exit codes that mean "nothing is wrong": done, or skipped on purpose
# (10: another run holds the lock; 15: the run would pass the credit budget).
SKIP_CODES = frozenset({10, 15})


def exit_code_of(error: BaseException | None) -> int:
    """The exit code the CLI gives for a command that ended with ``error``."""
    if error is None:
        return 0
    if isinstance(error, Interrupted):
        return 128 + error.signum
    if isinstance(error, KeyboardInterrupt):
        return 130
    return error.exit_code if isinstance(error, CryptoEtlError) else 1


def command_outcome(error: BaseException | None) -> Outcome:
    """How the command as a whole ended. A data-test failure has no reason:
    its failed tests are announced one by one instead."""
    code = exit_code_of(error)
    if code == 0:
        return Outcome("succeeded")
    if code in SKIP_CODES:
        return Outcome("skipped")
    if isinstance(error, DataQualityError):
        return Outcome("failed")
    assert error is not None
    return Outcome("failed", describe(error))


@contextmanager
def monitored(
    settings: Settings,
    names: Sequence[str],
    *,
    clock: Callable[[], datetime] = now_utc,
) -> Iterator[None]:
    """Ping and check around one scheduled command.

    Args:
        settings: ``settings.monitor`` says where pings and alerts go.
        names: what the command runs: pipeline names, or ``transform``.
        clock: the current aware UTC time.
    """
    monitor = settings.monitor
    pings = targets(monitor, list(names))
    pinger = Pinger(monitor.ping_timeout)
    started = clock()
    for target in pings:
        pinger.ping(target, "start")
    error: BaseException | None = None
    try:
        yield
    except BaseException as exc:
        error = exc
        raise
    finally:
        try:
            _finish(settings, names, started, error, pinger, clock)
        except Exception as exc:  # the monitoring must never change the outcome
            log.warning("monitoring failed after the command: %s", exc)
            log.debug("monitoring failure", exc_info=True)
        finally:
            pinger.close()


def _finish(
    settings: Settings,
    names: Sequence[str],
    started: datetime,
    error: BaseException | None,
    pinger: Pinger,
    clock: Callable[[], datetime],
) -> None:
    monitor = settings.monitor
    overall = command_outcome(error)
    outcomes = {name: overall for name in names}
    pings = targets(monitor, list(names))
    own_pings = [t for t in pings if t.name is not None]
    secrets = settings.secrets()
    if not (monitor.alert_urls or own_pings):
        _ping_end(pinger, pings, outcomes, overall, secrets)
        return
    with WarehouseConnection(
        settings.warehouse, application_name="crypto-etl-monitor"
    ) as warehouse:
        try:
            outcomes.update(checks.read_outcomes(warehouse, names, started))
        except CryptoEtlError as exc:
            log.warning("alerts: cannot read the runs' outcomes: %s", exc)
            _ping_end(pinger, pings, outcomes, overall, secrets)
            return
        _ping_end(pinger, pings, outcomes, overall, secrets)
        if not monitor.alert_urls:
            return
        try:
            limits = limits_for_settings(settings, warehouse)
            found, scope = checks.find_problems(
                warehouse, outcomes, settings.monthly_credits, clock(), limits
            )
            alerts.announce(
                warehouse,
                found,
                scope,
                notify.destinations(monitor.alert_urls),
                secrets,
            )
        except CryptoEtlError as exc:
            log.warning("alerts: could not check for problems: %s", exc)


def _ping_end(
    pinger: Pinger,
    pings: Sequence[PingTarget],
    outcomes: Mapping[str, Outcome],
    overall: Outcome,
    secrets: Sequence[str],
) -> None:
    for target in pings:
        outcome = overall if target.name is None else outcomes[target.name]
        if outcome.status == "failed":
            reason = outcome.reason or "data-quality tests failed"
            pinger.ping(target, "fail", redact(reason, secrets))
        else:
            pinger.ping(target, "")
