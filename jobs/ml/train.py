"""Training: XGBoost and a PyTorch tabular network on a pinned training set, tracked and registered in MLflow.

``python -m jobs.ml.train --model M --features-version F --labels-version L [--family all|xgboost|pytorch]
--dag-run-id ID --reason TEXT`` is the single entry point: the Kubernetes pod and the local backend run exactly
this command. It reads the training set that ``jobs.ml.trainset`` built for those versions (Parquet, no Spark),
trains each family in a nested MLflow run (params, validation and holdout metrics, calibration and ROC/PR plots,
feature importance, the model as a pyfunc with signature and input example), then registers the family that is
better on validation as a new version of the model and points the ``challenger`` alias at it.

Runs on CUDA when a GPU is visible (XGBoost ``device="cuda"``, PyTorch with AMP), otherwise on CPU; seeds are
fixed either way. ``verify_training_run`` is what the DAG runs afterwards: it fails unless the run finished,
logged the model and the metrics, and registered the version.
"""

from __future__ import annotations

import json
import logging
import os
import random
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow.pyfunc

from jobs import cli
from jobs.config import ModelConfig, load_model_config
from jobs.ml import trainset
from jobs.ml.metrics import METRICS, better, evaluate
from jobs.ml.registry import CHALLENGER, experiment_id
from jobs.settings import Settings, load

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

log = logging.getLogger(__name__)

FAMILIES = ("xgboost", "pytorch")
TAG_ROLE, TAG_DAG_RUN, TAG_MODEL = "mlp.role", "mlp.dag_run_id", "mlp.model"
TAG_VERSION, TAG_WINNER = "mlp.registered_version", "mlp.winner"


class TrainingVerificationError(RuntimeError):
    """The training command ended but MLflow does not hold a complete, registered run for it."""


def device() -> str:
    """``cuda`` when PyTorch sees a GPU, else ``cpu``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def seed_everything(seed: int) -> None:
    """Fix Python, NumPy and PyTorch seeds (and deterministic cuDNN)."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


class PropensityModel(mlflow.pyfunc.PythonModel):
    """The scoring interface of every family: a DataFrame of feature columns in, P(label = 1) out."""

    def __init__(self, family: str, columns: list[str], payload: dict[str, Any]) -> None:
        self.family = family
        self.columns = columns
        self.payload = payload
        self._model: Any = None

    def _load(self) -> Any:
        if self._model is None:
            if self.family == "xgboost":
                import xgboost as xgb

                booster = xgb.Booster()
                booster.load_model(bytearray(self.payload["booster"]))
                booster.set_param({"device": "cpu"})
                self._model = booster
            else:
                self._model = _build_net(len(self.columns), self.payload["hidden"], self.payload["dropout"])
                self._model.load_state_dict(self.payload["state_dict"])
                self._model.eval()
        return self._model

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Probabilities for the rows of ``frame``."""
        import numpy as np

        x = frame[self.columns].to_numpy(dtype=np.float32, na_value=np.nan)
        model = self._load()
        if self.family == "xgboost":
            import xgboost as xgb

            return model.predict(xgb.DMatrix(x, missing=np.nan))
        import torch

        z = _normalise(x, np.asarray(self.payload["mean"]), np.asarray(self.payload["std"]))
        with torch.no_grad():
            return torch.sigmoid(model(torch.from_numpy(z))).squeeze(1).numpy()

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> pd.Series:
        import pandas as pd

        return pd.Series(self.predict_proba(model_input), index=model_input.index, name="score")


def _normalise(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    import numpy as np

    z = (x - mean) / std
    return np.nan_to_num(z, nan=0.0).astype(np.float32)  # a missing value sits at the training mean


def _build_net(inputs: int, hidden: tuple[int, ...] | list[int], dropout: float) -> Any:
    from torch import nn

    layers: list[Any] = []
    width = inputs
    for units in hidden:
        layers += [nn.Linear(width, units), nn.BatchNorm1d(units), nn.ReLU(), nn.Dropout(dropout)]
        width = units
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


def train_xgboost(
    train: pd.DataFrame, validation: pd.DataFrame, columns: list[str], config: ModelConfig, on: str
) -> tuple[PropensityModel, dict[str, Any]]:
    """Hist gradient boosting with early stopping on validation log loss."""
    import numpy as np
    import xgboost as xgb

    c = config.training.xgboost
    params = {
        "objective": "binary:logistic",
        "eval_metric": "logloss",
        "tree_method": "hist",
        "device": on,
        "max_depth": c.max_depth,
        "eta": c.learning_rate,
        "subsample": c.subsample,
        "colsample_bytree": c.colsample_bytree,
        "seed": config.training.seed,
    }
    dtrain = xgb.DMatrix(train[columns].to_numpy(np.float32, na_value=np.nan), label=train.label, missing=np.nan)
    dvalid = xgb.DMatrix(
        validation[columns].to_numpy(np.float32, na_value=np.nan), label=validation.label, missing=np.nan
    )
    started = time.perf_counter()
    booster = xgb.train(
        params,
        dtrain,
        num_boost_round=c.n_estimators,
        evals=[(dvalid, "validation")],
        early_stopping_rounds=c.early_stopping_rounds,
        verbose_eval=50,
    )
    seconds = time.perf_counter() - started
    trained_rounds = booster.num_boosted_rounds()  # what the time paid for, early stopping's extra rounds included
    rounds = booster.best_iteration + 1
    booster = booster[:rounds]  # keep the best iteration only
    gain = booster.get_score(importance_type="gain")
    importance = {name: float(gain.get(f"f{i}", 0.0)) for i, name in enumerate(columns)}
    model = PropensityModel("xgboost", columns, {"booster": bytes(booster.save_raw("json"))})
    info = {
        "params": {**params, "num_boost_round": c.n_estimators, "best_rounds": rounds},
        "importance": importance,
        "seconds": seconds,
        "rows_per_second": len(train) * trained_rounds / max(seconds, 1e-9),  # rows x boosting rounds per second
        "epochs_or_rounds": rounds,
    }
    return model, info


def train_pytorch(
    train: pd.DataFrame, validation: pd.DataFrame, columns: list[str], config: ModelConfig, on: str
) -> tuple[PropensityModel, dict[str, Any]]:
    """An MLP with batch norm and dropout; AdamW; early stopping on validation log loss; AMP on CUDA."""
    import numpy as np
    import torch

    c = config.training.pytorch
    x_train = train[columns].to_numpy(np.float32, na_value=np.nan)
    mean = np.nanmean(x_train, axis=0)
    std = np.nanstd(x_train, axis=0)
    mean, std = np.nan_to_num(mean), np.where(np.nan_to_num(std) > 0, np.nan_to_num(std), 1.0)
    z_train = torch.from_numpy(_normalise(x_train, mean, std))
    z_valid = torch.from_numpy(_normalise(validation[columns].to_numpy(np.float32, na_value=np.nan), mean, std))
    y_train = torch.from_numpy(train.label.to_numpy(np.float32)).unsqueeze(1)
    y_valid = torch.from_numpy(validation.label.to_numpy(np.float32)).unsqueeze(1)
    generator = torch.Generator().manual_seed(config.training.seed)
    net = _build_net(len(columns), c.hidden, c.dropout).to(on)
    optimiser = torch.optim.AdamW(net.parameters(), lr=c.learning_rate, weight_decay=c.weight_decay)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    use_amp = on == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    best, best_state, stale, epochs = float("inf"), None, 0, 0
    started = time.perf_counter()
    for epoch in range(c.max_epochs):
        net.train()
        # Batches are gathered by one shuffled index per epoch: a DataLoader collated every batch row by row (a
        # 3-epoch run took 93 s instead of 2.8 s).
        order = torch.randperm(len(z_train), generator=generator)
        for first in range(0, len(order), c.batch_size):
            batch = order[first : first + c.batch_size]
            xb, yb = z_train[batch].to(on, non_blocking=True), y_train[batch].to(on, non_blocking=True)
            optimiser.zero_grad(set_to_none=True)
            with torch.autocast(device_type=on, dtype=torch.float16, enabled=use_amp):
                loss = loss_fn(net(xb), yb)
            scaler.scale(loss).backward()
            scaler.step(optimiser)
            scaler.update()
        net.eval()
        with torch.no_grad():
            valid_loss = float(loss_fn(net(z_valid.to(on)).float(), y_valid.to(on)))
        epochs = epoch + 1
        log.info("pytorch epoch %d: validation log loss %.5f", epochs, valid_loss)
        if valid_loss < best - 1e-5:
            best, stale = valid_loss, 0
            best_state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
        else:
            stale += 1
            if stale >= c.patience:
                break
    seconds = time.perf_counter() - started
    net = net.cpu()
    net.load_state_dict(best_state)
    net.eval()
    payload = {
        "state_dict": best_state,
        "mean": mean.tolist(),
        "std": std.tolist(),
        "hidden": list(c.hidden),
        "dropout": c.dropout,
    }
    model = PropensityModel("pytorch", columns, payload)
    importance = _permutation_importance(model, validation, columns, config.training.seed)
    info = {
        "params": {**c.model_dump(), "device": on, "amp": use_amp, "best_validation_log_loss": best},
        "importance": importance,
        "seconds": seconds,
        "rows_per_second": len(train) * epochs / max(seconds, 1e-9),
        "epochs_or_rounds": epochs,
    }
    return model, info


def _permutation_importance(model: PropensityModel, frame: pd.DataFrame, columns: list[str], seed: int) -> dict:
    """Drop in validation ROC AUC when one column is shuffled (on up to 20k rows)."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    sample = frame.sample(n=min(len(frame), 20_000), random_state=seed)
    base = roc_auc_score(sample.label, model.predict_proba(sample))
    rng = np.random.default_rng(seed)
    out = {}
    for column in columns:
        shuffled = sample.copy()
        shuffled[column] = rng.permutation(shuffled[column].to_numpy())
        out[column] = float(base - roc_auc_score(sample.label, model.predict_proba(shuffled)))
    return out


def _plots(y: np.ndarray, p: np.ndarray, importance: dict[str, float], family: str, out: Path) -> list[Path]:
    """Calibration curve, ROC and PR curves, and feature importance as PNGs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import precision_recall_curve, roc_curve

    paths = []
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    frac, mean = calibration_curve(y, p, n_bins=10, strategy="quantile")
    axes[0].plot(mean, frac, "o-", label=family)
    axes[0].plot([0, 1], [0, 1], "k--", label="perfect")
    axes[0].set(title="calibration (holdout)", xlabel="mean predicted", ylabel="fraction positive")
    fpr, tpr, _ = roc_curve(y, p)
    axes[1].plot(fpr, tpr)
    axes[1].plot([0, 1], [0, 1], "k--")
    axes[1].set(title="ROC (holdout)", xlabel="false positive rate", ylabel="true positive rate")
    precision, recall, _ = precision_recall_curve(y, p)
    axes[2].plot(recall, precision)
    axes[2].set(title="precision-recall (holdout)", xlabel="recall", ylabel="precision")
    for ax in axes[:1]:
        ax.legend()
    fig.tight_layout()
    paths.append(out / f"{family}_curves.png")
    fig.savefig(paths[-1], dpi=90)
    plt.close(fig)

    top = sorted(importance.items(), key=lambda kv: kv[1], reverse=True)[:20]
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.barh([k for k, _ in reversed(top)], [v for _, v in reversed(top)])
    ax.set(title=f"feature importance ({family})")
    fig.tight_layout()
    paths.append(out / f"{family}_importance.png")
    fig.savefig(paths[-1], dpi=90)
    plt.close(fig)
    return paths


def _dataset_inputs(manifest: dict[str, Any], sets: dict[str, pd.DataFrame]) -> None:
    """Log each split as an MLflow dataset input whose source is the pinned Delta table version."""
    import mlflow
    from mlflow.data.delta_dataset_source import DeltaDatasetSource

    for name, frame in sets.items():
        source = DeltaDatasetSource(
            path=manifest["tables"]["features"], delta_table_version=manifest["versions"]["features"]
        )
        dataset = mlflow.data.from_pandas(
            frame, source=source, targets="label", name=f"{manifest['key']}/{name}", digest=manifest["checksum"][:32]
        )
        mlflow.log_input(dataset, context=name)


def run_training(
    settings: Settings,
    config: ModelConfig,
    versions: dict[str, int],
    families: tuple[str, ...],
    dag_run_id: str,
    reason: str,
    as_of_start: date | None = None,
    as_of_end: date | None = None,
) -> dict[str, Any]:
    """Train ``families`` on the pinned set, register the best as a new version with the challenger alias."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.models import infer_signature

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    key = trainset.set_key(config, versions, as_of_start, as_of_end)
    manifest, sets = trainset.load_training_set(trainset.set_path(settings, config, key))
    columns = manifest["feature_columns"]
    on = device()
    seed_everything(config.training.seed)
    log.info("training %s on %s rows (%s), device %s, families %s", config.name, manifest["rows"], key, on, families)
    experiment = experiment_id(settings, config.name)
    tags = {
        TAG_ROLE: "parent",
        TAG_DAG_RUN: dag_run_id,
        TAG_MODEL: config.name,
        "mlp.reason": reason,
        "mlp.trainset": key,
        "mlp.features_version": str(versions["features"]),
        "mlp.labels_version": str(versions["labels"]),
        "mlp.device": on,
    }
    results: dict[str, dict[str, Any]] = {}
    with mlflow.start_run(experiment_id=experiment, run_name=f"train {dag_run_id}", tags=tags) as parent:
        _dataset_inputs(manifest, sets)
        mlflow.log_params(
            {"families": ",".join(families), "trainset": key, **{f"rows_{k}": v for k, v in manifest["rows"].items()}}
        )
        mlflow.log_dict(manifest, "trainset_manifest.json")
        holdout_y = sets["holdout"].label.to_numpy()
        for family in families:
            seed_everything(config.training.seed)
            with mlflow.start_run(
                experiment_id=experiment,
                run_name=family,
                nested=True,
                tags={TAG_ROLE: family, TAG_DAG_RUN: dag_run_id, TAG_MODEL: config.name},
            ) as child:
                trainer = train_xgboost if family == "xgboost" else train_pytorch
                model, info = trainer(sets["train"], sets["validation"], columns, config, on)
                val = evaluate(sets["validation"].label.to_numpy(), model.predict_proba(sets["validation"]))
                hold_p = model.predict_proba(sets["holdout"])
                hold = evaluate(holdout_y, hold_p)
                mlflow.log_params({k: str(v)[:250] for k, v in info["params"].items()})
                mlflow.log_metrics({f"val_{k}": v for k, v in val.items()})
                mlflow.log_metrics({f"holdout_{k}": v for k, v in hold.items()})
                mlflow.log_metrics(
                    {
                        "train_seconds": info["seconds"],
                        "train_rows_per_second": info["rows_per_second"],
                        "epochs_or_rounds": info["epochs_or_rounds"],
                    }
                )
                mlflow.log_dict(info["importance"], f"{family}_importance.json")
                with tempfile.TemporaryDirectory() as tmp:
                    for path in _plots(holdout_y, hold_p, info["importance"], family, Path(tmp)):
                        mlflow.log_artifact(str(path), "plots")
                # The schema keeps gold's own types: counts are integers and never null (MLflow will not cast
                # int64 to float64 at scoring time, so declaring them double would reject real inputs).
                example = sets["validation"][columns].head(5)
                signature = infer_signature(example, model.predict(None, example))
                logged = mlflow.pyfunc.log_model(
                    name="model", python_model=model, signature=signature, input_example=example
                )
                results[family] = {
                    "run_id": child.info.run_id,
                    "model_uri": logged.model_uri,
                    "validation": val,
                    "holdout": hold,
                    "rows_per_second": info["rows_per_second"],
                }
                log.info("%s: validation %s holdout %s (%.0f rows/s)", family, val, hold, info["rows_per_second"])

        metric = config.training.primary_metric
        winner = families[0]
        for family in families[1:]:
            if better(results[family]["validation"], results[winner]["validation"], metric):
                winner = family
        chosen = results[winner]
        version = mlflow.register_model(chosen["model_uri"], config.name, tags={TAG_DAG_RUN: dag_run_id})
        client = MlflowClient()
        for k, v in {
            "family": winner,
            "trainset": key,
            "reason": reason,
            "training_run": parent.info.run_id,
            **{f"holdout_{m}": f"{x:.5f}" for m, x in chosen["holdout"].items()},
        }.items():
            client.set_model_version_tag(config.name, version.version, k, v)
        client.set_registered_model_alias(config.name, CHALLENGER, version.version)
        comparison = {f: {"validation": r["validation"], "holdout": r["holdout"]} for f, r in results.items()}
        mlflow.log_dict(comparison, "comparison.json")
        mlflow.log_metrics({f"val_{k}": v for k, v in chosen["validation"].items()})
        mlflow.log_metrics({f"holdout_{k}": v for k, v in chosen["holdout"].items()})
        mlflow.set_tags({TAG_WINNER: winner, TAG_VERSION: str(version.version)})
        summary = {
            "run_id": parent.info.run_id,
            "model": config.name,
            "version": int(version.version),
            "winner": winner,
            "families": comparison,
            "trainset": key,
            "device": on,
            "rows": manifest["rows"],
            "rows_per_second": {f: r["rows_per_second"] for f, r in results.items()},
        }
    log.info("registered %s version %s (%s) as %s", config.name, version.version, winner, CHALLENGER)
    return summary


def verify_training_run(settings: Settings, model: str, dag_run_id: str) -> dict[str, Any]:
    """Fail unless MLflow holds one finished parent run for ``dag_run_id`` with its metrics and registered model."""
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    client = MlflowClient()
    experiment = client.get_experiment_by_name(model)
    if experiment is None:
        raise TrainingVerificationError(f"no MLflow experiment {model!r}: the training command never reached MLflow")
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{TAG_DAG_RUN}` = '{dag_run_id}' AND tags.`{TAG_ROLE}` = 'parent'",
        order_by=["attributes.start_time DESC"],
    )
    if not runs:
        raise TrainingVerificationError(
            f"no MLflow training run tagged {TAG_DAG_RUN}={dag_run_id!r} in experiment {model!r}: the command exited "
            "without training (wrong image or arguments?)"
        )
    run = runs[0]
    if run.info.status != "FINISHED":
        raise TrainingVerificationError(
            f"MLflow run {run.info.run_id} is {run.info.status}, not FINISHED: training crashed or was killed "
            "(OOM, evicted pod, preempted node); see the training logs"
        )
    missing = [f"{p}_{m}" for p in ("val", "holdout") for m in METRICS if f"{p}_{m}" not in run.data.metrics]
    if missing:
        raise TrainingVerificationError(f"MLflow run {run.info.run_id} lacks metrics {missing}")
    version = run.data.tags.get(TAG_VERSION)
    if not version:
        raise TrainingVerificationError(f"MLflow run {run.info.run_id} registered no model version")
    registered = client.get_model_version(model, version)
    # The version's source is one of this DAG run's runs (the winning family's nested run).
    same_dag_run = {
        r.info.run_id
        for r in client.search_runs(
            [experiment.experiment_id], filter_string=f"tags.`{TAG_DAG_RUN}` = '{dag_run_id}'", max_results=1000
        )
    }
    if registered.run_id not in same_dag_run:
        raise TrainingVerificationError(
            f"{model} version {version} comes from run {registered.run_id}, not from this training run "
            f"(runs of {dag_run_id}: {sorted(same_dag_run)})"
        )
    return {
        "run_id": run.info.run_id,
        "version": int(version),
        "winner": run.data.tags.get(TAG_WINNER),
        **{k: round(v, 5) for k, v in run.data.metrics.items() if k.startswith("holdout_")},
    }


def main(argv: list[str] | None = None) -> int:
    """CLI: see the module docstring. Prints the summary as JSON on the last line."""
    parser = cli.parser("jobs.ml.train", "train and register (MLflow)")
    cli.add_model(parser)
    parser.add_argument("--features-version", type=int, required=True)
    parser.add_argument("--labels-version", type=int, required=True)
    parser.add_argument("--family", default="all", choices=("all", *FAMILIES))
    parser.add_argument("--dag-run-id", default="manual")
    parser.add_argument("--reason", default="manual")
    parser.add_argument("--as-of-start", default="", help="ISO date; empty: the first matured label")
    parser.add_argument("--as-of-end", default="", help="ISO date; empty: the last matured label")
    args = parser.parse_args(argv)
    cli.setup_logging()
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    settings = load()
    config = load_model_config(args.model)
    families = tuple(f for f in config.training.families if args.family in ("all", f))
    if not families:
        raise SystemExit(
            f"family {args.family!r} is not in {config.name}'s training.families {config.training.families}"
        )
    summary = run_training(
        settings,
        config,
        {"features": args.features_version, "labels": args.labels_version},
        families,
        args.dag_run_id,
        args.reason,
        date.fromisoformat(args.as_of_start) if args.as_of_start else None,
        date.fromisoformat(args.as_of_end) if args.as_of_end else None,
    )
    print(json.dumps(summary, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
