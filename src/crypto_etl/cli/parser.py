"""The ``crypto-etl`` argument parser: every command, option and default."""

from __future__ import annotations

import argparse
from importlib.metadata import version
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from crypto_etl.pipelines.backfill import (
    INTERVAL_MS,
)
from crypto_etl.config import DEMO_WAREHOUSE_PORT
from crypto_etl.errors import (
    exit_codes,
)
from crypto_etl.pipelines.catalog import PIPELINES, RETENTION

if TYPE_CHECKING:
    from crypto_etl.simulator import Latency
from crypto_etl.cli.commands import (
    cmd_backfill,
    cmd_dashboard,
    cmd_demo,
    cmd_doctor,
    cmd_migrate,
    cmd_provision_metabase,
    cmd_prune,
    cmd_run,
    cmd_schedule,
    cmd_settings,
    cmd_simulate,
    cmd_status,
    cmd_transform,
    cmd_warehouse,
)

Command = Callable[[argparse.Namespace], int]


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


def _latency(text: str) -> Latency:
    from crypto_etl.simulator import Latency

    try:
        return Latency.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _days(text: str) -> int:
    days = text[:-1] if text.endswith("d") else ""
    if not days.isdigit() or int(days) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days like 90d")
    return int(days)


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
