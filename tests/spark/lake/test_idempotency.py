"""Re-runs are safe: the same logical date three times through every stage, and a job killed mid-write.

The data is the generator's, with corruptions, so bronze, silver, quarantine, the ops reconciliation table, gold
features and labels all hold rows. A re-run of an Airflow task keeps its run id, so every column, run ids
included, must come out identical.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

from jobs.config import load_model_config
from jobs.features import build, labels
from jobs.lake import clean, ingest
from jobs.sources import generate as gen

MODEL = "purchase_propensity"
START = date(1997, 1, 1)
DAYS = 100
LOGICAL = START + timedelta(days=95)  # late enough that the 90-day label horizon has matured for some as-of dates
TABLES = {
    "bronze": (ingest.BRONZE_TABLE, ("landing_date", "source_file", "raw_line")),
    "silver": (clean.SILVER_TABLE, ("transaction_id",)),
    "quarantine": (clean.QUARANTINE_TABLE, ("landing_date", "source_file", "raw_line")),
    "reconciliation": (clean.RECONCILIATION_TABLE, ("landing_date",)),
    "features": (("models", MODEL, build.FEATURES_TABLE), ("customer_id", "as_of_date")),
    "labels": (("models", MODEL, labels.LABELS_TABLE), ("customer_id", "as_of_date")),
}


def _generate(settings) -> None:
    gen.generate(
        gen.GeneratorConfig(
            out=settings.landing_root, rows=8_000, customers=400, start=START, days=DAYS, seed=7, corrupt_rate=0.03
        )
    )


def _run_all(spark, settings, config, start: date, end: date, run_id: str) -> None:
    ingest.ingest(spark, settings, start, end, run_id)
    clean.clean(spark, settings, start, end, run_id)
    build.build_features(spark, settings, config, start, end, run_id)
    labels.build_labels(spark, settings, config, start, end, run_id)


def _checksum(spark, path: str) -> tuple[int, int]:
    """(rows, order-independent checksum over every column): equal contents give equal checksums."""
    from pyspark.sql import functions as F

    frame = spark.read.format("delta").load(path)
    row = frame.agg(F.count(F.lit(1)), F.sum(F.xxhash64(*frame.columns).cast("decimal(38,0)"))).first()
    return int(row[0]), int(row[1] or 0)


def _path(settings, table: tuple[str, ...]) -> str:
    return f"{settings.lake_root}/{'/'.join(table)}"


def _state(spark, settings) -> dict[str, tuple[int, int]]:
    return {name: _checksum(spark, _path(settings, table)) for name, (table, _) in TABLES.items()}


def _duplicate_keys(spark, settings) -> dict[str, int]:
    out = {}
    for name, (table, key) in TABLES.items():
        frame = spark.read.format("delta").load(_path(settings, table))
        if name == "bronze":  # bronze keeps every landed line, repeats included; its key adds the line's position
            continue
        out[name] = frame.count() - frame.select(*key).distinct().count()
    return out


def test_same_logical_date_three_times_leaves_identical_tables(spark, settings) -> None:
    _generate(settings)
    config = load_model_config("purchase_propensity")
    _run_all(spark, settings, config, START, LOGICAL - timedelta(days=1), "backfill")

    states = []
    for _ in range(3):
        _run_all(spark, settings, config, LOGICAL, LOGICAL, "scheduled__1997-04-06")
        states.append(_state(spark, settings))

    assert states[0] == states[1] == states[2]
    assert all(rows > 0 for rows, _ in states[0].values()), states[0]
    assert _duplicate_keys(spark, settings) == dict.fromkeys(TABLES.keys() - {"bronze"}, 0)
    # The logical date is one landing day and one as-of date: bronze holds every landed line exactly once.
    landed = sum(
        r.landed for r in spark.read.format("delta").load(settings.table_path(*clean.RECONCILIATION_TABLE)).collect()
    )
    assert states[0]["bronze"][0] == landed


def _new_data_files(table: Path, before: set[Path]) -> set[Path]:
    return {p for p in table.rglob("*.parquet") if p not in before}


def test_killed_job_leaves_no_partial_data_and_a_rerun_completes(spark, settings) -> None:
    """SIGKILL the features job (driver and JVM) while it writes; readers see the last commit, a re-run finishes."""
    from delta.tables import DeltaTable

    _generate(settings)
    config = load_model_config("purchase_propensity")
    end = START + timedelta(days=DAYS - 1)
    _run_all(spark, settings, config, START, end, "first")
    gold = Path(settings.model_table_path(MODEL, build.FEATURES_TABLE))
    committed = _checksum(spark, str(gold))
    version = DeltaTable.forPath(spark, str(gold)).history(1).first()["version"]
    files_before = set(gold.rglob("*.parquet"))

    command = [
        sys.executable,
        "-m",
        "jobs.features.build",
        "--model",
        "purchase_propensity",
        "--start",
        str(START),
        "--end",
        str(end),
        "--run-id",
        "second",
    ]
    env = {**os.environ, "MLP_SPARK_MASTER": "local[2]"}  # the lake is the settings fixture's, from the environment
    job = subprocess.Popen(command, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    try:
        while not _new_data_files(gold, files_before):
            assert job.poll() is None, f"job ended before it was killed: {job.stderr.read().decode()[-2000:]}"
            assert time.monotonic() < deadline, "the job wrote no data file within 240 s"
            time.sleep(0.02)
        os.killpg(job.pid, signal.SIGKILL)  # the Python driver and its Spark JVM
    finally:
        job.wait(timeout=60)
    assert job.returncode == -signal.SIGKILL

    # Files of the killed write are on disk, but no commit references them: readers see the previous version.
    assert _new_data_files(gold, files_before), "the kill came before any data file was written"
    assert DeltaTable.forPath(spark, str(gold)).history(1).first()["version"] == version
    assert _checksum(spark, str(gold)) == committed

    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    frame = spark.read.format("delta").load(str(gold))
    assert frame.count() == committed[0]
    assert frame.select("customer_id", "as_of_date").distinct().count() == committed[0]
    assert frame.where("feature_run_id <> 'second'").count() == 0
    # Same values as the first run: only the run id column differs.
    values = [c for c in frame.columns if c != "feature_run_id"]
    first = spark.read.format("delta").option("versionAsOf", version).load(str(gold))
    assert first.select(*values).exceptAll(frame.select(*values)).count() == 0
