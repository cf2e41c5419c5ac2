"""Two models on one source never touch each other's tables: each writes only under ``<lake>/models/<model>/``, and
a second model's features and labels (other windows, another horizon) leave the first one's rows bit for bit."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from jobs.config import ModelConfig
from jobs.features import build, labels

START = date(2024, 1, 1)
DAYS = 40
SILVER_SCHEMA = (
    "transaction_id string, customer_id long, order_date date, quantity int, amount double, "
    "landing_date date, source_file string, ingest_run_id string"
)


def _config(name: str, windows: list[int], horizon: int) -> ModelConfig:
    return ModelConfig.model_validate(
        {
            "name": name,
            "source": {"first_date": START.isoformat()},
            "features": {"windows_days": windows},
            "label": {"horizon_days": horizon},
            "promotion": {"slices": {}},
        }
    )


def _silver(spark, settings) -> None:
    rows = []
    for i in range(600):
        day = START + timedelta(days=(i * 7) % DAYS)
        rows.append((f"t{i:05d}", i % 45 + 1, day, i % 3 + 1, 5.0 + i % 17, day, f"f-{day}", "ingest"))
    frame = spark.createDataFrame(rows, SILVER_SCHEMA)
    frame.write.format("delta").mode("overwrite").partitionBy("landing_date").save(
        settings.table_path(*build.SILVER_TABLE)
    )


def _checksum(spark, path: str) -> tuple[int, int]:
    from pyspark.sql import functions as F

    frame = spark.read.format("delta").load(path)
    row = frame.agg(F.count(F.lit(1)), F.sum(F.xxhash64(*frame.columns).cast("decimal(38,0)"))).first()
    return int(row[0]), int(row[1] or 0)


def _tables(settings, config) -> dict[str, str]:
    return {t: settings.model_table_path(config.name, t) for t in (build.FEATURES_TABLE, labels.LABELS_TABLE)}


def test_a_second_model_writes_only_its_own_folder_and_leaves_the_first_unchanged(spark, settings) -> None:
    first, second = _config("weekly_buyers", [7, 28], 7), _config("monthly_buyers", [14], 21)
    end = START + timedelta(days=DAYS - 1)
    _silver(spark, settings)
    build.build_features(spark, settings, first, START, end, "first-1")
    labels.build_labels(spark, settings, first, START, end, "first-1")
    before = {name: _checksum(spark, path) for name, path in _tables(settings, first).items()}

    build.build_features(spark, settings, second, START, end, "second-1")
    labels.build_labels(spark, settings, second, START, end, "second-1")
    # A re-run of the second model's window: still nothing of the first model's moves.
    build.build_features(spark, settings, second, end, end, "second-2")

    assert {name: _checksum(spark, path) for name, path in _tables(settings, first).items()} == before
    assert all(rows > 0 for rows, _ in before.values())
    lake = Path(settings.lake_root)
    assert sorted(p.name for p in (lake / "models").iterdir()) == ["monthly_buyers", "weekly_buyers"]
    assert not (lake / "gold").exists(), "no model table outside its model's folder"
    mine = spark.read.format("delta").load(settings.model_table_path(second.name, build.FEATURES_TABLE))
    assert "txn_count_14d" in mine.columns and "txn_count_7d" not in mine.columns
    horizon = spark.read.format("delta").load(settings.model_table_path(second.name, labels.LABELS_TABLE))
    assert horizon.agg({"as_of_date": "max"}).first()[0] == end - timedelta(days=second.label.horizon_days)
