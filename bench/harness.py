"""Shared benchmark plumbing: a temp lake with a Spark session, silver from CDNOW or the generator, JVM meters."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from jobs.features import build
from jobs.settings import REPO_ROOT
from jobs.sources import cdnow

log = logging.getLogger("bench.harness")
DAYS = 546  # synthetic data spans as many days as CDNOW, so day 50 and day 500 mean the same


def run_child(module: str, *args: str) -> dict[str, Any]:
    """Run ``python -m module args`` in a fresh interpreter from the repo root; the JSON line it prints last."""
    done = subprocess.run(
        [sys.executable, "-m", module, *args], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True, check=True
    )
    return json.loads(next(line for line in reversed(done.stdout.splitlines()) if line.startswith("{")))


@contextmanager
def session(name: str, keep: bool = False, overrides: dict[str, str] | None = None) -> Iterator[tuple[Any, Any]]:
    """(spark, settings) over a fresh temp lake and landing zone, with the jobs' Spark settings (and ``overrides``)."""
    lake = tempfile.mkdtemp(prefix=f"{name}-")
    os.environ["MLP_LAKE_ROOT"] = f"{lake}/lake"
    os.environ["MLP_LANDING_ROOT"] = f"{lake}/landing"
    from jobs.settings import load
    from jobs.spark import get_spark

    settings = load()
    spark = get_spark(name, settings=settings, overrides=overrides)
    try:
        yield spark, settings
    finally:
        spark.stop()
        if not keep:
            shutil.rmtree(lake, ignore_errors=True)


def cdnow_silver(spark: Any, path: str) -> int:
    """CDNOW as a silver table (landing_date = order_date), like a finished night-by-night replay."""
    from pyspark.sql import functions as F

    frame = cdnow.read_cdnow()
    frame["landing_date"] = frame["order_date"]
    frame["source_file"] = "cdnow"
    frame["ingest_run_id"] = "bench"
    schema = (
        "transaction_id string, customer_id long, order_date date, quantity long, amount double, "
        "landing_date date, source_file string, ingest_run_id string"
    )
    silver = spark.createDataFrame(frame, schema).withColumn("quantity", F.col("quantity").cast("int"))
    silver.repartition("landing_date").write.format("delta").mode("overwrite").partitionBy("landing_date").save(path)
    return len(frame)


def synthetic_silver(
    spark: Any, settings: Any, rows: int, customers: int, result: dict[str, Any], days: int = DAYS
) -> int:
    """Generator landing files -> bronze -> silver through the real stages; their times go into ``result``."""
    from jobs.lake import clean, ingest
    from jobs.sources import generate as gen

    config = gen.GeneratorConfig(
        out=settings.landing_root, rows=rows, customers=customers, start=cdnow.FIRST_DAY, days=days, seed=1
    )
    started = time.perf_counter()
    gen.generate(config)
    result["generate_seconds"] = round(time.perf_counter() - started, 1)
    end = cdnow.FIRST_DAY + timedelta(days=days - 1)
    started = time.perf_counter()
    result["bronze_rows"] = ingest.ingest(spark, settings, cdnow.FIRST_DAY, end, "bench")
    result["ingest_seconds"] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    cleaned = clean.clean(spark, settings, cdnow.FIRST_DAY, end, "bench")
    result["clean_seconds"] = round(time.perf_counter() - started, 1)
    log.info("synthetic: %s", {k: v for k, v in result.items() if k.endswith("seconds") or k.endswith("rows")})
    return cleaned.accepted


def build_silver(spark: Any, settings: Any, source: str, rows: int, customers: int, result: dict[str, Any]) -> int:
    """Write the silver table for ``source`` (cdnow or synthetic) and return its row count."""
    started = time.perf_counter()
    if source == "synthetic":
        result.update(transactions=rows, customers=customers)
        silver_rows = synthetic_silver(spark, settings, rows, customers, result)
    else:
        silver_rows = cdnow_silver(spark, settings.table_path(*build.SILVER_TABLE))
    log.info("silver: %d rows in %.1fs", silver_rows, time.perf_counter() - started)
    return silver_rows


def delta_files(spark: Any, path: str, where: Any = None) -> list[str]:
    """Local paths of the Parquet files in a Delta table's current snapshot (optionally filtered)."""
    frame = spark.read.format("delta").load(path)
    if where is not None:
        frame = frame.filter(where)
    return sorted(unquote(urlparse(uri).path) for uri in frame.inputFiles())


def jvm_pid(spark: Any) -> int:
    """Process id of the local Spark JVM (driver and local executors)."""
    return int(spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid())


def jvm_cpu_seconds(spark: Any) -> float:
    """CPU time used so far by the local Spark JVM: a load-independent cost."""
    fields = Path(f"/proc/{jvm_pid(spark)}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def peak_rss(pid: int, interval: float = 0.05) -> Iterator[dict[str, int]]:
    """Sample a process's RSS while the block runs; ``peak["bytes"]`` holds the highest seen."""
    import psutil

    process, peak, done = psutil.Process(pid), {"bytes": 0}, threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak["bytes"] = max(peak["bytes"], process.memory_info().rss)
            done.wait(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield peak
    finally:
        done.set()
        sampler.join()
