"""DuckDB's gold features equal Spark's on generator data: backfills, nights, and a checker that notices changes."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench import duckdb_features as ddf
from bench import harness
from jobs.config import ModelConfig
from jobs.features import build
from jobs.sources import cdnow

pytestmark = pytest.mark.slow

# Windows shorter than the data, so purchases leave every window and every trend's denominator can hit zero.
CONFIG = ModelConfig.model_validate(
    {
        "name": "duckdb_peer",
        "source": {"first_date": "1997-01-01"},
        "features": {"windows_days": [3, 7, 30], "trend_pairs": [[3, 7], [7, 30]]},
        "label": {"horizon_days": 5},
    }
)
DAYS = 60
START = cdnow.FIRST_DAY
END = START + timedelta(days=DAYS - 1)


@pytest.fixture(scope="module")
def lake(spark, module_settings):
    """~20k generator transactions through ingest and clean, and Spark's backfill over every date (once)."""
    from pyspark.sql import functions as F

    settings = module_settings
    harness.synthetic_silver(spark, settings, 20_000, 500, {}, days=DAYS)
    build.build_features(spark, settings, CONFIG, START, END, "spark-backfill")
    gold = settings.model_table_path(CONFIG.name, build.FEATURES_TABLE)

    def gold_files(first, last):
        return harness.delta_files(spark, gold, F.col("as_of_date").between(F.lit(first), F.lit(last)))

    return SimpleNamespace(
        settings=settings,
        gold=gold,
        silver=harness.delta_files(spark, settings.table_path(*build.SILVER_TABLE)),
        gold_files=gold_files,
        backfill=gold_files(START, END),
    )


def _duckdb(query: str, out: Path) -> list[str]:
    import duckdb

    ddf.write(duckdb.connect(), query, out)
    return ddf.parquet_files(out)


def _check(spark_files: list[str], duckdb_files: list[str]) -> dict:
    import duckdb

    return ddf.compare(duckdb.connect(), spark_files, duckdb_files, CONFIG)


def test_backfill_equals_spark(lake, tmp_path) -> None:
    ours = _duckdb(ddf.backfill_sql(lake.silver, START, END, CONFIG, "duckdb"), tmp_path / "out")
    check = _check(lake.backfill, ours)
    assert check["equal"], check
    assert check["rows_spark"] == check["rows_duckdb"] > 15_000
    assert check["float_bit_differences"] == {}


def test_backfill_nulls_and_window_exits_are_exercised(lake, tmp_path) -> None:
    import duckdb

    ours = _duckdb(ddf.backfill_sql(lake.silver, START, END, CONFIG, "duckdb"), tmp_path / "out")
    counts = (
        duckdb.connect()
        .execute(
            "SELECT count(*) FILTER (WHERE last_gap_days IS NULL), count(*) FILTER (WHERE mean_gap_days IS NULL),"
            " count(*) FILTER (WHERE trend_7_30 IS NULL), count(*) FILTER (WHERE txn_count_3d < txn_count_all)"
            f" FROM read_parquet({ours})"
        )
        .fetchone()
    )
    assert all(counts), counts


def test_backfill_of_a_later_range_equals_spark(lake, tmp_path) -> None:
    first, last = START + timedelta(days=20), END - timedelta(days=5)
    ours = _duckdb(ddf.backfill_sql(lake.silver, first, last, CONFIG, "duckdb"), tmp_path / "out")
    check = _check(lake.gold_files(first, last), ours)
    assert check["equal"], check


def test_night_equals_the_backfill_mid_history(lake, tmp_path) -> None:
    day = START + timedelta(days=40)
    ours = _duckdb(ddf.night_sql(lake.silver, day, CONFIG, "duckdb"), tmp_path / "out")
    check = _check(lake.gold_files(day, day), ours)
    assert check["equal"], check
    assert check["rows_spark"] > 300


def test_night_equals_spark_increment(spark, lake, tmp_path) -> None:
    summary = build.build_features(spark, lake.settings, CONFIG, END, END, "spark-night")
    assert summary["mode"] == "increment"
    ours = _duckdb(ddf.night_sql(lake.silver, END, CONFIG, "duckdb"), tmp_path / "out")
    check = _check(lake.gold_files(END, END), ours)
    assert check["equal"], check
    assert check["float_bit_differences"] == {}


def test_compare_reports_changed_and_missing_rows(lake, tmp_path) -> None:
    import duckdb

    day = START + timedelta(days=40)
    ours = _duckdb(ddf.night_sql(lake.silver, day, CONFIG, "duckdb"), tmp_path / "out")
    victim = duckdb.connect().execute(f"SELECT min(customer_id), max(customer_id) FROM read_parquet({ours})").fetchone()
    tampered = f"""
        SELECT * REPLACE (
            CASE WHEN customer_id = {victim[0]} THEN recency_days + 1 ELSE recency_days END AS recency_days,
            avg_basket_amount * (1 + 1e-12) AS avg_basket_amount)
        FROM read_parquet({ours}, hive_partitioning = true) WHERE customer_id <> {victim[1]}"""
    check = _check(lake.gold_files(day, day), _duckdb(tampered, tmp_path / "tampered"))
    assert not check["equal"]
    assert check["mismatching_columns"] == {"recency_days": 1}
    assert check["examples"]["recency_days"]["customer_id"] == victim[0]
    assert check["only_in_spark"] == 1 and check["only_in_duckdb"] == 0
    assert "avg_basket_amount" in check["float_bit_differences"]
