"""
### Training (on new features, on drift, or by hand)

Runs when the feature pipeline publishes the model's features Asset (only after its data-quality gate passed),
when the drift monitor asks for a retrain (conf `reason`), or from the **Trigger** form.

1. `pin_versions` records the Delta versions of gold features and labels that the data-quality gate validated (the
   features Asset event carries them; else the newest passing gate run's): everything below reads exactly those, so
   a re-run trains on the same data and a window that failed the gate never reaches a training set.
2. `build_training_set` (Spark) joins features with matured labels at those versions, splits train / validation /
   holdout in time with a gap of at least the label horizon, and writes the set once (Parquet + manifest).
3. `train` runs `python -m jobs.ml.train ...` in the `gpu` pool: a GPU pod from `include/pod_templates/training.yaml`
   when `MLP_TRAINING_BACKEND=kubernetes`, the very same command as a local process otherwise. Both families
   (XGBoost, PyTorch) are tracked in MLflow; the better on validation becomes a new model version with the
   `challenger` alias. The task then verifies in MLflow that the run finished, logged the model and metrics and
   registered the version; a killed pod, an OOM or an exit without a run fails it.
4. `evaluate_and_promote` scores the challenger and the current champion on the same, most recent matured holdout
   and applies the model's promotion gates (`promotion:` in the model config; mode `enabled`, `dry_run` or
   `disabled`). A winner becomes `champion` (the old one `previous_champion`) by check-and-set; every decision is a
   row in the model's `decisions` table, tags on the versions, an HTML report in MLflow and an e-mail to the team.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG, Param, task
from mlplatform.tasks import features_asset, promotion_task, spark_job, training_command, training_task

MODEL = "purchase_propensity"
VERSIONS = (
    "{{ ti.xcom_pull(task_ids='pin_versions')['features'] }}",
    "{{ ti.xcom_pull(task_ids='pin_versions')['labels'] }}",
)
WINDOW = ("{{ params.as_of_start or '' }}", "{{ params.as_of_end or '' }}")
# Asset-triggered runs carry no reason of their own; drift-triggered and manual runs pass one in their conf.
REASON = (
    "{{ params.reason if params.reason else "
    "('features updated' if dag_run.run_type == 'asset_triggered' else 'manual') }}"
)

with DAG(
    dag_id=Path(__file__).stem,
    description="pinned training set -> XGBoost + PyTorch (local or GPU pod) -> challenger -> gated promotion",
    doc_md=__doc__,
    schedule=[features_asset(MODEL)],
    start_date=datetime(1997, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["training", "mlflow", "gpu"],
    default_args={"owner": "ml-platform", "retries": 2, "retry_delay": timedelta(minutes=5)},
    params={
        "family": Param("all", enum=["all", "xgboost", "pytorch"], description="model families to train"),
        "as_of_start": Param(
            None, type=["null", "string"], format="date", description="first as-of date (default: first matured label)"
        ),
        "as_of_end": Param(
            None, type=["null", "string"], format="date", description="last as-of date (default: last matured label)"
        ),
        "reason": Param("", type="string", description="why this run (recorded in MLflow and on the model version)"),
    },
) as dag:

    @task
    def pin_versions(**context) -> dict[str, int]:
        """The gold versions the data-quality gate validated: those the triggering features Asset event carries, else
        the newest passing gate run's (no Spark). A window that failed the gate never reaches a training set."""
        from jobs.quality.gate import validated_versions
        from jobs.settings import load

        for events in context["triggering_asset_events"].values():
            for event in reversed(events):
                if (event.extra or {}).get("versions"):
                    return {k: int(v) for k, v in event.extra["versions"].items()}
        return validated_versions(load(), MODEL)

    versions = pin_versions()
    build = spark_job(
        "build_training_set",
        "jobs.ml.trainset",
        [
            "--model",
            MODEL,
            "--features-version",
            VERSIONS[0],
            "--labels-version",
            VERSIONS[1],
            "--as-of-start",
            WINDOW[0],
            "--as-of-end",
            WINDOW[1],
        ],
    )
    train = training_task(
        MODEL,
        training_command(MODEL, "{{ params.family }}", REASON, WINDOW, VERSIONS),
        pool="gpu",
        execution_timeout=timedelta(hours=6),
    )
    promote = promotion_task("evaluate_and_promote", MODEL, "auto", ["--reason", REASON])
    versions >> build >> train >> promote
