"""The problems worth an alert, and their messages (pure).

A ``Problem`` is keyed so the same problem found on the next run is the same
row of ``coincap.alert_state`` and is not announced again. Each message names
the pipeline (or table), what happened and what to check, in one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from crypto_etl.analytics.dq import DqResult
from crypto_etl.monitor.freshness import TableFreshness
from crypto_etl.warehouse.status import CreditUsage

# Credit thresholds that raise an alert, as shares of the monthly budget.
CREDIT_THRESHOLDS = (80, 100)
STATUS_HINT = "`crypto-etl status` and the etl log"


@dataclass(frozen=True)
class Problem:
    """Something wrong, as announced.

    Args:
        key: identity across runs, e.g. ``run_failed:exchanges``.
        kind: ``run_failed``, ``abandoned``, ``stale``, ``dq`` or ``credits``.
        subject: the pipeline (or table) it is about.
        summary: what happened, one line.
        check: what to check.
        severity: ``failure`` or ``warning``.
        event: announced once and never "resolved" (an abandoned run).
    """

    key: str
    kind: str
    subject: str
    summary: str
    check: str
    severity: str = "failure"
    event: bool = False

    @property
    def title(self) -> str:
        return f"crypto-etl: {self.summary}"

    @property
    def body(self) -> str:
        return f"{self.summary}. Check {self.check}."


def resolved_title(summary: str) -> str:
    """The title of the message sent when a problem clears."""
    return f"crypto-etl: resolved: {summary}"


def resolved_body(summary: str, opened_at: datetime) -> str:
    """The body of the message sent when a problem clears."""
    since = opened_at.strftime("%Y-%m-%d %H:%M UTC")
    return f"Resolved: {summary} (open since {since})."


def run_failed(subject: str, reason: str) -> Problem:
    """A run of ``subject`` (a pipeline or ``transform``) failed."""
    return Problem(
        key=f"run_failed:{subject}",
        kind="run_failed",
        subject=subject,
        summary=f"{subject} run failed: {one_line(reason)}",
        check=f"{STATUS_HINT}; the next scheduled run retries",
    )


def abandoned(pipeline: str, run_id: int, started_at: datetime) -> Problem:
    """A run was found still ``running`` with no process behind it."""
    started = started_at.strftime("%Y-%m-%d %H:%M UTC")
    return Problem(
        key=f"abandoned:{run_id}",
        kind="abandoned",
        subject=pipeline,
        summary=f"{pipeline} run {run_id} (started {started}) was abandoned",
        check=(
            "whether the process was killed (out of memory, container restart, "
            "host asleep): `docker compose ps`, the etl log"
        ),
        event=True,
    )


def stale_table(table: TableFreshness) -> Problem:
    """A table's newest row is older than its freshness limit."""
    return Problem(
        key=f"stale:{table.table}",
        kind="stale",
        subject=table.pipeline,
        summary=f"{table.pipeline} data is stale: {table.describe()}",
        check=(
            "that the schedule runs (`crypto-etl doctor`) and "
            f"{STATUS_HINT} for the last runs"
        ),
    )


def dq_failed(result: DqResult) -> Problem:
    """A data-quality test failed with error severity."""
    on = f" on {result.model}" if result.model else ""
    detail = result.message or f"{result.failures} failing rows"
    verb = "could not run" if result.status == "error" else "failed"
    return Problem(
        key=f"dq:{result.test_name}",
        kind="dq",
        subject="transform",
        summary=f"transform: data test {result.test_name}{on} {verb}: "
        + one_line(detail),
        check="`crypto-etl status` (data quality) and the rows the test names",
    )


def credit_problems(usage: CreditUsage) -> list[Problem]:
    """One problem per credit threshold the month's spend has reached."""
    found = []
    for threshold in CREDIT_THRESHOLDS:
        if usage.month * 100 < threshold * usage.budget:
            continue
        over = threshold >= 100
        found.append(
            Problem(
                key=f"credits:{threshold}",
                kind="credits",
                subject="credits",
                summary=(
                    f"credits: {usage.month} of the {usage.budget} monthly "
                    f"budget spent ({threshold}% reached)"
                ),
                check=(
                    "COINCAP_MONTHLY_CREDITS against your plan and the "
                    "schedule; `crypto-etl status` shows the spend"
                    + ("; runs that would pass the budget are skipped" if over else "")
                ),
                severity="failure" if over else "warning",
            )
        )
    return found


def one_line(text: str, limit: int = 300) -> str:
    """``text`` on one line, cut to ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
