"""Shared by the promotion tests: a synthetic training set whose holdout is the evaluation set, and real XGBoost
models registered in MLflow with the challenger alias."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

from jobs.config import feature_columns, load_model_config
from jobs.ml import registry, trainset
from jobs.ml.pyfunc import pip_requirements
from jobs.settings import load

KEY = "ts-test-evaluation"
WEAK = ["tenure_days"]  # knows a little: calibrated, but a low AUC
NOISE = ["mean_gap_days"]  # unrelated to the label in this data
STRONG = ["recency_days", "tenure_days", "txn_count_90d", "amount_sum_all"]


def write_training_set(settings, config, train, holdout) -> str:
    """A training set ``KEY`` in the layout jobs.ml.trainset writes (Parquet by split + manifest)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = trainset.set_path(settings, config, KEY)
    rows = {}
    for split in trainset.SPLITS:
        frame = holdout if split == "holdout" else train
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), f"{_mkdir(path, split)}/part-0.parquet")
        rows[split] = len(frame)
    manifest = {
        "key": KEY,
        "rows": rows,
        "checksum": "123",
        "versions": {"features": 7, "labels": 5},
        "split": {"holdout": ["1997-09-01", "1997-10-20"]},
    }
    (_mkdir(path, trainset.MANIFEST) / "part-00000.txt").write_text(json.dumps(manifest))
    return path


def synthetic_frame(rows: int, seed: int, start: date):
    """Synthetic gold features with a label that recency and recent purchases really predict."""
    import numpy as np
    import pandas as pd

    config = load_model_config("purchase_propensity")
    rng = np.random.default_rng(seed)
    data = {c: rng.gamma(2.0, 20.0, rows) for c in feature_columns(config)}
    data["recency_days"] = rng.integers(0, 400, rows).astype(float)
    data["tenure_days"] = data["recency_days"] + rng.integers(0, 500, rows)
    data["txn_count_90d"] = rng.poisson(1.0, rows).astype(float)
    data["amount_sum_all"] = rng.gamma(1.5, 80.0, rows)
    logit = -0.5 - data["recency_days"] / 80.0 + 0.9 * data["txn_count_90d"] + 0.002 * data["amount_sum_all"]
    frame = pd.DataFrame(data)
    frame["label"] = (rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))).astype("int32")
    frame.insert(0, "customer_id", np.arange(rows).astype("int64"))
    frame.insert(1, "as_of_date", [start + timedelta(days=int(d)) for d in rng.integers(0, 50, rows)])
    return frame


def _mkdir(path: str, name: str):

    folder = Path(path) / (name if name == trainset.MANIFEST else f"split={name}")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def register(config, frame, columns: list[str], rounds: int = 60) -> int:
    """Train XGBoost on ``columns`` of ``frame``, register it with the challenger alias; return the version."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.models import infer_signature

    from jobs.ml.families import xgboost

    small = config.model_copy(
        update={
            "training": config.training.model_copy(
                update={"xgboost": config.training.xgboost.model_copy(update={"n_estimators": rounds})}
            )
        }
    )
    model, _ = xgboost.train(frame, frame, columns, small, "cpu")
    # The platform's own experiment (its artifacts under the test's artifact root, not ./mlruns of the cwd).
    mlflow.set_experiment(experiment_id=registry.experiment_id(load(), config.name))
    with mlflow.start_run():
        example = frame[columns].head(5)
        logged = mlflow.pyfunc.log_model(
            name="model",
            python_model=model,
            signature=infer_signature(example, model.predict(None, example)),
            pip_requirements=pip_requirements(model),
        )
    version = int(mlflow.register_model(logged.model_uri, config.name).version)
    client = MlflowClient()
    client.set_model_version_tag(config.name, str(version), "trainset", KEY)
    client.set_model_version_tag(config.name, str(version), "family", "xgboost")
    client.set_registered_model_alias(config.name, registry.CHALLENGER, str(version))
    return version
