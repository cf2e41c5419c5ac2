"""Benchmark the gold features job on real CDNOW: a full backfill and two nightly increments.

The increments run at day 50 and day 500 of the data, each with gold already holding the day before; an
increment must cost about the same at both (one day of silver + one row per customer), so the ratio
day500/day50 is printed next to the seconds. Each increment's output is also checked against the backfill's
values for that date (the backfill wrote it first; the increment must reproduce it exactly).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

from jobs import cdnow, features

log = logging.getLogger("bench.features")


def _silver(spark: Any, path: str) -> int:
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


def _jvm_cpu_seconds(spark: Any) -> float:
    """CPU time used so far by the local Spark JVM (driver and local executors): a load-independent cost."""
    pid = spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _values(spark: Any, path: str, day: date, columns: list[str]) -> tuple:
    """(rows, checksum over the feature values) of one as_of_date in gold."""
    from pyspark.sql import functions as F

    row = (
        spark.read.format("delta")
        .load(path)
        .filter(F.col("as_of_date") == F.lit(day))
        .agg(F.count(F.lit(1)), F.sum(F.xxhash64(*columns).cast("decimal(38,0)")))
        .first()
    )
    return int(row[0]), row[1]


def run(model: str, keep: bool) -> dict[str, Any]:
    """Build silver in a temp lake, then time the backfill and the two increments."""
    lake = tempfile.mkdtemp(prefix="bench-features-")
    os.environ["MLP_LAKE_ROOT"] = lake
    from jobs.config import load_model_config
    from jobs.settings import load
    from jobs.spark import get_spark

    settings = load()
    config = load_model_config(model)
    spark = get_spark("bench-features", settings=settings, overrides=features.spark_overrides(settings))
    result: dict[str, Any] = {"cores": os.cpu_count(), "shuffle_partitions": settings.spark_shuffle_partitions}
    try:
        started = time.perf_counter()
        result["silver_rows"] = _silver(spark, settings.table_path(*features.SILVER_TABLE))
        log.info("silver: %d rows in %.1fs", result["silver_rows"], time.perf_counter() - started)

        started, cpu = time.perf_counter(), _jvm_cpu_seconds(spark)
        summary = features.build_features(spark, settings, config, cdnow.FIRST_DAY, cdnow.LAST_DAY, "bench-backfill")
        result["backfill"] = {
            "rows": summary["rows"],
            "files": summary["files"],
            "dates": summary["dates"],
            "seconds": round(time.perf_counter() - started, 1),
            "jvm_cpu_seconds": round(_jvm_cpu_seconds(spark) - cpu, 1),
            "mode": summary["mode"],
        }
        log.info("backfill: %s", result["backfill"])

        gold = settings.table_path(*features.GOLD_TABLE)
        values = [c for c in features.gold_columns(config) if c != "feature_run_id"]
        for label, day in (("day50", date(1997, 2, 19)), ("day500", date(1998, 5, 16))):
            before = _values(spark, gold, day, values)
            started, cpu = time.perf_counter(), _jvm_cpu_seconds(spark)
            summary = features.build_features(spark, settings, config, day, day, f"bench-{label}")
            seconds, cpu = time.perf_counter() - started, _jvm_cpu_seconds(spark) - cpu
            after = _values(spark, gold, day, values)
            result[label] = {
                "as_of": day.isoformat(),
                "rows": summary["rows"],
                "mode": summary["mode"],
                "seconds": round(seconds, 2),
                "jvm_cpu_seconds": round(cpu, 1),
                "equals_backfill": before == after,
            }
            log.info("%s: %s", label, result[label])
        result["ratio_day500_day50"] = round(result["day500"]["seconds"] / result["day50"]["seconds"], 2)
    finally:
        spark.stop()
        if not keep:
            shutil.rmtree(lake, ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m bench.features [--model NAME] [--keep]`` prints the timings as JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.features", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=features.DEFAULT_MODEL)
    parser.add_argument("--keep", action="store_true", help="keep the temp lake for inspection")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    result = run(args.model, args.keep)
    print(json.dumps(result, indent=2))
    return 0 if result["day50"]["equals_backfill"] and result["day500"]["equals_backfill"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
