"""The table catalog is the one declaration the other layers agree with."""

from __future__ import annotations

from pathlib import Path

import yaml

from crypto_etl.pipelines.catalog import ALL_PIPELINES, PIPELINES
from crypto_etl.pipelines.freshness import dbt_vars, limits_in_force
from crypto_etl.records.rows import column_names

SOURCES = Path(__file__).parents[2] / "transform" / "models" / "sources.yml"
PROJECT = Path(__file__).parents[2] / "transform" / "dbt_project.yml"
MIGRATIONS = Path(__file__).parents[2] / "src" / "crypto_etl" / "warehouse" / "sql"


def test_dbt_freshness_defaults_are_the_catalogs_limits():
    # sources.yml reads each limit from a var; dbt_project.yml's defaults
    # are the catalog's, and `crypto-etl transform` passes the limits of the
    # schedule in force instead.
    project = yaml.safe_load(PROJECT.read_text())["vars"]
    wanted = dbt_vars(limits_in_force(None))
    assert {k: v for k, v in project.items() if k in wanted} == wanted
    source = yaml.safe_load(SOURCES.read_text())["sources"][0]
    tables = {t["name"]: t for t in source["tables"]}
    for pipeline in ALL_PIPELINES.values():
        limits = tables[pipeline.table.name]["config"]["freshness"]
        name = pipeline.table.name
        assert limits["warn_after"]["count"] == f"{{{{ var('{name}_warn_minutes') }}}}"
        assert (
            limits["error_after"]["count"] == f"{{{{ var('{name}_error_minutes') }}}}"
        )


def test_every_key_and_freshness_column_is_a_column_of_its_record():
    for pipeline in ALL_PIPELINES.values():
        columns = column_names(pipeline.table.record_type)
        assert set(pipeline.table.key) <= set(columns), pipeline.name
        assert pipeline.table.newest in columns, pipeline.name


def test_run_all_runs_the_snapshot_pipelines_and_not_the_backfill():
    assert list(PIPELINES) == ["exchanges", "assets", "markets", "rates"]
    assert set(ALL_PIPELINES) == {*PIPELINES, "backfill"}


def test_every_catalog_table_is_created_by_a_migration():
    schema = " ".join(p.read_text() for p in MIGRATIONS.glob("*.sql"))
    for pipeline in ALL_PIPELINES.values():
        assert f"CREATE TABLE coincap.{pipeline.table.name} " in schema
