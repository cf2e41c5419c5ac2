"""Batch inference on real Spark, Delta and an MLflow registry: the champion resolved to a concrete version, every
customer of the date scored (in the driver for a small date, through MLflow's spark_udf for a large one: the same
scores), and a re-run of one date that leaves the others alone."""

from __future__ import annotations

from datetime import date

import pytest

from jobs.config import load_model_config
from jobs.features.build import FEATURES_TABLE
from jobs.ml import registry
from jobs.serving import batch
from tests.registry_helpers import STRONG, WEAK, register, synthetic_frame

MODEL = "purchase_propensity"
DAYS = (date(1998, 1, 1), date(1998, 1, 2))


@pytest.fixture()
def lake(spark, settings):
    """Gold features for two as-of dates and a registry with a champion (v1) and another version (v2)."""
    import mlflow

    config = load_model_config(MODEL)
    gold = synthetic_frame(1200, 3, DAYS[0]).drop(columns="label")
    gold["as_of_date"] = [DAYS[i % 2] for i in range(len(gold))]
    spark.createDataFrame(gold).write.format("delta").save(settings.model_table_path(config.name, FEATURES_TABLE))
    train = synthetic_frame(3000, 1, date(1997, 3, 1))
    first, second = register(config, train, STRONG), register(config, train, WEAK)
    mlflow.MlflowClient().set_registered_model_alias(config.name, registry.CHAMPION, str(first))
    return settings, config, first, second


def _predictions(spark, settings):
    return spark.read.format("delta").load(settings.model_table_path(MODEL, batch.PREDICTIONS_TABLE))


def _score_sums(spark, settings) -> dict:
    return {r[0]: r[1] for r in _predictions(spark, settings).groupBy("as_of_date").agg({"score": "sum"}).collect()}


def test_scores_every_customer_with_the_resolved_champion_and_rerun_replaces_one_date(spark, lake) -> None:
    from mlflow import MlflowClient

    settings, config, first, second = lake
    for day in DAYS:
        outline = batch.run_inference(spark, settings, config, day, f"run-{day}")
        assert outline["rows"] == 600 and outline["version"] == first and outline["uri"].endswith(f"/{first}")
    before = _score_sums(spark, settings)
    frame = _predictions(spark, settings)
    assert frame.count() == 1200 and frame.select("customer_id", "as_of_date").distinct().count() == 1200
    assert frame.where("score < 0 OR score > 1 OR score IS NULL").count() == 0
    assert {r.model_version for r in frame.select("model_version").distinct().collect()} == {first}

    # The champion changes; re-running the first date alone replaces only that date.
    MlflowClient().set_registered_model_alias(config.name, registry.CHAMPION, str(second))
    batch.run_inference(spark, settings, config, DAYS[0], "rerun")
    frame = _predictions(spark, settings)
    assert frame.count() == 1200, "a re-run replaces, never duplicates"
    versions = {
        (r.as_of_date, r.model_version, r.run_id)
        for r in frame.select("as_of_date", "model_version", "run_id").distinct().collect()
    }
    assert versions == {(DAYS[0], second, "rerun"), (DAYS[1], first, f"run-{DAYS[1]}")}
    after = _score_sums(spark, settings)
    assert after[DAYS[1]] == pytest.approx(before[DAYS[1]], rel=1e-12), "the other date's scores are untouched"
    assert after[DAYS[0]] != before[DAYS[0]]


def test_no_champion_or_no_features_is_a_clear_error(spark, lake) -> None:
    from mlflow import MlflowClient

    settings, config, _, _ = lake
    with pytest.raises(ValueError, match="no gold features for purchase_propensity as of 1999-01-01"):
        batch.run_inference(spark, settings, config, date(1999, 1, 1), "r")
    MlflowClient().delete_registered_model_alias(config.name, registry.CHAMPION)
    with pytest.raises(registry.NoChampionError, match="has no @champion"):
        batch.run_inference(spark, settings, config, DAYS[0], "r")


def test_driver_scoring_of_a_small_date_gives_spark_udfs_scores(spark, lake) -> None:
    from pyspark.sql import functions as F

    settings, config, first, _ = lake
    uri = f"models:/{config.name}/{first}"
    columns = batch.model_columns(uri, config)
    gold = (
        spark.read.format("delta")
        .load(settings.model_table_path(config.name, FEATURES_TABLE))
        .where(F.col("as_of_date") == DAYS[0])
    )
    frame = gold.select("customer_id", "as_of_date", *columns)

    def plan(scored) -> str:
        return scored._jdf.queryExecution().optimizedPlan().toString()

    # The date has 600 rows: a limit of 600 scores them in the driver, 599 or 0 on the executors (a Python UDF).
    assert "EvalPython" in plan(batch.score(frame, uri, columns, driver_max_rows=599))
    udf, driver = batch.score(frame, uri, columns, driver_max_rows=0), batch.score(frame, uri, columns, 600)
    assert "EvalPython" in plan(udf) and "EvalPython" not in plan(driver)
    on_executors, in_driver = udf.toPandas(), driver.toPandas()
    merged = on_executors.merge(in_driver, on=["customer_id", "as_of_date"], suffixes=("_udf", "_driver"))
    assert len(merged) == len(on_executors) == len(in_driver) == 600
    assert list(in_driver.columns) == [*frame.columns, "score"]
    assert (merged["score_udf"] - merged["score_driver"]).abs().max() < 1e-9
    assert merged["score_driver"].between(0, 1).all() and merged["score_driver"].nunique() > 100


def test_spark_udf_scores_through_a_spark_connect_client_equal_the_drivers(spark, lake, connect_url) -> None:
    """A connect-mode scoring task is a thin client: MLflow's spark_udf then runs on the Connect server's Python
    workers (a client process here, as the task's is); its scores are the driver's copy of the model's."""
    import json
    import os
    import subprocess
    import sys
    import textwrap

    from pyspark.sql import functions as F

    settings, config, first, _ = lake
    uri = f"models:/{config.name}/{first}"
    columns = batch.model_columns(uri, config)
    path = settings.model_table_path(config.name, FEATURES_TABLE)
    client = textwrap.dedent(
        f"""
        import json
        from jobs.serving import batch
        from jobs.spark import get_spark, is_connect
        spark = get_spark("udf-over-connect")
        assert is_connect(spark)
        frame = spark.read.format("delta").load({path!r}).where("as_of_date = DATE'{DAYS[0]}'")
        scored = batch.score(frame.select("customer_id", *{columns!r}), {uri!r}, {columns!r}, driver_max_rows=0)
        print(json.dumps({{r["customer_id"]: r["score"] for r in scored.collect()}}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", client],
        env={**os.environ, "MLP_SPARK_REMOTE": connect_url},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    over_connect = {int(k): v for k, v in json.loads(done.stdout.strip().splitlines()[-1]).items()}
    gold = spark.read.format("delta").load(path).where(F.col("as_of_date") == DAYS[0])
    in_driver = batch.score(gold.select("customer_id", *columns), uri, columns, driver_max_rows=10_000).toPandas()
    assert len(over_connect) == len(in_driver) == 600
    for customer, score in zip(in_driver["customer_id"], in_driver["score"], strict=True):
        assert over_connect[int(customer)] == pytest.approx(score, abs=1e-9)
