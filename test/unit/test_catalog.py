"""The table catalog is the one declaration the other layers agree with."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from crypto_etl.pipelines.catalog import ALL_PIPELINES, PIPELINES
from crypto_etl.records.rows import column_names

SOURCES = Path(__file__).parents[2] / "transform" / "models" / "sources.yml"
MIGRATIONS = Path(__file__).parents[2] / "src" / "crypto_etl" / "warehouse" / "sql"


def _limit(spec: dict[str, Any]) -> timedelta:
    return timedelta(**{spec["period"] + "s": spec["count"]})


def test_dbt_source_freshness_matches_the_catalog():
    source = yaml.safe_load(SOURCES.read_text())["sources"][0]
    default = source["config"]["freshness"]
    tables = {t["name"]: t for t in source["tables"]}
    for pipeline in ALL_PIPELINES.values():
        table = tables[pipeline.table.name]
        freshness = table.get("config", {}).get("freshness", default)
        assert _limit(freshness["warn_after"]) == pipeline.freshness.warn_after
        assert _limit(freshness["error_after"]) == pipeline.freshness.error_after


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
