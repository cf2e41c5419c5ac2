"""Benchmark the data-quality gate's gold suite (the heavy one) on N synthetic gold rows in Delta.

The rows have the model's exact gold schema with plausible values (windows nest, tenure >= recency), spread over
as-of dates past the warm-up so every expectation, feature spread included, is evaluated. Prints JSON: rows,
expectations, seconds, rows per second, and appends it to docs/benchmarks/history.jsonl.
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

from bench import report
from jobs.config import feature_columns, load_model_config
from jobs.quality import gate

log = logging.getLogger("bench.quality")


def _gold(spark: Any, config: Any, rows: int, customers: int, first: date) -> Any:
    """``rows`` gold rows: ``customers`` per as-of date, dates from ``first`` on."""
    from pyspark.sql import functions as F

    frame = spark.range(rows).select(
        (F.col("id") % customers + 1).alias("customer_id"),
        F.date_add(F.lit(first), (F.col("id") / customers).cast("int")).alias("as_of_date"),
    )
    seed = iter(range(1000))
    values = {"recency_days": F.floor(F.rand(next(seed)) * 300)}
    values["tenure_days"] = values["recency_days"] + F.floor(F.rand(next(seed)) * 300)
    for metric in ("txn_count", "amount_sum", "quantity_sum", "active_days"):
        running = F.lit(0.0)
        for suffix in [f"{w}d" for w in config.features.windows_days] + ["all"]:
            running = running + F.floor(F.rand(next(seed)) * 5)
            values[f"{metric}_{suffix}"] = running
    columns = [
        (values[name] if name in values else F.rand(next(seed)) * 10).cast("double").alias(name)
        for name in feature_columns(config)
    ]
    return frame.select(
        "customer_id",
        "as_of_date",
        *columns,
        F.lit("bench").alias("feature_run_id"),
        F.lit(0.0).alias("_amount_sq_cents_all"),
    )


def run(rows: int, customers: int) -> dict[str, Any]:
    """Write the gold rows, then time the gold suite on them."""
    from jobs.settings import load
    from jobs.spark import get_spark

    root = tempfile.mkdtemp(prefix="bench-quality-")
    settings = load()
    config = load_model_config("purchase_propensity")
    spark = get_spark("bench-quality", settings=settings)
    first = config.source.first_date + timedelta(days=60)
    try:
        started = time.perf_counter()
        path = f"{root}/gold"
        _gold(spark, config, rows, customers, first).write.format("delta").partitionBy("as_of_date").save(path)
        log.info("wrote %d gold rows in %.1fs", rows, time.perf_counter() - started)
        last = first + timedelta(days=(rows - 1) // customers)
        suites = {name: gate.load_suite(name) for name in gate.DATASETS}
        specs, _ = gate.plan(suites, config, first, last, [])
        # As in gate.run_gate: the gold window is persisted while GX makes its passes over it.
        started = time.perf_counter()
        gold = spark.read.format("delta").load(path).persist()
        try:
            outcomes = gate.validate({"gold": gold}, {"gold": specs["gold"]}, Path(root) / "docs", "bench")
        finally:
            gold.unpersist()
        seconds = time.perf_counter() - started
    finally:
        spark.stop()
        shutil.rmtree(root, ignore_errors=True)
    failed = [f"{o.expectation}({o.column})" for o in outcomes if not o.success]
    return {
        "rows": rows,
        "as_of_dates": (last - first).days + 1,
        "expectations": len(outcomes),
        "failed": failed,
        "seconds": round(seconds, 1),
        "rows_per_second": round(rows / seconds),
        "cores": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m bench.quality [--rows N] [--customers C] [--no-record]``."""
    parser = argparse.ArgumentParser(prog="python -m bench.quality", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--no-record", action="store_true", help="do not append to docs/benchmarks/history.jsonl")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    result = run(args.rows, args.customers)
    print(json.dumps(result, indent=2))
    if not args.no_record:
        report.record(
            "quality-gate",
            {"rows": args.rows, "customers": args.customers},
            result,
            stages={"gx.gold_suite": {"seconds": result["seconds"]}},
            ratios={"rows/s": result["rows_per_second"]},
        )
    return 0 if not result["failed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
