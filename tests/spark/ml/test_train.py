"""Training sets pinned to Delta versions, both model families trained and registered in MLflow, and the checks
that a training run really happened."""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml

from jobs.config import load_model_config
from jobs.features import build, labels
from jobs.lake import clean, ingest
from jobs.ml import registry, train, trainset
from jobs.sources import generate as gen

START = date(1997, 1, 1)
DAYS = 130


@pytest.fixture(scope="module")
def small_config(tmp_path_factory):
    """The reference model with a 30-day horizon, short splits and quick training, for a 130-day lake."""
    raw = yaml.safe_load((Path(__file__).resolve().parents[3] / "include/models/purchase_propensity.yaml").read_text())
    raw["name"] = "propensity_small"
    raw["label"]["horizon_days"] = 30
    raw["training"].update(
        sample_every_days=3,
        validation_days=15,
        holdout_days=15,
        xgboost={"n_estimators": 40, "max_depth": 3, "learning_rate": 0.3, "early_stopping_rounds": 10},
        pytorch={
            "hidden": [16],
            "dropout": 0.0,
            "learning_rate": 0.01,
            "batch_size": 256,
            "max_epochs": 3,
            "patience": 2,
        },
    )
    path = tmp_path_factory.mktemp("models") / "propensity_small.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_model_config(path)


@pytest.fixture(scope="module")
def lake(spark, small_config, module_settings):
    """Generator data through ingest, clean, features and labels, once for the module; returns its settings."""
    settings = module_settings
    gen.generate(
        gen.GeneratorConfig(out=settings.landing_root, rows=12_000, customers=600, start=START, days=DAYS, seed=5)
    )
    end = START + timedelta(days=DAYS - 1)
    ingest.ingest(spark, settings, START, end, "t")
    clean.clean(spark, settings, START, end, "t")
    build.build_features(spark, settings, small_config, START, end, "t")
    labels.build_labels(spark, settings, small_config, START, end, "t")
    return settings


def test_same_pinned_versions_give_the_same_rows_and_checksum(spark, lake, small_config) -> None:
    versions = trainset.pin_versions(lake, small_config.name)
    first = trainset.build_training_set(spark, lake, small_config, None, None, versions["features"], versions["labels"])
    assert all(first["rows"][name] > 0 for name in trainset.SPLITS)
    assert first["positives"]["train"] > 0

    # Rebuild from scratch at the same versions after the tables moved on: identical rows and checksum.
    build.build_features(spark, lake, small_config, START, START + timedelta(days=DAYS - 1), "moved-on")
    assert trainset.pin_versions(lake, small_config.name)["features"] > versions["features"]
    shutil.rmtree(first["path"])
    again = trainset.build_training_set(spark, lake, small_config, None, None, versions["features"], versions["labels"])
    assert (again["key"], again["rows"], again["checksum"]) == (first["key"], first["rows"], first["checksum"])

    # No label of a split can see the next split: as-of dates respect the bounds and the gap.
    _, sets = trainset.load_training_set(first["path"])
    split = first["split"]
    for name in trainset.SPLITS:
        dates = sets[name].as_of_date
        assert str(dates.min()) >= split[name][0] and str(dates.max()) <= split[name][1]
    assert (date.fromisoformat(split["validation"][0]) - date.fromisoformat(split["train"][1])).days > 30


def test_training_registers_the_better_family_as_challenger(spark, lake, small_config) -> None:
    from mlflow import MlflowClient

    versions = trainset.pin_versions(lake, small_config.name)
    trainset.build_training_set(spark, lake, small_config, None, None, versions["features"], versions["labels"])
    summary = train.run_training(lake, small_config, versions, ("xgboost", "pytorch"), "dag-run-1", "test")

    assert set(summary["families"]) == {"xgboost", "pytorch"}
    metric = small_config.training.primary_metric
    other = ({"xgboost", "pytorch"} - {summary["winner"]}).pop()
    assert (
        summary["families"][summary["winner"]]["validation"][metric] >= summary["families"][other]["validation"][metric]
    )
    client = MlflowClient()
    version = client.get_model_version_by_alias(small_config.name, registry.CHALLENGER)
    assert int(version.version) == summary["version"]
    assert version.tags["family"] == summary["winner"]
    checked = train.verify_training_run(lake, small_config.name, "dag-run-1")
    assert checked["version"] == summary["version"] and 0.5 < checked["holdout_roc_auc"] <= 1.0
    artifacts = {a.path for a in client.list_artifacts(summary["run_id"])}
    assert {"comparison.json", "trainset_manifest.json"} <= artifacts

    # The registered pyfunc scores a DataFrame of features into probabilities.
    import mlflow

    _, sets = trainset.load_training_set(
        trainset.set_path(lake, small_config, trainset.set_key(small_config, versions, None, None))
    )
    scores = mlflow.pyfunc.load_model(f"models:/{small_config.name}@{registry.CHALLENGER}").predict(
        sets["holdout"].head(50)
    )
    assert len(scores) == 50 and scores.between(0, 1).all()


def test_verification_fails_without_a_run_or_with_a_crashed_one(lake, small_config) -> None:
    import mlflow

    mlflow.set_tracking_uri(lake.mlflow_tracking_uri)
    with pytest.raises(train.TrainingVerificationError, match="no MLflow training run"):
        train.verify_training_run(lake, small_config.name, "never-ran")
    experiment = mlflow.set_experiment(small_config.name)
    run = mlflow.start_run(
        experiment_id=experiment.experiment_id, tags={train.TAG_ROLE: "parent", train.TAG_DAG_RUN: "crashed"}
    )
    mlflow.end_run(status="KILLED")
    with pytest.raises(train.TrainingVerificationError, match="KILLED, not FINISHED"):
        train.verify_training_run(lake, small_config.name, "crashed")
    assert run.info.run_id
