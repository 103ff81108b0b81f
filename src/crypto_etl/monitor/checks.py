"""Find the problems in the warehouse after a command: what ``watch`` announces.

Runs are judged only for the pipelines the command ran (their rows since it
began); staleness, data tests, the credit budget and abandoned runs are
judged whole on every check, so a problem any command missed is seen by the
next one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Mapping, Sequence

from crypto_etl.analytics.dq import latest_dq_results
from crypto_etl.monitor import problems
from crypto_etl.monitor.alerts import Scope
from crypto_etl.monitor.freshness import assess, stale
from crypto_etl.monitor.problems import Problem
from crypto_etl.pipelines.catalog import Freshness
from crypto_etl.warehouse.connection import WarehouseConnection
from crypto_etl.warehouse.runlog import ABANDONED
from crypto_etl.warehouse.status import credit_usage, newest_data

# Abandoned runs marked within this window are announced (once each).
ABANDONED_LOOKBACK = "1 day"
WHOLE_KINDS = frozenset({"stale", "dq", "credits"})


@dataclass(frozen=True)
class Outcome:
    """How a command's pipeline (or the transform) ended.

    ``status`` is ``succeeded``, ``failed`` or ``skipped`` (lock or budget).
    """

    status: str
    reason: str | None = None


def read_outcomes(
    warehouse: WarehouseConnection, names: Sequence[str], since: datetime
) -> dict[str, Outcome]:
    """Return the newest completed run of each of ``names`` started since
    ``since``; names with no such run are left out.

    Raises:
        WarehouseError: the run log cannot be read.
    """
    with warehouse.managed_cursor() as cur:
        cur.execute(
            "SELECT DISTINCT ON (pipeline) pipeline, status, error_message"
            " FROM coincap.etl_runs WHERE pipeline = ANY(%s) AND started_at >= %s"
            " AND status <> 'running' ORDER BY pipeline, run_id DESC",
            (list(names), since),
        )
        return {name: Outcome(status, error) for name, status, error in cur}


def find_problems(
    warehouse: WarehouseConnection,
    outcomes: Mapping[str, Outcome],
    budget: int,
    now: datetime,
    limits: Mapping[str, Freshness],
) -> tuple[list[Problem], Scope]:
    """Every problem in the warehouse now, and what was looked at.

    Args:
        outcomes: how each name the command covered ended; a ``failed`` one
            with no reason is a data-test failure, announced by its tests.
        budget: the monthly credit budget (``COINCAP_MONTHLY_CREDITS``).
        now: the current aware UTC time.
        limits: each table's freshness limits under the schedule in force.

    Raises:
        WarehouseError: the warehouse cannot be read.
    """
    found: list[Problem] = []
    judged = set()
    for name, outcome in outcomes.items():
        if outcome.status == "skipped":
            continue
        judged.add(f"run_failed:{name}")
        if outcome.status == "failed" and outcome.reason is not None:
            found.append(problems.run_failed(name, outcome.reason))
    with warehouse.managed_cursor() as cur:
        # ABANDONED_LOOKBACK is a constant of this module, not input.
        cur.execute(
            "SELECT run_id, pipeline, started_at FROM coincap.etl_runs"  # nosec B608
            " WHERE status = 'failed' AND error_message = %s"
            f" AND finished_at > now() - interval '{ABANDONED_LOOKBACK}'"
            " ORDER BY run_id",
            (ABANDONED,),
        )
        found += [problems.abandoned(p, run_id, at) for run_id, p, at in cur]
    found += [
        problems.stale_table(t)
        for t in stale(assess(newest_data(warehouse), now, limits))
    ]
    found += [
        problems.dq_failed(r)
        for r in latest_dq_results(warehouse)
        if r.status in ("fail", "error")
    ]
    found += problems.credit_problems(credit_usage(warehouse, budget))
    return found, Scope(kinds=WHOLE_KINDS, keys=frozenset(judged))
