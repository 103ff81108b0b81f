"""A crontab sized to the monthly credit budget, and what a crontab will spend.

``build_schedule`` picks each snapshot pipeline's cadence from the cost
model (``pipelines.cost``) so that the projected month (31 days, the
longest) stays within 90% of the budget: every pipeline runs at least
daily, plus the daily backfill (the daily docs and prune jobs cost
nothing); then exchanges get the finest cadence that
still fits, then rates, assets and markets in turn. Pipelines that end up
on the same cadence share one ``crypto-etl run a,b`` line. ``render``
writes it in the format of ``scheduler/crontab`` (which is this output for
the default budget; a test keeps them equal).

``project`` prices the crontab in force (``CRYPTO_ETL_CRONTAB``) line by
line for ``crypto-etl status``: this month's spend so far, the spend the
remaining runs add, and the day the budget runs out at that pace.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from crypto_etl.config import FetchScope, Settings
from crypto_etl.errors import ConfigError
from crypto_etl.pipelines.catalog import PIPELINES
from crypto_etl.pipelines.cost import Cost, run_cost, scheduled_backfill_cost
from crypto_etl.warehouse.connection import WarehouseConnection

# Cadences in minutes, finest first; each divides a day evenly.
CADENCES = (5, 10, 15, 20, 30, 60, 120, 180, 240, 360, 480, 720, 1440)
TARGET_SHARE = 0.9
# The order in which pipelines get a finer cadence than daily.
PRIORITY = ("exchanges", "rates", "assets", "markets")
# The finest cadence that still counts as "every few minutes".
FEW_MINUTES = 15
BACKFILL_TOP, BACKFILL_INTERVAL = 10, "h1"
# What the daily `crypto-etl prune` keeps.
RETENTION_DAYS = 90
# A 31-day month (January 2025) to count runs in.
MONTH_START = datetime(2025, 1, 1, tzinfo=timezone.utc)
MONTH_END = datetime(2025, 2, 1, tzinfo=timezone.utc)
SKIPPED_OK = "|| [ $? -eq 10 ]"
CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
NICKNAMES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}

HEADER = """\
# crypto-etl schedule for a budget of {budget:,} CoinCap credits a month
# (COINCAP_MONTHLY_CREDITS), written by `crypto-etl schedule`; regenerate it
# when your plan changes: crypto-etl schedule --monthly-credits N > FILE
#
# One file for the two places it runs:
#
#  - the etl container: its entrypoint writes this schedule for the stack's
#    COINCAP_MONTHLY_CREDITS, then supercronic runs it with the container's
#    environment, as the non-root `etl` user, and logs every job's output and
#    exit status to `docker logs`. Times are UTC.
#  - a host crontab (`crontab -e`, times in the host's zone): copy the job
#    lines and put above them KEY=VALUE lines giving PATH (with the project's
#    .venv/bin first) and the WAREHOUSE_* / COINCAP_* variables, since cron
#    starts jobs with an almost empty environment.
#
# Written so both cron flavours read it the same:
#  - `%` is written `\\%`: cron would turn a bare `%` into a newline, and the
#    shell turns `\\%` into `%` (supercronic hands the line to /bin/sh as is).
#  - `|| [ $? -eq 10 ]`: exit code 10 means another run holds the advisory
#    lock and this one was skipped, which is not a failure worth an error line.
#    Exit code 15 (the run would pass the monthly credit budget) is left
#    loud: this schedule is sized to stay within it.
#
# Each `run` line rebuilds the dbt models after its snapshot has landed
# (chained, and with `;` so the models show the pipelines that did load when
# one failed). A month is counted as 31 days; credits per run are
"""


@dataclass(frozen=True)
class Line:
    """One job of the crontab: five cron fields, a command, what a run costs."""

    cron: str
    command: str
    label: str
    credits_per_run: int
    comment: str = ""

    @property
    def runs_per_month(self) -> int:
        """Runs in a 31-day month."""
        return runs_between(self.cron, MONTH_START, MONTH_END)

    @property
    def credits_per_month(self) -> int:
        """Credits in a 31-day month."""
        return self.runs_per_month * self.credits_per_run


@dataclass(frozen=True)
class Schedule:
    """A crontab for ``monthly_credits``, with each snapshot pipeline's cadence."""

    monthly_credits: int
    lines: list[Line]
    cadences: dict[str, int]
    costs: dict[str, Cost]

    @property
    def credits_per_month(self) -> int:
        """The projected credits of a 31-day month."""
        return sum(line.credits_per_month for line in self.lines)

    def render(self) -> str:
        """The crontab text: the header, the cost table, then the jobs."""
        measured = any(cost.measured for cost in self.costs.values())
        how = (
            "measured from recent runs where there are any, else estimated"
            if measured
            else "estimated from each pipeline's request plan at CoinCap's sizes"
        )
        out = [HEADER.format(budget=self.monthly_credits), f"# {how}:\n#\n"]
        out.append(f"#   {'job':<40} {'runs/month':>10} {'credits/run':>11}\n")
        for line in self.lines:
            out.append(
                f"#   {line.label:<40} {line.runs_per_month:>10,}"
                f" {line.credits_per_run:>11,}\n"
            )
        total = self.credits_per_month
        share = 100 * total / self.monthly_credits
        out.append(
            f"#\n# Projected: {total:,} credits a month, {share:.0f}% of "
            f"{self.monthly_credits:,} (the schedule keeps within 90%).\n"
        )
        for note in self.notes():
            out.extend(f"# {text}\n" for text in textwrap.wrap(note, 76))
        for line in self.lines:
            comment = "".join(f"# {t}\n" for t in textwrap.wrap(line.comment, 76))
            out.append(f"\n{comment}{line.cron} {line.command}\n")
        return "".join(out)

    def notes(self) -> list[str]:
        """What the budget does not afford, in plain words."""
        every = self.cadences["exchanges"]
        if every <= FEW_MINUTES:
            return []
        fine = self.costs["exchanges"].credits * runs_between(
            _cron(CADENCES[0], 0), MONTH_START, MONTH_END
        )
        return [
            f"This budget runs exchanges every {_every(every)}: every few minutes "
            f"needs a paid plan (exchanges every {CADENCES[0]} minutes alone cost "
            f"about {fine:,} credits a month)."
        ]


def build_schedule(
    warehouse: WarehouseConnection | None, scope: FetchScope, monthly_credits: int
) -> Schedule:
    """Choose cadences that keep a 31-day month within 90% of the budget.

    Args:
        warehouse: where measured costs are read; None prices from the
            request plans alone.

    Raises:
        ConfigError: even a daily run of everything does not fit.
    """
    costs = {name: run_cost(warehouse, p, scope) for name, p in PIPELINES.items()}
    backfill = scheduled_backfill_cost(warehouse, None, BACKFILL_TOP, BACKFILL_INTERVAL)
    costs["backfill"] = backfill
    target = TARGET_SHARE * monthly_credits
    cadences = {name: CADENCES[-1] for name in PIPELINES}

    def total(chosen: dict[str, int]) -> int:
        return sum(line.credits_per_month for line in _lines(chosen, costs))

    if total(cadences) > target:
        raise ConfigError(
            f"a budget of {monthly_credits:,} credits a month cannot hold even a "
            f"daily run of every pipeline and the daily backfill "
            f"({total(cadences):,} credits, over 90% of it); set "
            "COINCAP_MONTHLY_CREDITS to your plan's figure, or narrow "
            "COINCAP_ASSETS_TOP / COINCAP_MARKETS"
        )
    for name in PRIORITY:
        for minutes in CADENCES:
            trial = {**cadences, name: minutes}
            if total(trial) <= target:
                cadences = trial
                break
    return Schedule(monthly_credits, _lines(cadences, costs), cadences, costs)


def _lines(cadences: dict[str, int], costs: dict[str, Cost]) -> list[Line]:
    """The jobs for ``cadences``: run lines finest first, backfill, docs."""
    groups: dict[int, list[str]] = {}
    for name in PIPELINES:
        groups.setdefault(cadences[name], []).append(name)
    lines = []
    for offset, (minutes, names) in enumerate(sorted(groups.items())):
        listed = ",".join(names)
        lines.append(
            Line(
                _cron(minutes, offset),
                f"crypto-etl run {listed}; crypto-etl transform {SKIPPED_OK}",
                f"run {listed} (every {_every(minutes)})",
                sum(costs[n].credits for n in names),
                f"Every {_every(minutes)}: snapshot {', '.join(names)}, then "
                "rebuild the dbt models.",
            )
        )
    lines.append(
        Line(
            "17 3 * * *",
            f"crypto-etl backfill --top {BACKFILL_TOP} --interval {BACKFILL_INTERVAL}"
            f" --start $(date -u -d '2 days ago' +\\%F) {SKIPPED_OK}",
            f"backfill --top {BACKFILL_TOP} {BACKFILL_INTERVAL} (daily)",
            costs["backfill"].credits,
            f"Daily at 03:17: re-fetch hourly history of the top {BACKFILL_TOP} "
            "assets from two days ago onwards (the overlap fills a missed day; "
            "backfill is idempotent, so it adds no duplicate rows).",
        )
    )
    lines.append(
        Line(
            "47 3 * * *",
            f"crypto-etl transform --docs {SKIPPED_OK}",
            "transform --docs (daily)",
            0,
            "Daily at 03:47: regenerate dbt's docs site, which the dashboard "
            "serves at /docs/ (no API call).",
        )
    )
    lines.append(
        Line(
            "7 4 * * *",
            f"crypto-etl prune --keep {RETENTION_DAYS}d {SKIPPED_OK}",
            f"prune --keep {RETENTION_DAYS}d (daily)",
            0,
            f"Daily at 04:07: delete raw rows older than {RETENTION_DAYS} days once "
            "the marts hold them (whole monthly partitions where it can) and "
            "create the coming months' partitions (no API call).",
        )
    )
    return lines


def _cron(minutes: int, offset: int) -> str:
    """Five cron fields for every ``minutes``, ``offset`` minutes past the grid."""
    if minutes < 60:
        field = f"*/{minutes}" if offset == 0 else f"{offset}-59/{minutes}"
        return f"{field} * * * *"
    hours = minutes // 60
    if hours == 1:
        return f"{offset} * * * *"
    if hours < 24:
        return f"{offset} */{hours} * * *"
    return f"{offset} 0 * * *"


def _every(minutes: int) -> str:
    if minutes < 60:
        return f"{minutes} minutes"
    hours = minutes // 60
    if hours == 24:
        return "day"
    return "hour" if hours == 1 else f"{hours} hours"


def schedule_in_force(
    settings: Settings, warehouse: WarehouseConnection | None
) -> tuple[str, str]:
    """The crontab in force and where it comes from.

    That is ``CRYPTO_ETL_CRONTAB`` (default ``scheduler/crontab``) when the
    file exists, else what ``crypto-etl schedule`` writes for the budget
    (priced from ``warehouse``'s measured runs, or estimated when None).

    Raises:
        ConfigError: no file, and no schedule fits the budget.
    """
    path = settings.crontab
    if path.is_file():
        return path.read_text(encoding="utf-8"), f"the schedule in {path}"
    schedule = build_schedule(warehouse, settings.scope, settings.monthly_credits)
    return (
        schedule.render(),
        f"the schedule `crypto-etl schedule` writes ({path} not found)",
    )


# ---- reading a crontab -------------------------------------------------------


def expand(field: str, low: int, high: int) -> set[int]:
    """The values a cron field matches (``*``, ``a``, ``a-b``, ``/n``, lists).

    Raises:
        ValueError: a field this parser does not read, or out of range.
    """
    values: set[int] = set()
    for item in field.split(","):
        base, slash, step_text = item.partition("/")
        step = int(step_text) if slash else 1
        if base == "*":
            first, last = low, high
        elif "-" in base:
            first_text, _, last_text = base.partition("-")
            first, last = int(first_text), int(last_text)
        else:
            first = int(base)
            last = high if slash else first
        if step < 1 or not low <= first <= last <= high:
            raise ValueError(f"cron field {field!r} is out of range")
        values.update(range(first, last + 1, step))
    return values


def cron_fields(cron: str) -> tuple[list[str], list[set[int]]]:
    """The five fields of ``cron`` (nicknames expanded) and what each matches.

    The day of week is 0-6 (7, Sunday too, becomes 0).

    Raises:
        ValueError: not five fields this parser reads.
    """
    fields = NICKNAMES.get(cron.strip(), cron).split()
    if len(fields) != 5:
        raise ValueError(f"{cron!r} is not five cron fields")
    values = [expand(f, lo, hi) for f, (lo, hi) in zip(fields, CRON_RANGES)]
    values[4] = {d % 7 for d in values[4]}
    return fields, values


def runs_between(cron: str, start: datetime, end: datetime) -> int:
    """How many times ``cron`` fires in ``[start, end)`` (aware UTC datetimes).

    Raises:
        ValueError: not five fields this parser reads.
    """
    fields, (minute, hour, dom, month, dow) = cron_fields(cron)
    # Cron's rule: with both day fields restricted, either one matching will do.
    either = fields[2] != "*" and fields[4] != "*"
    count = 0
    day = start.date()
    while day <= end.date():
        dom_ok, dow_ok = day.day in dom, day.isoweekday() % 7 in dow
        if day.month in month and ((dom_ok or dow_ok) if either else dom_ok and dow_ok):
            midnight = datetime(day.year, day.month, day.day, tzinfo=start.tzinfo)
            if start <= midnight and midnight + timedelta(days=1) <= end:
                count += len(hour) * len(minute)
            else:
                count += sum(
                    start <= midnight + timedelta(hours=h, minutes=m) < end
                    for h in hour
                    for m in minute
                )
        day += timedelta(days=1)
    return count


def read_crontab(text: str) -> list[tuple[str, str]]:
    """The (cron fields, command) of each job line; comments and KEY=VALUE skipped."""
    jobs = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or re.match(r"^[A-Za-z_]\w*\s*=", line):
            continue
        if line.startswith("@"):
            nickname, _, command = line.partition(" ")
            jobs.append((nickname, command.strip()))
            continue
        parts = line.split(maxsplit=5)
        if len(parts) == 6:
            jobs.append((" ".join(parts[:5]), parts[5]))
    return jobs


# A crontab command's `crypto-etl run a,b` and `crypto-etl backfill ARGS`.
RUN_COMMAND = r"crypto-etl\b[^;|&]*?\brun\s+([a-z,]+)"
BACKFILL_COMMAND = r"crypto-etl\b[^;|&]*?\bbackfill\b([^;|&]*)"


def snapshots_run_by(command: str) -> list[str]:
    """The snapshot pipelines a crontab command runs, once each, in order."""
    names: list[str] = []
    for listed in re.findall(RUN_COMMAND, command):
        names += PIPELINES if listed == "all" else listed.split(",")
    return [n for n in dict.fromkeys(names) if n in PIPELINES]


def command_cost(
    command: str, warehouse: WarehouseConnection | None, scope: FetchScope
) -> int:
    """The credits one run of a crontab command spends (0 for no API call)."""
    credits = sum(
        run_cost(warehouse, PIPELINES[name], scope).credits
        for name in snapshots_run_by(command)
    )
    for args in re.findall(BACKFILL_COMMAND, command):
        top = re.search(r"--top[ =](\d+)", args)
        assets = re.search(r"--asset[ =](\S+)", args)
        interval = re.search(r"--interval[ =](\w+)", args)
        credits += scheduled_backfill_cost(
            warehouse,
            assets.group(1).split(",") if assets else None,
            int(top.group(1)) if top else None,
            interval.group(1) if interval else BACKFILL_INTERVAL,
        ).credits
    return credits


@dataclass(frozen=True)
class Projection:
    """This month's spend, what the schedule adds by its end, when it runs out."""

    spent: int
    projected: int
    budget: int
    runs_out: date | None
    source: str

    def describe(self) -> str:
        """One line for ``crypto-etl status``."""
        head = (
            f"projection: {self.projected:,} credits this month on {self.source} "
            f"({100 * self.projected / max(self.budget, 1):.0f}% of {self.budget:,})"
        )
        if self.runs_out is None:
            return f"{head}; the budget lasts the month"
        if self.spent >= self.budget:
            return f"{head}; the budget is spent (runs stop with exit 15)"
        return f"{head}; at that pace the budget runs out on {self.runs_out}"


def project(
    warehouse: WarehouseConnection | None,
    crontab: str,
    source: str,
    scope: FetchScope,
    budget: int,
    spent: int,
    now: datetime,
) -> Projection:
    """Price every job of ``crontab`` for the rest of the month after ``now``.

    ``warehouse`` None prices from the request plans alone.

    Raises:
        ValueError: a job line whose cron fields this parser does not read.
    """
    month_end = _next_month(now)
    per_job = [
        (cron, command_cost(command, warehouse, scope))
        for cron, command in read_crontab(crontab)
    ]
    remaining = sum(runs_between(c, now, month_end) * cost for c, cost in per_job)
    projected = spent + remaining
    runs_out = None
    if spent >= budget:
        runs_out = now.date()  # already spent
    elif projected > budget:
        # remaining > 0 here: the runs left spend it at an even pace.
        per_second = remaining / (month_end - now).total_seconds()
        runs_out = (now + timedelta(seconds=(budget - spent) / per_second)).date()
    return Projection(spent, projected, budget, runs_out, source)


def _next_month(now: datetime) -> datetime:
    first = datetime(now.year, now.month, 1, tzinfo=timezone.utc)
    return (first + timedelta(days=32)).replace(day=1)
