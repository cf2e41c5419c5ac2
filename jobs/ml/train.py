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
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs import cli
from jobs.config import ModelConfig, load_model_config
from jobs.ml import trainset
from jobs.ml.families import pytorch, xgboost
from jobs.ml.metrics import METRICS, better, evaluate
from jobs.ml.pyfunc import pip_requirements
from jobs.ml.registry import CHALLENGER, experiment_id
from jobs.settings import Settings, load

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

log = logging.getLogger(__name__)

# Each family is a module under jobs/ml/families/ with a train(...) -> (PropensityModel, info).
TRAINERS = {"xgboost": xgboost.train, "pytorch": pytorch.train}
FAMILIES = tuple(TRAINERS)
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
    import mlflow.pyfunc
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
                trainer = TRAINERS[family]
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
                    name="model",
                    python_model=model,
                    signature=signature,
                    input_example=example,
                    pip_requirements=pip_requirements(model),
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
