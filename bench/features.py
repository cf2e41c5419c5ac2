"""Benchmark the gold features job: a full backfill and two nightly increments, on CDNOW and on synthetic data.

``--source cdnow`` (default) builds silver straight from the CDNOW file. ``--source synthetic --rows N`` writes N
generator transactions to a landing zone and runs the real ingest and clean stages over it first (timed too).

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
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from jobs import cdnow, features

log = logging.getLogger("bench.features")
DAYS = 546  # synthetic data spans as many days as CDNOW, so day 50 and day 500 mean the same


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


def _synthetic_silver(spark: Any, settings: Any, rows: int, customers: int, result: dict[str, Any]) -> int:
    """Generator landing files -> bronze -> silver through the real stages; their times go into ``result``."""
    from jobs import clean, ingest
    from jobs import generate as gen

    config = gen.GeneratorConfig(
        out=settings.landing_root, rows=rows, customers=customers, start=cdnow.FIRST_DAY, days=DAYS, seed=1
    )
    started = time.perf_counter()
    gen.generate(config)
    result["generate_seconds"] = round(time.perf_counter() - started, 1)
    end = cdnow.FIRST_DAY + timedelta(days=DAYS - 1)
    started = time.perf_counter()
    result["bronze_rows"] = ingest.ingest(spark, settings, cdnow.FIRST_DAY, end, "bench")
    result["ingest_seconds"] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    cleaned = clean.clean(spark, settings, cdnow.FIRST_DAY, end, "bench")
    result["clean_seconds"] = round(time.perf_counter() - started, 1)
    log.info("synthetic: %s", {k: v for k, v in result.items() if k.endswith("seconds") or k.endswith("rows")})
    return cleaned.accepted


def run(model: str, keep: bool, source: str = "cdnow", rows: int = 0, customers: int = 0) -> dict[str, Any]:
    """Build silver in a temp lake, then time the backfill and the two increments."""
    lake = tempfile.mkdtemp(prefix="bench-features-")
    os.environ["MLP_LAKE_ROOT"] = f"{lake}/lake"
    os.environ["MLP_LANDING_ROOT"] = f"{lake}/landing"
    from jobs.config import load_model_config
    from jobs.settings import load
    from jobs.spark import get_spark

    settings = load()
    config = load_model_config(model)
    spark = get_spark("bench-features", settings=settings, overrides=features.spark_overrides(settings))
    result: dict[str, Any] = {
        "source": source,
        "cores": os.cpu_count(),
        "shuffle_partitions": settings.spark_shuffle_partitions,
    }
    try:
        started = time.perf_counter()
        if source == "synthetic":
            result.update(transactions=rows, customers=customers)
            result["silver_rows"] = _synthetic_silver(spark, settings, rows, customers, result)
        else:
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
    parser.add_argument("--source", choices=("cdnow", "synthetic"), default="cdnow")
    parser.add_argument("--rows", type=int, default=10_000_000, help="synthetic transactions")
    parser.add_argument("--customers", type=int, default=100_000, help="synthetic customers")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    result = run(args.model, args.keep, args.source, args.rows, args.customers)
    print(json.dumps(result, indent=2))
    return 0 if result["day50"]["equals_backfill"] and result["day500"]["equals_backfill"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
