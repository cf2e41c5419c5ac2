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
import time
from datetime import date
from pathlib import Path
from typing import Any

from bench import harness, report
from jobs.features import build
from jobs.sources import cdnow

log = logging.getLogger("bench.features")


def gold_values(spark: Any, path: str, day: date, columns: list[str]) -> tuple:
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


def run(model: str, keep: bool, source: str = "cdnow", rows: int = 0, customers: int = 0) -> dict[str, Any]:
    """Build silver in a temp lake, then time the backfill and the two increments."""
    from jobs.config import load_model_config

    config = load_model_config(model)
    with harness.session("bench-features", keep) as (spark, settings):
        result: dict[str, Any] = {
            "source": source,
            "cores": os.cpu_count(),
            "shuffle_partitions": settings.spark_shuffle_partitions,
        }
        result["silver_rows"] = harness.build_silver(spark, settings, source, rows, customers, result)

        started, cpu = time.perf_counter(), harness.jvm_cpu_seconds(spark)
        summary = build.build_features(spark, settings, config, cdnow.FIRST_DAY, cdnow.LAST_DAY, "bench-backfill")
        result["backfill"] = {
            "rows": summary["rows"],
            "files": summary["files"],
            "dates": summary["dates"],
            "seconds": round(time.perf_counter() - started, 1),
            "jvm_cpu_seconds": round(harness.jvm_cpu_seconds(spark) - cpu, 1),
            "mode": summary["mode"],
        }
        log.info("backfill: %s", result["backfill"])

        gold = settings.model_table_path(config.name, build.FEATURES_TABLE)
        values = [c for c in build.gold_columns(config) if c != "feature_run_id"]
        for label, day in (("day50", date(1997, 2, 19)), ("day500", date(1998, 5, 16))):
            before = gold_values(spark, gold, day, values)
            started, cpu = time.perf_counter(), harness.jvm_cpu_seconds(spark)
            summary = build.build_features(spark, settings, config, day, day, f"bench-{label}")
            seconds, cpu = time.perf_counter() - started, harness.jvm_cpu_seconds(spark) - cpu
            after = gold_values(spark, gold, day, values)
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
    return result


def record(result: dict[str, Any], params: dict[str, Any], root: Path | None = None) -> dict[str, Any]:
    """Append the run to docs/benchmarks/history.jsonl (stages: the backfill and both increments)."""
    stages = {f"spark.{stage}": {"seconds": result[stage]["seconds"]} for stage in ("backfill", "day50", "day500")}
    ratios = {"day500/day50": result["ratio_day500_day50"]}
    return report.record(
        f"features-{result['source']}",
        params,
        result,
        rows=result["silver_rows"],
        stages=stages,
        ratios=ratios,
        root=root or report.RESULTS_DIR,
    )


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m bench.features [--model NAME] [--keep]`` prints the timings as JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.features", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="purchase_propensity")
    parser.add_argument("--keep", action="store_true", help="keep the temp lake for inspection")
    parser.add_argument("--source", choices=("cdnow", "synthetic"), default="cdnow")
    parser.add_argument("--rows", type=int, default=10_000_000, help="synthetic transactions")
    parser.add_argument("--customers", type=int, default=100_000, help="synthetic customers")
    parser.add_argument("--no-record", action="store_true", help="do not append to docs/benchmarks/history.jsonl")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    result = run(args.model, args.keep, args.source, args.rows, args.customers)
    print(json.dumps(result, indent=2))
    if not args.no_record:
        params = {"source": args.source, "model": args.model}
        if args.source == "synthetic":
            params.update(rows=args.rows, customers=args.customers)
        record(result, params)
    return 0 if result["day50"]["equals_backfill"] and result["day500"]["equals_backfill"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
