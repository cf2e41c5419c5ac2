"""Scale-out path: the features job under spark-submit on a real standalone cluster equals the local-mode result."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest

from jobs.config import load_model_config
from jobs.features import build
from jobs.settings import REPO_ROOT, Settings
from jobs.spark import delta_package, spark_conf, submit_env
from tooling.cluster import app_dirs, standalone_cluster

pytestmark = pytest.mark.cluster

MODEL = "purchase_propensity"
# A month keeps the cluster run short; the features job reads the same code paths for any range.
START, END = date(1997, 1, 1), date(1997, 1, 31)
SILVER_COLUMNS = (
    "CAST(transaction_id AS STRING) AS transaction_id",
    "CAST(customer_id AS BIGINT) AS customer_id",
    "CAST(order_date AS DATE) AS order_date",
    "CAST(quantity AS INT) AS quantity",
    "CAST(amount AS DOUBLE) AS amount",
    "CAST(order_date AS DATE) AS landing_date",
    "'cdnow' AS source_file",
    "'test' AS ingest_run_id",
)
# Small enough to share a 2-core machine: one executor with one core next to a 1g driver.
CLUSTER_CONF = {
    "spark.driver.memory": "1g",
    "spark.executor.memory": "768m",
    "spark.executor.cores": "1",
    "spark.cores.max": "1",
    "spark.ui.enabled": "false",
}
SUBMIT_TIMEOUT_S = 480


def _write_silver(spark, settings: Settings) -> int:
    """Real CDNOW purchases up to END as silver (landed on their order date); returns the row count."""
    from jobs.sources.cdnow import read_cdnow

    frame = read_cdnow()
    frame = frame[frame["order_date"] <= END]
    silver = spark.createDataFrame(frame).selectExpr(*SILVER_COLUMNS)
    silver.write.format("delta").mode("overwrite").partitionBy("landing_date").save(
        settings.table_path(*build.SILVER_TABLE)
    )
    return len(frame)


def _tail(path: Path, lines: int = 60) -> str:
    text = path.read_text(errors="replace").splitlines() if path.exists() else []
    return "\n".join(text[-lines:])


def _spark_submit(master: str, lake_root: Path, log_path: Path, run_id: str) -> int:
    """Run the features CLI through the venv's spark-submit against ``master``; returns its exit status."""
    settings = Settings.from_env()
    conf = spark_conf(settings, CLUSTER_CONF)
    conf.pop("spark.jars.packages")
    cmd = [str(Path(sys.executable).parent / "spark-submit"), "--master", master]
    cmd += ["--packages", delta_package(settings)]
    for key, value in conf.items():
        cmd += ["--conf", f"{key}={value}"]
    cmd += [str(REPO_ROOT / "include" / "spark_entry.py"), "jobs.features.build", "--model", MODEL]
    cmd += ["--start", START.isoformat(), "--end", END.isoformat(), "--run-id", run_id]
    # The test process's own local driver must not leak its launcher settings into the submitted driver.
    env = {k: v for k, v in os.environ.items() if k not in {"SPARK_ENV_LOADED", "PYSPARK_SUBMIT_ARGS"}}
    env.update(submit_env(settings))
    env["MLP_LAKE_ROOT"] = str(lake_root)
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            return proc.wait(timeout=SUBMIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            pytest.fail(f"spark-submit did not finish in {SUBMIT_TIMEOUT_S}s; last output:\n{_tail(log_path)}")


def _diff(left, right, ignore: tuple[str, ...] = ()) -> tuple[int, int, int]:
    """(rows in left, rows in right, rows without an identical partner): a multiset compare in one job."""
    from pyspark.sql import functions as F

    columns = [c for c in left.columns if c not in ignore]
    tagged = left.select(*columns, F.lit(1).alias("_l"), F.lit(0).alias("_r")).unionByName(
        right.select(*columns, F.lit(0).alias("_l"), F.lit(1).alias("_r"))
    )
    # Grouping on every column makes nulls and doubles compare exactly, like exceptAll, but in a single pass.
    groups = tagged.groupBy(*columns).agg(F.sum("_l").alias("nl"), F.sum("_r").alias("nr"))
    totals = groups.agg(
        F.sum("nl").alias("left"),
        F.sum("nr").alias("right"),
        F.sum(F.abs(F.col("nl") - F.col("nr"))).alias("mismatched"),
    ).first()
    return int(totals["left"] or 0), int(totals["right"] or 0), int(totals["mismatched"] or 0)


def test_features_on_standalone_cluster_equal_local_mode(spark, settings: Settings, tmp_path: Path) -> None:
    config = load_model_config(MODEL)
    silver_rows = _write_silver(spark, settings)
    assert silver_rows > 5_000

    # The cluster run gets its own lake holding a copy of the same silver table.
    cluster_lake = tmp_path / "cluster-lake"
    shutil.copytree(settings.table_path(*build.SILVER_TABLE), cluster_lake / "silver" / "transactions")

    local = build.build_features(spark, settings, config, START, END, run_id="local")
    assert local["mode"] == "backfill" and local["rows"] > 0

    cluster_logs = tmp_path / "cluster"
    submit_log = tmp_path / "spark-submit.log"
    began = time.monotonic()
    with standalone_cluster(workers=1, cores=1, memory="1g", log_dir=cluster_logs) as master:
        assert master.startswith("spark://127.0.0.1:")
        rc = _spark_submit(master, cluster_lake, submit_log, run_id="cluster")
    elapsed = time.monotonic() - began
    assert rc == 0, f"spark-submit on {master} exited {rc} after {elapsed:.0f}s:\n{_tail(submit_log)}"
    assert app_dirs(cluster_logs), f"no executor ran on the standalone worker (nothing under {cluster_logs})"

    local_gold = spark.read.format("delta").load(settings.model_table_path(MODEL, build.FEATURES_TABLE))
    cluster_gold = spark.read.format("delta").load(f"{cluster_lake}/models/{MODEL}/{build.FEATURES_TABLE}")
    assert {r["feature_run_id"] for r in cluster_gold.select("feature_run_id").distinct().collect()} == {"cluster"}
    assert local_gold.columns == cluster_gold.columns
    local_count, cluster_count, mismatched = _diff(local_gold, cluster_gold, ignore=("feature_run_id",))
    assert local_count == cluster_count == local["rows"], (local_count, cluster_count, local["rows"])
    if mismatched:
        sample = local_gold.drop("feature_run_id").exceptAll(cluster_gold.drop("feature_run_id")).limit(3).collect()
        pytest.fail(
            f"gold differs between local mode and the cluster: {mismatched} of {local_count} rows unmatched; "
            f"e.g. only in local mode: {[r.asDict() for r in sample]}"
        )
