"""``crypto-etl transform``: build and test the dbt models in ``transform/``.

dbt runs in this process through its Python entry point (``dbtRunner``):
one parse, then ``dbt build`` (models and their tests, in dependency order),
``dbt source freshness`` and, when asked, ``dbt docs generate``, all on the
one parsed manifest. The connection comes from the ETL's own settings:
``transform/profiles.yml`` reads it from variables that only this module
sets, for the duration of the run, so credentials live in one place. dbt's
target/ and logs go to a temporary directory; its events go to the
``crypto_etl.dbt`` logger (dbt's info lines at DEBUG).

A run holds the ``transform`` advisory lock, so a second one started meanwhile
(a slow run overlapping the next cron slot) is skipped. Every run stores one
``coincap.dq_results`` row per test and per freshness check, then raises
``WarehouseSqlError`` if a model or check could not run and ``DataQualityError``
if an error-severity check failed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

from dbt.adapters.exceptions.connection import FailedToConnectError
from dbt.cli.main import dbtRunner, dbtRunnerResult
from dbt.contracts.graph.manifest import Manifest
from dbt_common.events.base_types import EventMsg
from dbt_common.invocation import get_invocation_id

from crypto_etl.config import Settings, WarehouseSettings
from crypto_etl.errors import (
    ConfigError,
    DataQualityError,
    WarehouseSqlError,
    WarehouseUnavailable,
)
from crypto_etl.analytics.dq import (
    DEFAULT_DOCS_DIR,
    DOCS_FILES,
    DqResult,
    store_results,
)
from crypto_etl.pipelines.freshness import dbt_vars, limits_for_settings
from crypto_etl.warehouse.runlog import now_utc
from crypto_etl.warehouse.connection import WarehouseConnection

log = logging.getLogger("crypto_etl.dbt")

# The variables transform/profiles.yml reads. The DBT_ENV_SECRET_ prefix
# makes dbt scrub the value from everything it logs.
PROFILE_VARIABLES = {
    "host": "CRYPTO_ETL_DBT_HOST",
    "port": "CRYPTO_ETL_DBT_PORT",
    "dbname": "CRYPTO_ETL_DBT_DBNAME",
    "user": "CRYPTO_ETL_DBT_USER",
    # The name of the variable dbt reads the password from, not a password.
    "password": "DBT_ENV_SECRET_CRYPTO_ETL_PASSWORD",  # nosec B105
}
# dbt keeps global state (flags, adapters, the event manager) and reads the
# profile from the process environment: one run at a time per process.
_DBT_LOCK = threading.Lock()
_DBT_LEVELS = {"info": logging.DEBUG, "warn": logging.WARNING, "error": logging.ERROR}
# How a freshness status is stored: (status, severity).
_FRESHNESS: dict[str, tuple[str, str | None]] = {
    "pass": ("pass", None),
    "warn": ("warn", "warn"),
    "error": ("fail", "error"),
    "runtime error": ("error", None),
}


@dataclass(frozen=True)
class TransformResult:
    """What one ``run_transform`` did."""

    invocation_id: str
    run_at: datetime
    models: dict[str, str]
    results: tuple[DqResult, ...]
    docs_dir: Path | None = None
    model_errors: dict[str, str] = field(default_factory=dict)

    def count(self, status: str) -> int:
        """Return how many checks ended with ``status``."""
        return sum(1 for r in self.results if r.status == status)

    def summary(self) -> str:
        """Return one line: models built and checks by status."""
        built = sum(1 for status in self.models.values() if status == "success")
        statuses = ("pass", "warn", "fail", "error", "skipped")
        counts = ", ".join(f"{self.count(s)} {s}" for s in statuses if self.count(s))
        return (
            f"transform: built {built} of {len(self.models)} models; "
            f"{len(self.results)} checks: {counts or 'none'}"
        )


def run_transform(
    settings: Settings,
    *,
    docs: bool = False,
    docs_dir: Path | None = None,
    select: str | None = None,
    full_refresh: bool = False,
) -> TransformResult:
    """Build the models, run every test and freshness check, store the results.

    Args:
        settings: the warehouse to build in (the ETL's own settings).
        docs: also generate dbt's docs site into ``docs_dir``.
        docs_dir: where the docs go (default ``.data/dbt-docs``).
        select: a dbt node selection (e.g. ``"exchanges_current+"``); the
            freshness checks then cover the sources upstream of it.
        full_refresh: rebuild the incremental models from scratch.

    Returns:
        The run's models and check results (also stored in coincap.dq_results).

    Raises:
        ConfigError: the dbt project is not found, or ``select`` matches nothing.
        RunSkipped: another transform holds the lock.
        WarehouseUnavailable: the warehouse cannot be reached.
        WarehouseSqlError: dbt could not run (e.g. a compile error), a model
            failed to build or a check could not run; results stored first.
        DataQualityError: an error-severity check failed; results stored first.
    """
    project = find_project_dir()
    run_at = now_utc()
    # cautious: a test runs only when every model it reads is selected.
    selection = (
        ["--select", select, "--indirect-selection", "cautious"] if select else []
    )
    with (
        WarehouseConnection(
            settings.warehouse, application_name="crypto-etl transform"
        ) as warehouse,
        warehouse.pipeline_lock("transform"),
        _DBT_LOCK,
        _profile_environment(settings.warehouse),
        tempfile.TemporaryDirectory(prefix="crypto-etl-dbt-") as work,
    ):
        # The sources' freshness limits follow the schedule in force.
        limits = dbt_vars(limits_for_settings(settings, warehouse))
        dbt = _Session(project, Path(work), settings.warehouse, limits)
        refresh = ["--full-refresh"] if full_refresh else []
        built = dbt.invoke("build", *selection, *refresh, allow=True)
        invocation_id = get_invocation_id()
        fresh = dbt.invoke(
            "source", "freshness", *_upstream_sources(select), allow=True
        )
        models, model_errors, results = _collect(run_at, invocation_id, built, fresh)
        if select and not models and not results:
            raise ConfigError(f"--select {select!r} matches no model, test or source")
        store_results(warehouse, results)
        if docs:
            dbt.invoke("docs", "generate", *selection)
            _publish_docs(Path(work) / "target", docs_dir or DEFAULT_DOCS_DIR)
    result = TransformResult(
        invocation_id,
        run_at,
        models,
        tuple(results),
        (docs_dir or DEFAULT_DOCS_DIR) if docs else None,
        model_errors,
    )
    log.info("%s", result.summary())
    _raise_for_problems(result)
    return result


def find_project_dir() -> Path:
    """Return the dbt project: ``./transform``, else the one beside the source.

    Raises:
        ConfigError: when neither has a ``dbt_project.yml``.
    """
    candidates = [
        Path.cwd() / "transform",
        Path(__file__).resolve().parents[2] / "transform",
    ]
    for candidate in candidates:
        if (candidate / "dbt_project.yml").is_file():
            return candidate
    raise ConfigError(
        "the dbt project was not found (looked for dbt_project.yml in "
        + " and ".join(str(c) for c in candidates)
        + "); run crypto-etl from the repository root"
    )


@contextmanager
def _profile_environment(warehouse: WarehouseSettings) -> Iterator[None]:
    """Set the profile's variables from ``warehouse``; restore them after."""
    values = {
        "host": warehouse.host,
        "port": str(warehouse.port),
        "dbname": warehouse.dbname,
        "user": warehouse.user,
        "password": warehouse.password.reveal(),
    }
    saved = {name: os.environ.get(name) for name in PROFILE_VARIABLES.values()}
    try:
        for key, name in PROFILE_VARIABLES.items():
            os.environ[name] = values[key]
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


def _common_args(project: Path, work: Path, variables: dict[str, int]) -> list[str]:
    return [
        "--vars",
        json.dumps(variables),
        "--project-dir",
        str(project),
        "--profiles-dir",
        str(project),
        "--target-path",
        str(work / "target"),
        "--log-path",
        str(work / "logs"),
        "--log-level",
        "none",
        "--log-level-file",
        "none",
        "--no-send-anonymous-usage-stats",
        "--no-version-check",
        "--no-partial-parse",
        "--no-use-colors",
    ]


def _upstream_sources(select: str | None) -> list[str]:
    """Select the sources upstream of ``select`` (every source when None)."""
    if not select:
        return []
    tokens = [t if t[0] in "+@" else f"+{t}" for t in select.split()]
    return ["--select", " ".join(tokens)]


class _Session:
    """dbt commands on one parsed manifest, with the same paths and flags."""

    def __init__(
        self,
        project: Path,
        work: Path,
        warehouse: WarehouseSettings,
        variables: dict[str, int],
    ) -> None:
        self._common = _common_args(project, work, variables)
        self._warehouse = warehouse
        self._runner = dbtRunner(callbacks=[_log_event])
        parsed = self.invoke("parse").result
        manifest = parsed if isinstance(parsed, Manifest) else None
        self._runner = dbtRunner(manifest=manifest, callbacks=[_log_event])

    def invoke(self, *command: str, allow: bool = False) -> dbtRunnerResult:
        """Run one dbt command; ``allow`` accepts a run whose nodes failed.

        Raises:
            WarehouseUnavailable: dbt could not connect to the warehouse.
            WarehouseSqlError: dbt raised (it could not run at all), or it
                reported failure and ``allow`` is False.
        """
        name = " ".join(word for word in command[:2] if not word.startswith("-"))
        log.debug("dbt %s", name)
        outcome = self._runner.invoke([*command, *self._common])
        problem = outcome.exception
        if isinstance(problem, FailedToConnectError):
            raise WarehouseUnavailable(
                f"dbt {name} cannot connect to the warehouse "
                f"{self._warehouse.describe()}: "
                f"{_one_line(str(problem)).removeprefix('Database Error: ')}"
            ) from problem
        if problem is not None:
            raise WarehouseSqlError(
                f"dbt {name} failed: {_one_line(str(problem))}"
            ) from problem
        if not outcome.success and not allow:
            raise WarehouseSqlError(f"dbt {name} failed (see the log with -v)")
        return outcome


def _log_event(event: EventMsg) -> None:
    level = _DBT_LEVELS.get(event.info.level)
    if event.info.name == "MainEncounteredError":
        level = logging.DEBUG  # raised as our own one-line error instead
    # The protobuf message has `msg`; dbt's Protocol for it does not say so.
    text = str(getattr(event.info, "msg", ""))
    if level is not None and text:
        log.log(level, "%s", text)


def _collect(
    run_at: datetime,
    invocation_id: str,
    built: dbtRunnerResult,
    fresh: dbtRunnerResult,
) -> tuple[dict[str, str], dict[str, str], list[DqResult]]:
    """Return model statuses, the errors of failed models, and ``DqResult`` rows."""
    models: dict[str, str] = {}
    model_errors: dict[str, str] = {}
    results: list[DqResult] = []
    for item in _node_results(built):
        node = item.node
        if node.resource_type != "test":
            models[node.name] = str(item.status)
            if str(item.status) == "error":
                model_errors[node.name] = _one_line(item.message or "failed")
            continue
        severity = str(node.config.severity).lower()
        results.append(
            DqResult(
                run_at,
                invocation_id,
                node.name,
                _tested_model(node),
                str(item.status),
                severity,
                item.failures,
                _seconds(item.execution_time),
                _one_line(item.message) if item.message else None,
            )
        )
    for item in _node_results(fresh):
        node = item.node
        outcome = _FRESHNESS[str(item.status)]
        results.append(
            DqResult(
                run_at,
                invocation_id,
                f"source_freshness_{node.source_name}_{node.name}",
                f"{node.source_name}.{node.name}",
                *outcome,
                None,
                _seconds(item.execution_time),
                _freshness_message(item),
            )
        )
    return models, model_errors, results


def _node_results(outcome: dbtRunnerResult) -> list[Any]:
    return list(getattr(outcome.result, "results", None) or [])


def _tested_model(node: Any) -> str | None:
    """``exchanges_current`` for a model, ``coincap.assets`` for a source."""
    attached = getattr(node, "attached_node", None) or next(
        iter(node.depends_on.nodes), None
    )
    if attached is None:
        return None
    # unique ids: model.<project>.<name>, source.<project>.<source>.<table>
    return str(attached).split(".", 2)[-1]


def _freshness_message(item: Any) -> str:
    if item.message:
        return _one_line(item.message)
    age = float(item.age)
    shown = f"{age / 60:.0f} min" if age < 7200 else f"{age / 3600:.1f} h"
    limits = item.node.freshness
    return (
        f"newest row loaded {shown} ago (warn after {_period(limits.warn_after)}, "
        f"error after {_period(limits.error_after)})"
    )


def _period(threshold: Any) -> str:
    """``15 minutes`` for dbt's ``{count: 15, period: minute}``; whole hours
    as hours (``{count: 2160, period: minute}`` is ``36 hours``)."""
    if threshold is None or threshold.count is None:
        return "never"
    count, period = int(threshold.count), str(threshold.period)
    if period == "minute" and count % 60 == 0:
        count, period = count // 60, "hour"
    return f"{count} {period}{'s' if count != 1 else ''}"


def _seconds(value: float) -> Decimal:
    return Decimal(f"{value:.3f}")


def _one_line(text: str) -> str:
    """dbt's messages span lines; keep the meaningful ones on one line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    joined = ": ".join(lines[:3])
    return joined if len(joined) <= 500 else joined[:497] + "..."


def _publish_docs(target: Path, docs_dir: Path) -> None:
    docs_dir.mkdir(parents=True, exist_ok=True)
    for name in DOCS_FILES:
        shutil.copyfile(target / name, docs_dir / name)


def _raise_for_problems(result: TransformResult) -> None:
    broken = dict(result.model_errors)
    broken.update(
        (r.test_name, r.message or "failed")
        for r in result.results
        if r.status == "error"
    )
    if broken:
        raise WarehouseSqlError(
            f"dbt could not build or run {len(broken)} node(s): "
            + "; ".join(
                f"{name}: {message}" for name, message in sorted(broken.items())
            )
        )
    failed = [r for r in result.results if r.status == "fail"]
    if failed:
        raise DataQualityError(
            f"{len(failed)} data-quality check(s) failed: "
            + "; ".join(
                (
                    f"{r.test_name} ({r.failures} failing rows)"
                    if r.failures is not None
                    else f"{r.test_name} ({r.message})"
                )
                for r in failed
            )
        )
