"""The ``crypto-etl`` command: parse arguments, call the library, report.

Each command is a few lines that call one library function. Every
``CryptoEtlError`` becomes one line on stderr and the exit code of its class
(see the table in README.md); a traceback only appears with ``-v``.
"""

from __future__ import annotations

import argparse
from contextlib import nullcontext
import logging
from importlib.metadata import version
import signal
import sys
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Mapping, Sequence
from urllib.parse import urlencode

from crypto_etl import logs
from crypto_etl.monitor.doctor import Check, exit_code, run_doctor
from crypto_etl.coincap.client import CoinCapClient
from crypto_etl.pipelines.backfill import (
    INTERVAL_MS,
    check_request,
    make_plan,
    plan_windows,
    request_windows,
    run_backfill,
    to_ms,
)
from crypto_etl.config import DEMO_WAREHOUSE_PORT, Settings, load_settings
from crypto_etl.analytics.dq import DqResult, latest_dq_results
from crypto_etl.errors import (
    BudgetExceeded,
    ConfigError,
    CryptoEtlError,
    Interrupted,
    RunSkipped,
    StaleDataError,
    WarehouseUnavailable,
    exit_codes,
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

if TYPE_CHECKING:
    from crypto_etl.simulator import Latency

log = logging.getLogger("crypto_etl.cli")

Command = Callable[[argparse.Namespace], int]


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


def _pipelines(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if names == ["all"]:
        return list(PIPELINES)
    unknown = [name for name in names if name not in PIPELINES]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"expected all or a comma list of {', '.join(PIPELINES)}"
            + (f" (unknown: {', '.join(unknown)})" if unknown else "")
        )
    return list(dict.fromkeys(names))


def _csv(text: str) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected ids like bitcoin,ethereum")
    return items


def _date(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date (YYYY-MM-DD or YYYY-MM-DDTHH:MM)"
        ) from None
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when


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


def _latency(text: str) -> Latency:
    from crypto_etl.simulator import Latency

    try:
        return Latency.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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


def _days(text: str) -> int:
    days = text[:-1] if text.endswith("d") else ""
    if not days.isdigit() or int(days) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days like 90d")
    return int(days)


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


def _ignore_budget(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ignore-budget",
        action="store_true",
        help="run even if it passes COINCAP_MONTHLY_CREDITS this month (once)",
    )


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return int(text)


def cmd_doctor(args: argparse.Namespace) -> int:
    def show(check: Check) -> None:
        print(check.line(), flush=True)

    return exit_code(run_doctor(lambda: _settings(args), args.send_test, show))


def _env_file(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"file not found: {text}")
    return path


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the epilog's table as written and shows each option's default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        shown = action.default not in (None, False, argparse.SUPPRESS)
        if shown and action.option_strings and "%(default)" not in text:
            text += " (default: %(default)s)"
        return text


def exit_code_epilog() -> str:
    """The exit-code table of ``--help``, from ``errors.exit_codes()``."""
    lines = [f"  {code:>3}  {meaning}" for code, meaning in exit_codes().items()]
    return "exit codes:\n" + "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """Return the ``crypto-etl`` argument parser (every command has help)."""
    epilog = exit_code_epilog()
    parser = argparse.ArgumentParser(
        prog="crypto-etl",
        description="Load CoinCap market data into a PostgreSQL warehouse.",
        epilog=epilog,
        formatter_class=_HelpFormatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {version('crypto_etl')}"
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="debug logs and tracebacks"
    )
    parser.add_argument(
        "--log-format", choices=("text", "json"), default="text", help="log line format"
    )
    parser.add_argument(
        "--env-file",
        type=_env_file,
        default=None,
        help="defaults file, which must exist (default: $CRYPTO_ETL_ENV_FILE or"
        " ./env, used when present)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func: Command, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog="exit codes: listed by `crypto-etl --help`",
            formatter_class=_HelpFormatter,
        )
        p.set_defaults(func=func)
        return p

    command("migrate", cmd_migrate, "create or upgrade the warehouse schema")
    p = command("run", cmd_run, "run pipelines once (a comma list, or all)")
    p.add_argument(
        "pipeline",
        type=_pipelines,
        metavar="PIPELINES",
        help=f"all, or a comma list of {', '.join(PIPELINES)}",
    )
    _ignore_budget(p)
    p = command("backfill", cmd_backfill, "load price history, resumably")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--asset", type=_csv, help="asset ids, comma-separated")
    which.add_argument("--top", type=int, help="the N highest-ranked assets")
    p.add_argument(
        "--interval", required=True, choices=INTERVAL_MS, help="point spacing"
    )
    p.add_argument("--start", required=True, type=_date, help="UTC date or datetime")
    p.add_argument("--end", type=_date, help="UTC date or datetime (default: now)")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the calls and estimated credits; fetch nothing",
    )
    _ignore_budget(p)
    p = command(
        "schedule",
        cmd_schedule,
        "print a crontab whose cadences fit the monthly credit budget",
    )
    p.add_argument(
        "--monthly-credits",
        type=_positive,
        default=None,
        metavar="N",
        help="the budget to fit (default: COINCAP_MONTHLY_CREDITS)",
    )
    p.add_argument(
        "--estimate",
        action="store_true",
        help="price from the request plans only (no warehouse, no measured runs)",
    )
    p = command(
        "status", cmd_status, "show the last run of each pipeline and data freshness"
    )
    p.add_argument("--check", action="store_true", help="exit 7 if data is stale")
    p = command(
        "doctor", cmd_doctor, "check settings, warehouse, key, budget, schedule, alerts"
    )
    p.add_argument("--send-test", action="store_true", help="test alerts and pings")
    p = command(
        "settings", cmd_settings, "show the settings in effect (secrets masked)"
    )
    p.add_argument(
        "--require-key",
        action="store_true",
        help="exit 3 unless COINCAP_API_KEY is set (what `make run` checks first)",
    )
    p = command("warehouse", cmd_warehouse, "run a local PostgreSQL without Docker")
    p.add_argument("action", choices=("start", "stop", "status"), help="what to do")
    p.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".data/warehouse"),
        help="cluster directory",
    )
    p = command(
        "transform", cmd_transform, "build the dbt models and run the data tests"
    )
    p.add_argument("--docs", action="store_true", help="also generate dbt's docs site")
    p.add_argument(
        "--docs-dir",
        type=Path,
        default=None,
        help="where the docs go (default: .data/dbt-docs)",
    )
    p.add_argument("--select", default=None, help="a dbt node selection")
    p.add_argument(
        "--full-refresh",
        action="store_true",
        help="rebuild the incremental models from scratch",
    )
    p = command("dashboard", cmd_dashboard, "serve the built-in web dashboard")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (127.0.0.1: this machine only)",
    )
    p.add_argument("--port", type=int, default=8050, help="port")
    p = command(
        "demo", cmd_demo, "everything offline: warehouse, simulator, models, dashboard"
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".data/demo"),
        help="the demo's cluster",
    )
    p.add_argument(
        "--warehouse-port", type=int, default=DEMO_WAREHOUSE_PORT, help="its port"
    )
    p.add_argument("--port", type=int, default=8050, help="dashboard port")
    p.add_argument(
        "--every",
        type=float,
        default=60.0,
        help="seconds between pipeline runs",
    )
    p = command("prune", cmd_prune, "delete raw rows older than the window")
    p.add_argument("--keep", required=True, type=_days, help="UTC days, e.g. 90d")
    p.add_argument(
        "--table",
        action="append",
        choices=list(RETENTION),
        help="only this table (repeatable; default: all)",
    )
    p.add_argument("--dry-run", action="store_true", help="count; change nothing")
    p = command(
        "provision-metabase",
        cmd_provision_metabase,
        "set up Metabase from the dashboard definition (safe to re-run)",
    )
    p.add_argument(
        "--wait",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for Metabase's /api/health",
    )
    p = command("simulate", cmd_simulate, "serve a local fake CoinCap v3 API")
    p.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1")
    p.add_argument("--api-key", default="demo-key", help="the key clients must send")
    p.add_argument("--seed", type=int, default=7, help="random seed of the market")
    p.add_argument(
        "--tick-seconds",
        type=float,
        default=0.0,
        help="move the market every N seconds (0: frozen)",
    )
    p.add_argument(
        "--fault-rate",
        type=float,
        default=0.0,
        help="share of requests answered with an injected fault (0..1)",
    )
    p.add_argument(
        "--size",
        choices=("small", "real"),
        default="small",
        help="small (60 exchanges, 300 assets) or the real API's estimated sizes "
        "(200 exchanges, 2,000 assets, ~10,000 markets)",
    )
    p.add_argument(
        "--monthly-credits",
        type=_positive,
        default=None,
        metavar="N",
        help="answer 403 (out of credits) once N credits are spent (default: no limit)",
    )
    p.add_argument(
        "--latency-ms",
        type=_latency,
        default="0",
        metavar="MS|LOW-HIGH",
        help="delay every answer, fixed (250) or drawn from a range (100-400)",
    )
    return parser


@contextmanager
def _signals_stop_cleanly() -> Iterator[None]:
    # `docker stop`, systemd and cron's kill send SIGTERM: it stops a run as
    # cleanly as Ctrl-C does (rollback, the run stored failed, locks freed).
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise Interrupted(signum)

    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.signal(s, interrupt) for s in signals}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run one command and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with _signals_stop_cleanly():
            code: int = args.func(args)
    except (RunSkipped, BudgetExceeded) as exc:
        print(f"skipped: {exc}", file=sys.stderr)
        return exc.exit_code
    except CryptoEtlError as exc:
        if args.verbose:
            log.exception("failed")
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        stopped = exc if isinstance(exc, Interrupted) else Interrupted(signal.SIGINT)
        print(stopped, file=sys.stderr)
        return 128 + stopped.signum
    except Exception as exc:  # the one place that turns a bug into an exit code
        if args.verbose:
            raise
        print(
            f"error: unexpected {type(exc).__name__}: {exc} (run with -v for details)",
            file=sys.stderr,
        )
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
