"""What each ``crypto-etl`` command does: read settings, call the library, print."""

from __future__ import annotations

import argparse
from contextlib import nullcontext
import logging
import sys
from datetime import datetime, timezone
from typing import Mapping
from urllib.parse import urlencode

from crypto_etl import logs
from crypto_etl.monitor.doctor import Check, exit_code, run_doctor
from crypto_etl.coincap.client import CoinCapClient
from crypto_etl.pipelines.backfill import (
    check_request,
    make_plan,
    plan_windows,
    request_windows,
    run_backfill,
    to_ms,
)
from crypto_etl.config import Settings, load_settings
from crypto_etl.analytics.dq import DqResult, latest_dq_results
from crypto_etl.errors import (
    ConfigError,
    StaleDataError,
    WarehouseUnavailable,
)
from crypto_etl.pipelines.cost import Budget, backfill_cost, backfill_scope, guard
from crypto_etl.pipelines.schedule import build_schedule, project, schedule_in_force
from crypto_etl.monitor.freshness import TableFreshness, assess, human_age, stale
from crypto_etl.pipelines.batch import BatchResult, Outcome
from crypto_etl.pipelines.freshness import limits_for_settings
from crypto_etl.pipelines.snapshot import run_many, run_snapshot
from crypto_etl.monitor.watch import monitored
from crypto_etl.pipelines.catalog import BACKFILL, PIPELINES, RETENTION
from crypto_etl.warehouse.runlog import now_utc
from crypto_etl.warehouse.status import credit_usage, read_status
from crypto_etl.warehouse.connection import WarehouseConnection
from crypto_etl.warehouse.migrations import prepare_warehouse


log = logging.getLogger("crypto_etl.cli")


def _settings(args: argparse.Namespace, *, owner_login: bool = True) -> Settings:
    settings: Settings = load_settings(env_file=args.env_file, owner_login=owner_login)
    logs.configure(args.verbose, args.log_format, settings.secrets())
    return settings


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    with WarehouseConnection(settings.warehouse) as warehouse:
        applied = prepare_warehouse(warehouse, settings.reader)
    if applied:
        names = ", ".join(f"{m.version:04d}_{m.name}" for m in applied)
        print(f"applied {len(applied)} migration(s): {names}")
    else:
        print("the schema is up to date")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    settings = _settings(args)
    budget = Budget(settings.monthly_credits, ignore=args.ignore_budget)
    with (
        monitored(settings, args.pipeline),
        CoinCapClient.from_settings(settings) as client,
        WarehouseConnection(settings.warehouse) as warehouse,
    ):
        pipelines = [PIPELINES[name] for name in args.pipeline]
        if len(pipelines) == 1:
            # Its own error and exit code, not a batch's.
            only = run_snapshot(
                pipelines[0], client, warehouse, scope=settings.scope, budget=budget
            )
            batch = BatchResult([Outcome(pipelines[0], run=only)])
        else:
            batch = run_many(
                pipelines, client, warehouse, scope=settings.scope, budget=budget
            )
        # What each pipeline did goes to stdout whatever happened to the
        # others; the batch's error is raised inside `monitored`, so the
        # pings and alerts see it.
        for outcome in batch.outcomes:
            print(_outcome_line(outcome), flush=True)
        error = batch.error()
        if error is not None:
            raise error
    return 0


def _outcome_line(outcome: Outcome) -> str:
    run = outcome.run
    if run is None:
        if outcome.status == "skipped":
            return f"{outcome.pipeline.name}: skipped ({outcome.cause})"
        return f"{outcome.pipeline.name}: failed, nothing loaded"
    return (
        f"{run.pipeline}: fetched {run.rows_fetched}, inserted "
        f"{run.rows_inserted}, rejected {run.rows_rejected} "
        f"({run.spent.calls} calls, {run.spent.bytes} bytes, "
        f"{run.spent.credits} credits)"
    )


def cmd_backfill(args: argparse.Namespace) -> int:
    settings = _settings(args)
    # A dry run spends no credits and loads nothing: it is not a run to watch.
    watch = nullcontext() if args.dry_run else monitored(settings, [BACKFILL.name])
    with (
        watch,
        CoinCapClient.from_settings(settings) as client,
        WarehouseConnection(settings.warehouse) as warehouse,
    ):
        assets, top, interval = args.asset, args.top, args.interval
        now = datetime.now(timezone.utc)
        end = check_request(
            assets=assets,
            top=top,
            interval=interval,
            start=args.start,
            end=args.end,
            now=now,
        )
        start_ms, end_ms = to_ms(args.start), to_ms(end)
        if assets and not args.dry_run:
            # Named assets: what is left to fetch is known without a call.
            known = plan_windows(assets, interval, start_ms, end_ms)
            if not make_plan(warehouse, known).todo:
                print(
                    f"backfill: nothing to fetch: all {len(known)} windows"
                    " already loaded"
                )
                return 0
        scope = backfill_scope(assets, top, interval)
        cost = backfill_cost(
            warehouse,
            assets=assets,
            top=top,
            interval=interval,
            start_ms=start_ms,
            end_ms=end_ms,
        )
        if not args.dry_run:
            budget = Budget(settings.monthly_credits, ignore=args.ignore_budget)
            guard(warehouse, budget, "backfill", cost, scope)
        windows = request_windows(
            client, assets=assets, top=top, interval=interval, start=args.start, end=end
        )
        plan = make_plan(warehouse, windows, verify=bool(args.asset))
        if args.dry_run:
            left = (
                settings.monthly_credits
                - credit_usage(warehouse, settings.monthly_credits).month
            )
            calls: list[tuple[str, Mapping[str, str | int]]] = (
                [("/assets", plan.verify_params)] if plan.verify else []
            )
            calls += [(w.path, w.params) for w in plan.todo]
            for path, params in calls:
                print(f"GET {path}?{urlencode(params)}")
            print(
                f"{len(calls)} calls, about {plan.estimated_credits} credits "
                f"({plan.done} windows already loaded); {left} of the "
                f"{settings.monthly_credits} monthly credits are left"
            )
            return 0
        if not plan.todo:
            print(f"backfill: nothing to fetch: all {plan.done} windows already loaded")
            return 0
        progress = logs.Progress("window")
        try:
            run = run_backfill(
                client,
                warehouse,
                windows,
                verify=bool(args.asset),
                on_progress=progress.advance,
                scope=scope,
            )
        finally:
            progress.close()
    print(
        f"backfill: fetched {run.rows_fetched}, inserted {run.rows_inserted} points "
        f"({run.spent.calls} calls, {run.spent.credits} credits)"
    )
    return 0


def _age(table: TableFreshness | None) -> str:
    if table is None or table.age is None:
        return "no data" if table else "-"
    return f"{human_age(table.age)} ago" + (
        "" if table.state == "ok" else f" ({table.state})"
    )


def cmd_settings(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.require_key:
        settings.api_key()
    for name, value in settings.shown():
        print(f"{name}={value}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    settings = _settings(args)
    with WarehouseConnection(settings.warehouse) as warehouse:
        statuses = read_status(warehouse)
        credits = credit_usage(warehouse, settings.monthly_credits)
        checks = latest_dq_results(warehouse)
        projection = _projection(warehouse, settings, credits.month)
        limits = limits_for_settings(settings, warehouse)
    newest = {s.pipeline: s.newest_data_at for s in statuses}
    tables = {t.pipeline: t for t in assess(newest, now_utc(), limits)}
    header = f"{'pipeline':<10} {'last run':<17} {'status':<9} {'fetched':>8} "
    print(
        header
        + f"{'inserted':>8} {'rejected':>8} {'calls':>5} {'credits':>7}  data as of"
    )
    for s in statuses:
        when = s.last_run_at.strftime("%Y-%m-%d %H:%M") if s.last_run_at else "never"
        print(
            f"{s.pipeline:<10} {when:<17} {s.last_status or '-':<9} "
            f"{s.rows_fetched:>8} {s.rows_inserted:>8} {s.rows_rejected:>8} "
            f"{s.api_calls:>5} {s.credits:>7}  {_age(tables.get(s.pipeline))}"
        )
        if s.last_status == "failed" and s.error_message:
            print(f"{'':<10} error: {s.error_message}")
    print(
        f"credits: {credits.today} today, {credits.month} this month "
        f"of a {credits.budget} monthly budget (COINCAP_MONTHLY_CREDITS)"
    )
    print(projection)
    if credits.warning:
        print(f"warning: {credits.warning}", file=sys.stderr)
    _print_checks(checks)
    late = "; ".join(t.describe() for t in stale(list(tables.values())))
    print(f"freshness: stale: {late}" if late else "freshness: every table fresh")
    if late and args.check:
        raise StaleDataError(f"stale data: {late}")
    return 0


def _projection(warehouse: WarehouseConnection, settings: Settings, spent: int) -> str:
    try:
        text, source = schedule_in_force(settings, warehouse)
    except ConfigError as exc:  # status still reports the rest
        return f"projection: no schedule fits ({exc})"
    try:
        found = project(
            warehouse,
            text,
            source,
            settings.scope,
            settings.monthly_credits,
            spent,
            datetime.now(timezone.utc),
        )
    except ValueError as exc:
        return f"projection: cannot read {source}: {exc} (CRYPTO_ETL_CRONTAB)"
    return found.describe()


def cmd_schedule(args: argparse.Namespace) -> int:
    settings = _settings(args)
    budget = args.monthly_credits or settings.monthly_credits
    if args.estimate:
        schedule = build_schedule(None, settings.scope, budget)
    else:
        with WarehouseConnection(settings.warehouse) as warehouse:
            schedule = build_schedule(warehouse, settings.scope, budget)
    sys.stdout.write(schedule.render())
    return 0


def _print_checks(checks: list[DqResult]) -> None:
    if not checks:
        print("data quality: no results yet (run `crypto-etl transform`)")
        return
    counts: dict[str, int] = {}
    for check in checks:
        counts[check.status] = counts.get(check.status, 0) + 1
    summary = ", ".join(f"{n} {status}" for status, n in counts.items())
    when = checks[0].run_at.strftime("%Y-%m-%d %H:%M")
    print(f"data quality ({when}): {summary}")
    for check in checks:
        if check.status != "pass":
            detail = check.message or f"{check.failures} failing rows"
            model = check.model or "-"
            print(f"  {check.status:<7} {check.test_name} ({model}): {detail}")


def cmd_warehouse(args: argparse.Namespace) -> int:
    from crypto_etl.local.cluster import LocalWarehouse

    settings = _settings(args)
    w = settings.warehouse
    local = LocalWarehouse.for_settings(args.data_dir, w)
    if args.action == "stop":
        print("stopped" if local.stop() else "not running")
        return 0
    state = local.start() if args.action == "start" else local.status()
    if not state.running:
        # The same code as any unreachable warehouse: a monitor can rely on it.
        raise WarehouseUnavailable(
            f"the local warehouse is not running (data directory {state.data_dir});"
            " start it with `crypto-etl warehouse start`"
        )
    print(f"running, pid {state.pid}, data directory {state.data_dir}")
    print(
        f"WAREHOUSE_HOST={state.host} WAREHOUSE_PORT={state.port} "
        f"WAREHOUSE_DB={w.dbname} WAREHOUSE_USER={w.user} "
        "(password: WAREHOUSE_PASSWORD from your settings)"
    )
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from crypto_etl.simulator import CoinCapSimulator

    logs.configure(args.verbose, args.log_format, [args.api_key])
    sim = CoinCapSimulator(
        api_key=args.api_key,
        port=args.port,
        seed=args.seed,
        auto_tick_seconds=args.tick_seconds or None,
        fault_rate=args.fault_rate,
        size=args.size,
        monthly_credits=args.monthly_credits,
        latency_ms=(args.latency_ms.low_ms, args.latency_ms.high_ms),
    )
    sim.start()
    print(f"CoinCap simulator on {sim.base_url} (Ctrl-C stops)", flush=True)
    sim.serve_forever()
    return 0


def cmd_transform(args: argparse.Namespace) -> int:
    from crypto_etl.analytics.dbt_runner import run_transform

    settings = _settings(args)
    with monitored(settings, ["transform"]):
        result = run_transform(
            settings,
            docs=args.docs,
            docs_dir=args.docs_dir,
            select=args.select,
            full_refresh=args.full_refresh,
        )
    print(result.summary())
    if result.docs_dir is not None:
        print(f"docs: {result.docs_dir}/index.html")
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    from crypto_etl.dashboard.server import serve_dashboard

    # The dashboard logs in with the reader role only: it needs no owner login.
    settings = _settings(args, owner_login=False)
    serve_dashboard(
        settings,
        args.host,
        args.port,
        on_ready=lambda url: print(f"dashboard: {url} (Ctrl-C stops)", flush=True),
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from crypto_etl.demo import run_demo

    settings = _settings(args)
    # The demo's own cluster, beside (not instead of) the one `make run` uses.
    warehouse = replace(settings.warehouse, host="127.0.0.1", port=args.warehouse_port)
    run_demo(
        replace(settings, warehouse=warehouse),
        data_dir=args.data_dir,
        dashboard_port=args.port,
        schedule_seconds=args.every,
        on_ready=lambda line: print(line, flush=True),
    )
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    from crypto_etl.pipelines.prune import prune

    settings = _settings(args)
    names = args.table or list(RETENTION)
    with WarehouseConnection(settings.warehouse) as warehouse:
        report = prune(
            warehouse,
            [RETENTION[name] for name in dict.fromkeys(names)],
            keep_days=args.keep,
            now=datetime.now(timezone.utc),
            dry_run=args.dry_run,
        )
    print(report.summary())
    return 0


def cmd_provision_metabase(args: argparse.Namespace) -> int:
    from crypto_etl.dashboard.definition import load_definition
    from crypto_etl.dashboard.metabase import provision_metabase

    settings = _settings(args)
    report = provision_metabase(
        settings,
        settings.require_metabase(),
        load_definition(),
        ready_timeout=args.wait,
    )
    print(report.summary())
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    def show(check: Check) -> None:
        print(check.line(), flush=True)

    return exit_code(run_doctor(lambda: _settings(args), args.send_test, show))
