"""Soak: hundreds of scheduled runs with seeded faults, then the invariants.

Not a test: it prints a markdown table (stdout) and progress (stderr), and
exits 1 if an invariant fails. ``make soak`` runs the full length; CI runs
``--runs 40``.

Each scheduled run is what cron starts: a ``crypto-etl run PIPELINE``
process, against a durable PostgreSQL of its own (``LocalWarehouse``) and
the simulator over HTTP. Before each run the market moves and, with the
seeded RNG, one fault is drawn: an API fault (the simulator's), a database
fault (a restart between runs, the server down at start, a crash mid-COPY,
another session's lock), a signal (SIGTERM, SIGKILL mid-run) or two runs at
once. After every run that exited 0 the rows the API serves at that moment
must all be in the warehouse. At the end, after one clean run of each
pipeline:

- duplicates: rows whose key appears twice (0);
- partial loads: rows not inserted by a succeeded run, i.e. the table's row
  count minus the succeeded runs' ``rows_inserted`` (0);
- snapshots lost: rows the API served to a run that exited 0 and that are
  not in the warehouse (0);
- runs unaccounted for: processes that reached the warehouse without an
  ``etl_runs`` row, and rows still ``running`` (0);
- connections left open: warehouse sessions other than the checker's (0);
- memory: this process's RSS (the simulator's) at start and end.

    python bench/soak.py                  # 200 runs, about 10 minutes
    python bench/soak.py --runs 40        # CI's short soak
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path
from typing import Any, Callable

import psycopg2
import requests

from benchlib import free_port, markdown_table, rss_bytes
from crypto_etl.config import Secret, WarehouseSettings
from crypto_etl.local.cluster import LocalWarehouse
from crypto_etl.pipelines.catalog import PIPELINES
from crypto_etl.records.parse import parse_rows
from crypto_etl.simulator import CoinCapSimulator
from crypto_etl.warehouse.connection import WarehouseConnection
from crypto_etl.warehouse.migrations import migrate

USER, DBNAME, KEY = "etl_soak", "soak", "soak-key-local-only"
MIB = 1024 * 1024
# Fault kind -> weight. "none" is a normal run.
FAULTS = {
    "none": 30,
    "api 500": 3,
    "api 502": 2,
    "api 503": 2,
    "api 429": 3,
    "api 429 Retry-After": 2,
    "api 401": 1,
    "api 404": 1,
    "read timeout": 2,
    "reset mid-body": 2,
    "body cut short": 2,
    "truncated JSON": 2,
    "HTML page with 200": 1,
    "wrong content type": 1,
    "oversized body": 1,
    "schema drift": 2,
    "db restart between runs": 3,
    "db down at start": 2,
    "db crash mid-COPY": 2,
    "lock held by another session": 2,
    "SIGTERM mid-run": 2,
    "SIGKILL mid-run": 2,
    "two runs at once": 2,
}


class Soak:
    """The warehouse, the simulator, and the bookkeeping of every run."""

    def __init__(self, cluster: LocalWarehouse, db: WarehouseSettings) -> None:
        self.cluster = cluster
        self.db = db
        self.sim = CoinCapSimulator(api_key=KEY, n_exchanges=60, n_assets=150)
        self.sim.start()
        self.env = {
            **os.environ,
            "WAREHOUSE_HOST": db.host,
            "WAREHOUSE_PORT": str(db.port),
            "WAREHOUSE_DB": db.dbname,
            "WAREHOUSE_USER": db.user,
            "WAREHOUSE_PASSWORD": db.password.reveal(),
            "COINCAP_API_KEY": KEY,
            "COINCAP_BASE_URL": self.sim.base_url,
            "COINCAP_MAX_ATTEMPTS": "2",
            "COINCAP_READ_TIMEOUT": "1",
            "WAREHOUSE_LOCK_TIMEOUT": "1",
            "CRYPTO_ETL_ENV_FILE": "/nonexistent",
            # Hundreds of runs in one month: the credit guard must not skip them.
            "COINCAP_MONTHLY_CREDITS": "100000000",
        }
        self.invocations: collections.Counter[str] = collections.Counter()
        self.unrecorded = 0  # runs that could not reach the warehouse
        self.codes: dict[str, collections.Counter[int]] = collections.defaultdict(
            collections.Counter
        )
        self.lost = 0
        self.served = 0
        self.log_mark = 0  # the simulator's request log when a run started

    # -- running -------------------------------------------------------------

    def start(self, pipeline: str) -> subprocess.Popen[str]:
        self.invocations[pipeline] += 1
        self.log_mark = len(self.sim.request_log)
        return subprocess.Popen(
            [sys.executable, "-m", "crypto_etl.cli", "run", pipeline],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    def finish(self, kind: str, pipeline: str, proc: subprocess.Popen[str]) -> int:
        _, err = proc.communicate(timeout=120)
        code = proc.returncode
        self.codes[kind][code] += 1
        if code not in (0, 4, 5, 6, 10, 11, 130, 143, -9):
            raise SystemExit(f"{kind}: unexpected exit {code}: {err}")
        if code == 0:
            self.sim.clear_faults()  # the check reads what the run read
            self.check_served(pipeline)
        return code

    def run(self, kind: str, pipeline: str) -> int:
        return self.finish(kind, pipeline, self.start(pipeline))

    # -- faults --------------------------------------------------------------

    def inject_api(self, kind: str, path: str, times: int) -> None:
        sim = self.sim
        simple: dict[str, Callable[[], None]] = {
            "api 500": lambda: sim.fail_next(500, times, path=path),
            "api 502": lambda: sim.fail_next(502, times, path=path),
            "api 503": lambda: sim.fail_next(503, times, path=path),
            "api 429": lambda: sim.fail_next(429, times, path=path),
            "api 429 Retry-After": lambda: sim.fail_next(
                429, times, retry_after="0", path=path
            ),
            "api 401": lambda: sim.fail_next(401, times, path=path),
            "api 404": lambda: sim.fail_next(404, times, path=path),
            "read timeout": lambda: sim.delay_next(2.5, times, path=path),
            "reset mid-body": lambda: sim.truncate_next(times, path, "reset"),
            "body cut short": lambda: sim.truncate_next(times, path),
            "truncated JSON": lambda: sim.truncate_next(times, path, "bad_json"),
            "HTML page with 200": lambda: sim.fail_next(
                200, times, body=b"<html>oops</html>", path=path
            ),
            "wrong content type": lambda: sim.content_type_next(
                "text/plain", times, path
            ),
            "oversized body": lambda: sim.pad_next(17 * MIB, times, path),
            "schema drift": lambda: sim.drift_next("null_number", "rank", times, path),
        }
        simple[kind]()

    def one_run(self, kind: str, pipeline: str, rng: random.Random) -> None:
        path = PIPELINES[pipeline].path
        if kind == "none":
            self.run(kind, pipeline)
        elif kind.startswith("api") or kind in (
            "read timeout",
            "reset mid-body",
            "body cut short",
            "truncated JSON",
            "HTML page with 200",
            "wrong content type",
            "oversized body",
            "schema drift",
        ):
            # One bad answer is retried within the run; two use up the tries.
            self.inject_api(kind, path, rng.choice((1, 2, 3)))
            self.run(kind, pipeline)
        elif kind == "db restart between runs":
            self.cluster.stop()
            self.cluster.start()
            self.run(kind, pipeline)
        elif kind == "db down at start":
            self.cluster.stop()
            if self.run(kind, pipeline) == 6:
                self.unrecorded += 1
            self.cluster.start()
        elif kind == "db crash mid-COPY":
            self.crash_mid_copy(kind, pipeline)
        elif kind == "lock held by another session":
            with closing(self.session()) as holder, holder.cursor() as cur:
                cur.execute(f"LOCK TABLE coincap.{pipeline} IN ACCESS EXCLUSIVE MODE")
                self.run(kind, pipeline)
                holder.rollback()
        elif kind in ("SIGTERM mid-run", "SIGKILL mid-run"):
            self.sim.delay_next(3, path=path)
            before = self.last_run_id()
            proc = self.start(pipeline)
            self.wait_running(before)
            proc.send_signal(signal.SIGTERM if "TERM" in kind else signal.SIGKILL)
            self.finish(kind, pipeline, proc)
            self.sim.clear_faults()
        elif kind == "two runs at once":
            self.sim.delay_next(1, path=path)
            before = self.last_run_id()
            first = self.start(pipeline)
            self.wait_running(before)
            self.run(kind, pipeline)
            self.finish(kind, pipeline, first)
        self.sim.clear_faults()

    def crash_mid_copy(self, kind: str, pipeline: str) -> None:
        self.sim.tick()  # new rows, so the loader COPYs into the table
        holder = self.session()
        try:
            with holder.cursor() as cur:
                cur.execute(f"LOCK TABLE coincap.{pipeline} IN SHARE MODE")
            proc = self.start(pipeline)
            self.wait_for(
                "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND application_name = 'crypto-etl'"
            )
            self.cluster.stop(mode="immediate")
        finally:
            holder.close()
        self.finish(kind, pipeline, proc)
        self.cluster.start()

    # -- the warehouse -------------------------------------------------------

    def session(self) -> Any:
        """A connection of the checker's own (not counted as left open)."""
        return psycopg2.connect(
            host=self.db.host,
            port=self.db.port,
            dbname=self.db.dbname,
            user=self.db.user,
            password=self.db.password.reveal(),
            application_name="soak-checker",
        )

    def query(self, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
        with WarehouseConnection(self.db, application_name="soak-checker") as w:
            with w.managed_cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall() if cur.description else []

    def wait_for(self, sql: str) -> None:
        deadline = time.monotonic() + 60
        while not self.query(sql):
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out waiting for: {sql}")
            time.sleep(0.02)

    def last_run_id(self) -> int:
        return int(
            self.query("SELECT coalesce(max(run_id), 0) FROM coincap.etl_runs")[0][0]
        )

    def wait_running(self, after: int) -> None:
        """Wait for a run newer than ``after`` to store its ``running`` row.

        Newer: a SIGKILLed run's row stays ``running`` until the next run.
        """
        self.wait_for(
            "SELECT 1 FROM coincap.etl_runs WHERE status = 'running'"
            f" AND run_id > {after}"
        )

    def check_served(self, pipeline: str) -> None:
        """Every row the API served the run that exited 0 is in the warehouse.

        The run's successful requests are asked again, with the same
        parameters: the market has not moved since, so the answer is the one
        the run got.
        """
        p = PIPELINES[pipeline]
        table = p.table
        stored = {
            tuple(str(v) for v in row)
            for row in self.query(
                f"SELECT {', '.join(table.key)} FROM coincap.{table.name}"
            )
        }
        asked = {
            tuple(sorted(r.params.items()))
            for r in self.sim.request_log[self.log_mark :]
            if r.status == 200 and r.path == "/v3" + p.path
        }
        headers = {"Authorization": f"Bearer {KEY}"}
        for params in asked:
            body = requests.get(
                self.sim.base_url + p.path,
                params=dict(params),
                headers=headers,
                timeout=30,
            ).json()
            context = {"snapshot_at": body["timestamp"]}
            for record in parse_rows(table.record_type, body["data"], context).records:
                self.served += 1
                if tuple(str(getattr(record, k)) for k in table.key) not in stored:
                    self.lost += 1


def invariants(soak: Soak) -> list[tuple[str, int]]:
    q = soak.query
    duplicates = partial = 0
    for p in PIPELINES.values():
        key = ", ".join(p.table.key)
        duplicates += q(
            f"SELECT count(*) - count(DISTINCT ({key})) FROM coincap.{p.table.name}"
        )[0][0]
        inserted = q(
            "SELECT coalesce(sum(rows_inserted), 0) FROM coincap.etl_runs"
            " WHERE pipeline = %s AND status = 'succeeded'",
            (p.name,),
        )[0][0]
        stored = q(f"SELECT count(*) FROM coincap.{p.table.name}")[0][0]
        partial += abs(stored - inserted)
    recorded = q("SELECT count(*) FROM coincap.etl_runs")[0][0]
    running = q("SELECT count(*) FROM coincap.etl_runs WHERE status = 'running'")[0][0]
    expected = sum(soak.invocations.values()) - soak.unrecorded
    connections = q(
        "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
        " AND application_name <> 'soak-checker'"
    )[0][0]
    return [
        ("duplicates", duplicates),
        ("partial loads (rows not from a succeeded run)", partial),
        ("snapshots lost among those served successfully", soak.lost),
        ("runs unaccounted for in etl_runs", abs(expected - recorded) + running),
        ("connections left open", connections),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="scheduled runs")
    parser.add_argument("--seed", type=int, default=2026, help="the faults' seed")
    args = parser.parse_args()
    # A stopped soak (SIGTERM) still stops its cluster and removes its files.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    rng = random.Random(args.seed)  # nosec B311: a repeatable fault schedule
    root = Path(tempfile.mkdtemp(prefix="crypto-etl-soak-", dir="/tmp"))
    root.chmod(0o755)
    password = "soak-" + str(rng.getrandbits(64))
    cluster = LocalWarehouse(
        root / "data", port=free_port(), dbname=DBNAME, user=USER, password=password
    )
    state = cluster.start()
    db = WarehouseSettings(state.host, state.port, DBNAME, USER, Secret(password))
    with WarehouseConnection(db) as warehouse:
        migrate(warehouse)
    soak = Soak(cluster, db)
    rss_start = rss_bytes()
    kinds, weights = zip(*FAULTS.items())
    pipelines = list(PIPELINES)
    started = time.monotonic()
    try:
        for n in range(args.runs):
            soak.sim.tick(rng.randint(1, 40))
            kind = rng.choices(kinds, weights)[0]
            soak.one_run(kind, pipelines[n % len(pipelines)], rng)
            if n % 20 == 19:
                print(f"{n + 1}/{args.runs} runs", file=sys.stderr)
        for pipeline in pipelines:  # the next normal runs catch up
            soak.run("none", pipeline)
        checks = invariants(soak)
        rss_end = rss_bytes()
        loaded = soak.query(
            "SELECT coalesce(sum(rows_inserted), 0) FROM coincap.etl_runs"
        )[0][0]
    finally:
        soak.sim.stop()
        cluster.stop(mode="immediate")
        shutil.rmtree(root, ignore_errors=True)
    total = sum(soak.invocations.values())
    rows = [
        ["scheduled runs (processes)", str(total)],
        ["minutes", f"{(time.monotonic() - started) / 60:.1f}"],
    ]
    for kind in kinds:
        codes = soak.codes.get(kind)
        if codes:
            shown = ", ".join(f"exit {c}: {n}" for c, n in sorted(codes.items()))
            rows.append([f"fault: {kind}", f"{sum(codes.values())} ({shown})"])
    rows += [["rows loaded", str(loaded)], ["rows served", str(soak.served)]]
    rows += [[name, str(value)] for name, value in checks]
    rows += [
        ["memory at start (MiB)", f"{rss_start / MIB:.0f}"],
        ["memory at end (MiB)", f"{rss_end / MIB:.0f}"],
    ]
    print(markdown_table(["measure", "value"], rows))
    failed = [name for name, value in checks if value]
    if failed:
        print(f"soak FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
