"""Task factories the thin DAG files use, so every Spark job is submitted the same way."""

from __future__ import annotations

from typing import Any

from jobs import reports
from jobs.settings import REPO_ROOT, load
from jobs.spark import spark_conf, submit_env

SPARK_ENTRY = REPO_ROOT / "include" / "spark_entry.py"
ASSET_SCHEME = "x-mlplatform"


def features_asset(model: str) -> Any:
    """The Airflow Asset a model's gold features publish (training is scheduled on it)."""
    from airflow.sdk import Asset

    return Asset(name=f"{model}.features", uri=f"{ASSET_SCHEME}://models/{model}/features")


def spark_job(task_id: str, module: str, args: list[str], operator: Any = None, **kwargs: Any) -> Any:
    """A SparkJobOperator (or ``operator``, a subclass) running ``<module>``'s main: a spark-submit on
    ``spark_default``, or with ``MLP_SPARK_MODE=connect`` a client of the Spark Connect server of
    ``spark_connect_default``."""
    if operator is None:
        from mlplatform.operators import SparkJobOperator as operator

    settings = load()
    conf = spark_conf(settings)
    packages = conf.pop("spark.jars.packages")
    return operator(
        task_id=task_id,
        conn_id="spark_default",
        application=str(SPARK_ENTRY),
        application_args=[module, *args],
        conf=conf,
        packages=packages,
        name=f"mlplatform-{task_id}",
        env_vars=submit_env(settings),
        spark_mode=settings.spark_mode,
        **kwargs,
    )


def quality_gate(model: str, start: str, end: str, run_id: str, **kwargs: Any) -> Any:
    """The data-quality gate task for ``model`` over [start, end] (templates): fails fast and mails on bad data
    (through the outbox, from the task itself: no callback swallows a mail that could not be sent)."""
    from mlplatform.operators import QualityGateOperator

    summary = str(reports.summary_path(load(), "quality", model, start, end))
    return spark_job(
        "quality_gate",
        "jobs.quality.gate",
        ["--model", model, "--start", start, "--end", end, "--run-id", run_id],
        operator=QualityGateOperator,
        model=model,
        summary_path=summary,
        **kwargs,
    )


def training_command(model: str, family: str, reason: str, window: tuple[str, str], versions: tuple[str, str]) -> list:
    """``python -m jobs.ml.train ...``: the one command both training backends run (arguments may be templates)."""
    return [
        "python",
        "-m",
        "jobs.ml.train",
        "--model",
        model,
        "--features-version",
        versions[0],
        "--labels-version",
        versions[1],
        "--family",
        family,
        "--dag-run-id",
        "{{ run_id }}",
        "--reason",
        reason,
        "--as-of-start",
        window[0],
        "--as-of-end",
        window[1],
    ]


def training_task(model: str, command: list[str], **kwargs: Any) -> Any:
    """The train task on the configured backend: a local subprocess, or a GPU pod from the pod template."""
    settings = load()
    if settings.training_backend == "local":
        from mlplatform.operators import LocalTrainingOperator

        return LocalTrainingOperator(task_id="train", command=command, model=model, **kwargs)
    from mlplatform.operators import training_pod_operator

    return training_pod_operator(
        task_id="train",
        model=model,
        namespace=settings.kubernetes_namespace,
        pod_template_file=str(settings.training_pod_template),
        image=settings.training_image,
        cmds=command[:3],
        arguments=command[3:],
        env_vars={
            "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
            "MLP_LAKE_ROOT": settings.lake_root,
            "MLP_MLFLOW_ARTIFACT_ROOT": settings.mlflow_artifact_root,
        },
        name=f"train-{model.replace('_', '-')}",
        on_finish_action="delete_pod",
        get_logs=True,
        log_events_on_failure=True,
        startup_timeout_seconds=900,  # GPU nodes scale up from zero in minutes
        **kwargs,
    )


# Who or what started a DAG run, for the audit: "scheduled", "asset_triggered", "manual by alice", ...
TRIGGERED_BY = (
    "{{ dag_run.run_type | replace('DagRunType.', '') | lower }}"
    "{% if dag_run.triggering_user_name %} by {{ dag_run.triggering_user_name }}{% endif %}"
)


def promotion_task(task_id: str, model: str, kind: str, args: list[str], **kwargs: Any) -> Any:
    """``jobs.ml.promotion <kind>`` as a Spark job: evaluate, decide, audit, move aliases, then mail the
    team the audited outcome (through the outbox, from the task itself)."""
    from mlplatform.operators import PromotionOperator

    decision = str(reports.summary_path(load(), "evaluation", model, "{{ run_id }}"))
    return spark_job(
        task_id,
        "jobs.ml.promotion",
        [
            kind,
            "--model",
            model,
            "--triggered-by",
            TRIGGERED_BY,
            "--dag-id",
            "{{ dag.dag_id }}",
            "--dag-run-id",
            "{{ run_id }}",
            *args,
        ],
        operator=PromotionOperator,
        model=model,
        decision_path=decision,
        **kwargs,
    )


def drift_task(model: str, as_of: str, **kwargs: Any) -> Any:
    """``jobs.monitoring.drift`` for the window ending ``as_of`` (a template); its XCom is the alert decision."""
    from mlplatform.operators import DriftMonitorOperator

    return spark_job(
        "monitor_drift",
        "jobs.monitoring.drift",
        ["--model", model, "--date", as_of, "--run-id", "{{ run_id }}"],
        operator=DriftMonitorOperator,
        summary_path=str(reports.summary_path(load(), "drift", model, as_of)),
        as_of_date=as_of,
        **kwargs,
    )
