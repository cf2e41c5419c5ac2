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


def spark_job(task_id: str, module: str, args: list[str], **kwargs: Any) -> Any:
    """A SparkSubmitOperator on ``spark_default`` running ``python -m <module> <args>``'s main under spark-submit."""
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    settings = load()
    conf = spark_conf(settings)
    packages = conf.pop("spark.jars.packages")
    return SparkSubmitOperator(
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
