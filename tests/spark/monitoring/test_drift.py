"""The nightly drift monitor on real Spark, Delta and MLflow: the champion's training rows as reference, gold features
and predictions as current; stable nights stay quiet, a persistent drift opens one episode (one alert, a retrain
request), a re-run replaces its night without a second alert, and matured labels measure performance."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from jobs.config import load_model_config
from jobs.features.build import FEATURES_TABLE
from jobs.features.labels import LABELS_TABLE
from jobs.ml import registry
from jobs.monitoring import drift
from jobs.serving import batch
from tests.registry_helpers import STRONG, register, synthetic_frame, write_training_set

FIRST = date(1998, 3, 1)


def _night(day: date, seed: int, drifted: bool):
    frame = synthetic_frame(2000, seed, day)
    frame["as_of_date"] = day
    if drifted:  # the cohort ages: nobody bought recently, and their history lengthens
        frame["recency_days"] = frame["recency_days"] + 250
        frame["tenure_days"] = frame["tenure_days"] + 400
    return frame


@pytest.fixture()
def monitored(spark, settings):
    """A champion trained on synthetic rows, and gold features + labels for four nights (the last two drifted)."""
    import mlflow

    base = load_model_config("purchase_propensity")
    # Labels mature after one day here, so each night also measures the previous night's scores.
    config = base.model_copy(
        update={
            "label": base.label.model_copy(update={"horizon_days": 1}),
            "drift": base.drift.model_copy(update={"persistence_k": 2, "persistence_n": 3, "cooldown_days": 30}),
        }
    )
    train = synthetic_frame(8000, 1, date(1997, 3, 1))
    write_training_set(settings, config, train, synthetic_frame(3000, 2, date(1997, 9, 1)))
    version = register(config, train, STRONG)
    client = mlflow.MlflowClient()
    client.set_registered_model_alias(config.name, registry.CHAMPION, str(version))
    client.set_model_version_tag(config.name, str(version), "holdout_roc_auc", "0.85000")  # as training tags it
    nights = [_night(FIRST + timedelta(days=i), 10 + i, drifted=i >= 2) for i in range(4)]
    import pandas as pd

    gold = pd.concat(nights, ignore_index=True)
    spark.createDataFrame(gold.drop(columns="label")).write.format("delta").save(
        settings.model_table_path(config.name, FEATURES_TABLE)
    )
    spark.createDataFrame(gold[["customer_id", "as_of_date", "label"]]).write.format("delta").save(
        settings.model_table_path(config.name, LABELS_TABLE)
    )
    return settings, config, version


def _run(spark, settings, config, day: date, run_id: str) -> dict:
    batch.run_inference(spark, settings, config, day, run_id)
    return drift.monitor(spark, settings, config, day, run_id)


def test_stable_nights_stay_quiet_and_persistent_drift_opens_one_episode(spark, monitored) -> None:
    settings, config, version = monitored
    days = [FIRST + timedelta(days=i) for i in range(4)]
    summaries = [_run(spark, settings, config, d, f"run-{d}") for d in days]

    quiet = summaries[0]
    assert not quiet["decision"]["alert"] and quiet["drifted_share"] < config.drift.max_drifted_share
    assert {c["column"] for c in quiet["columns"]} == {*STRONG, "score"}
    assert all(c["method"] == "wasserstein" for c in quiet["columns"]), "Evidently's test for > 1000 numeric rows"
    assert quiet["performance"] is None, "the first night has no matured scores yet"

    assert not summaries[2]["decision"]["alert"], "one drifted window of k=2 is not an episode yet"
    assert "below persistence 2" in summaries[2]["decision"]["reason"]
    episode = summaries[3]
    assert episode["decision"]["alert"] and episode["decision"]["retrain"]
    assert episode["drifted_share"] >= 0.5
    assert episode["retrain_reason"].startswith("drift episode purchase_propensity/")
    drifted = {c["column"] for c in episode["columns"] if c["drifted"]}
    assert {"recency_days", "tenure_days"} <= drifted

    # Labels matured for the previous night: performance against the champion's metric at promotion.
    perf = episode["performance"]
    assert perf["as_of_date"] == str(days[2]) and perf["rows"] == 2000 and perf["at_promotion"] is not None
    assert 0.5 < perf["metrics"]["roc_auc"] <= 1.0
    assert perf["at_promotion"] == 0.85 and perf["drop"] == pytest.approx(0.85 - perf["metrics"]["roc_auc"])

    read = lambda table: spark.read.format("delta").load(settings.model_table_path(config.name, table))  # noqa: E731
    assert read(drift.METRICS_TABLE).count() == 4 * (len(STRONG) + 1)
    # The champion's reference is profiled and sampled for the report once, not every night.
    import mlflow

    run = mlflow.MlflowClient().get_model_version(config.name, str(version)).run_id
    cached = sorted(p.name for p in (settings.home / "cache" / "drift" / config.name).glob(f"*_{run}.*"))
    assert [name.rsplit(".", 1)[-1] for name in cached] == ["json", "parquet"], cached
    windows = {r.as_of_date: r for r in read(drift.WINDOWS_TABLE).collect()}
    assert sorted(windows) == days and windows[days[3]].model_version == version
    (alert,) = read(drift.ALERTS_TABLE).collect()
    assert alert.as_of_date == days[3] and alert.retrain

    report = Path(episode["report"].removeprefix("file://"))
    assert report.exists() and (report.parent / "evidently.html").stat().st_size > 10_000
    assert "recency_days" in report.read_text()

    # Re-running (or retrying) the alerting night replaces its rows and reproduces the same decision: the same
    # episode, which the outbox mails once and the retraining trigger starts once.
    again = _run(spark, settings, config, days[3], "rerun")
    assert again["decision"] == episode["decision"]
    assert read(drift.METRICS_TABLE).count() == 4 * (len(STRONG) + 1)
    assert read(drift.ALERTS_TABLE).count() == 1
    assert read(drift.WINDOWS_TABLE).where(f"as_of_date = '{days[3]}'").first().run_id == "rerun"


def test_the_night_is_monitored_against_the_version_that_scored_it(spark, monitored) -> None:
    import mlflow

    settings, config, version = monitored
    batch.run_inference(spark, settings, config, FIRST, "score")
    # A promotion lands between the night's score and monitor_drift tasks.
    newer = register(config, synthetic_frame(8000, 3, date(1997, 3, 1)), STRONG)
    mlflow.MlflowClient().set_registered_model_alias(config.name, registry.CHAMPION, str(newer))
    summary = drift.monitor(spark, settings, config, FIRST, "monitor")
    assert summary["model_version"] == version != newer
    assert drift.scored_version(spark, settings, config, FIRST) == version
    with pytest.raises(ValueError, match="run inference"):
        drift.scored_version(spark, settings, config, FIRST + timedelta(days=1))
