"""``/metrics``: the pipelines in the Prometheus / OpenMetrics text format.

Each scrape reads the warehouse through the read-only role (see
``health.reader_session``) and renders with ``prometheus_client``, in
OpenMetrics when the scraper asks for it (``Accept``), else in Prometheus'
text format. When the warehouse does not answer, the scrape still succeeds
with ``crypto_etl_warehouse_up 0``, so an alert rule can tell "down" from
"no scrape". No label or value carries a secret: pipeline, table, status
and test names only.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Callable, Iterable

from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder

from crypto_etl.analytics.dq import DqResult, latest_dq_results
from crypto_etl.config import Settings, WarehouseSettings
from crypto_etl.dashboard.health import reader_session
from crypto_etl.errors import ConfigError, WarehouseError
from crypto_etl.pipelines.freshness import limits_for_settings
from crypto_etl.monitor.freshness import assess
from crypto_etl.warehouse.connection import WarehouseConnection
from crypto_etl.warehouse.status import credit_usage, newest_data

log = logging.getLogger(__name__)

_RunTotals = list[tuple[str, str, int, int, int]]


class _Snapshot:
    """Everything one scrape reads, read before any metric is built."""

    def __init__(
        self, warehouse: WarehouseConnection, settings: Settings, now: datetime
    ):
        with warehouse.managed_cursor() as cur:
            cur.execute(
                "SELECT pipeline, status, count(*), coalesce(sum(rows_inserted), 0),"
                " coalesce(sum(rows_rejected), 0) FROM coincap.etl_runs"
                " GROUP BY pipeline, status ORDER BY pipeline, status"
            )
            self.runs: _RunTotals = [
                (p, s, int(n), int(i), int(r)) for p, s, n, i, r in cur.fetchall()
            ]
            cur.execute(
                "SELECT pipeline, extract(epoch FROM max(finished_at))"
                " FROM coincap.etl_runs WHERE status = 'succeeded' GROUP BY pipeline"
            )
            self.last_success = {p: float(t) for p, t in cur.fetchall()}
            cur.execute(
                "SELECT kind, count(*) FROM coincap.alert_state"
                " WHERE resolved_at IS NULL GROUP BY kind"
            )
            self.open_alerts = {k: int(n) for k, n in cur.fetchall()}
        self.credits = credit_usage(warehouse, settings.monthly_credits)
        limits = limits_for_settings(settings, warehouse)
        self.tables = assess(newest_data(warehouse), now, limits)
        self.checks: list[DqResult] = latest_dq_results(warehouse)


class MetricsPage:
    """Renders ``/metrics``.

    Args:
        settings: the project settings (budget, schedule in force).
        reader: the reader role's warehouse settings.
        clock: the current aware UTC time.
    """

    def __init__(
        self,
        settings: Settings,
        reader: WarehouseSettings,
        clock: Callable[[], datetime],
    ) -> None:
        self.settings = settings
        self.reader = reader
        self.clock = clock

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """Return the body and its content type for a scraper's ``Accept``."""
        try:
            with reader_session(self.reader) as warehouse:
                snapshot: _Snapshot | None = _Snapshot(
                    warehouse, self.settings, self.clock()
                )
        except (WarehouseError, ConfigError) as exc:
            log.warning("metrics: the warehouse did not answer: %s", exc)
            snapshot = None
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(snapshot))
        encoder, content_type = choose_encoder(accept or "")
        return encoder(registry), content_type


class _Collector:
    def __init__(self, snapshot: _Snapshot | None) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily(
            "crypto_etl_warehouse_up", "1 when the warehouse answered this scrape"
        )
        up.add_metric([], 0 if self.snapshot is None else 1)
        yield up
        if self.snapshot is not None:
            yield from _families(self.snapshot)


def _families(s: _Snapshot) -> Iterable[Metric]:
    runs = CounterMetricFamily(
        "crypto_etl_runs", "Pipeline runs by outcome", labels=["pipeline", "status"]
    )
    loaded = CounterMetricFamily(
        "crypto_etl_rows_loaded", "Rows inserted by runs", labels=["pipeline"]
    )
    rejected = CounterMetricFamily(
        "crypto_etl_rows_rejected", "Rows quarantined as rejects", labels=["pipeline"]
    )
    inserted: dict[str, int] = {}
    rejects: dict[str, int] = {}
    for pipeline, status, count, rows, bad in s.runs:
        runs.add_metric([pipeline, status], count)
        inserted[pipeline] = inserted.get(pipeline, 0) + rows
        rejects[pipeline] = rejects.get(pipeline, 0) + bad
    for pipeline in sorted(inserted):
        loaded.add_metric([pipeline], inserted[pipeline])
        rejected.add_metric([pipeline], rejects[pipeline])
    yield from (runs, loaded, rejected)

    success = GaugeMetricFamily(
        "crypto_etl_last_success_timestamp_seconds",
        "When each pipeline last succeeded (Unix time)",
        labels=["pipeline"],
    )
    for pipeline, when in sorted(s.last_success.items()):
        success.add_metric([pipeline], when)
    yield success

    for name, text, value in (
        (
            "crypto_etl_credits_spent_month",
            "Credits spent this month (UTC)",
            s.credits.month,
        ),
        (
            "crypto_etl_credits_spent_today",
            "Credits spent today (UTC)",
            s.credits.today,
        ),
        (
            "crypto_etl_credits_budget_month",
            "The monthly credit budget",
            s.credits.budget,
        ),
    ):
        family = GaugeMetricFamily(name, text)
        family.add_metric([], value)
        yield family

    age = GaugeMetricFamily(
        "crypto_etl_data_age_seconds",
        "Seconds since each table's newest row (absent: no data yet)",
        labels=["table", "pipeline"],
    )
    limit = GaugeMetricFamily(
        "crypto_etl_data_freshness_limit_seconds",
        "Each table's freshness limits",
        labels=["table", "level"],
    )
    stale = GaugeMetricFamily(
        "crypto_etl_data_stale",
        "1 when a table is past its error limit",
        labels=["table"],
    )
    for t in s.tables:
        if t.age is not None:
            age.add_metric([t.table, t.pipeline], t.age.total_seconds())
        limit.add_metric([t.table, "warn"], t.limits.warn_after.total_seconds())
        limit.add_metric([t.table, "error"], t.limits.error_after.total_seconds())
        stale.add_metric([t.table], 1 if t.state == "stale" else 0)
    yield from (age, limit, stale)

    yield from _dq_families(s.checks)

    alerts = GaugeMetricFamily(
        "crypto_etl_alerts_open",
        "Problems announced and not yet resolved",
        labels=["kind"],
    )
    for kind in ("run_failed", "stale", "dq", "credits"):
        alerts.add_metric([kind], s.open_alerts.get(kind, 0))
    yield alerts


def _dq_families(checks: list[DqResult]) -> Iterable[Metric]:
    by_status = GaugeMetricFamily(
        "crypto_etl_dq_tests",
        "Data-quality tests of the latest transform, by status",
        labels=["status"],
    )
    counts = {status: 0 for status in ("pass", "warn", "fail", "error", "skipped")}
    for check in checks:
        counts[check.status] = counts.get(check.status, 0) + 1
    for status, count in counts.items():
        by_status.add_metric([status], count)
    yield by_status
    failing = GaugeMetricFamily(
        "crypto_etl_dq_test_failures",
        "Failing rows of each test of the latest transform that did not pass",
        labels=["test", "status"],
    )
    for check in checks:
        if check.status != "pass":
            failing.add_metric([check.test_name, check.status], check.failures or 0)
    yield failing
    when = GaugeMetricFamily(
        "crypto_etl_dq_last_run_timestamp_seconds",
        "When the latest transform's tests ran (Unix time)",
    )
    if checks:
        when.add_metric([], checks[0].run_at.timestamp())
    yield when
