"""Task factories the thin DAG files use, so every Spark job is submitted the same way."""

from __future__ import annotations

from typing import Any

from jobs.settings import REPO_ROOT, load
from jobs.spark import spark_conf, submit_env

SPARK_ENTRY = REPO_ROOT / "include" / "spark_entry.py"
ASSET_SCHEME = "x-mlplatform"


def features_asset(model: str) -> Any:
    """The Airflow Asset a model's gold features publish (training is scheduled on it)."""
    from airflow.sdk import Asset

    return Asset(name=f"{model}.customer_features", uri=f"{ASSET_SCHEME}://gold/customer_features/{model}")


def spark_job(task_id: str, module: str, args: list[str], operator: Any = None, **kwargs: Any) -> Any:
    """A SparkSubmitOperator (or ``operator``, a subclass) on ``spark_default`` running ``<module>``'s main."""
    if operator is None:
        from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator as operator

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
        **kwargs,
    )


def quality_gate(model: str, start: str, end: str, run_id: str, **kwargs: Any) -> Any:
    """The data-quality gate task for ``model`` over [start, end] (templates): fails fast and mails on bad data."""
    from mlplatform.notifiers import QualityGateNotifier
    from mlplatform.operators import QualityGateOperator

    summary = f"{load().reports_root}/quality/{model}/{start}_{end}/summary.json"  # jobs.quality.report_dir
    return spark_job(
        "quality_gate",
        "jobs.quality",
        ["--model", model, "--start", start, "--end", end, "--run-id", run_id],
        operator=QualityGateOperator,
        summary_path=summary,
        on_failure_callback=QualityGateNotifier(model=model, summary_path=summary),
        **kwargs,
    )
