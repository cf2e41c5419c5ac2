"""Benchmark batch inference: rows/s of ``jobs.serving.batch.score``, in the driver and through spark_udf.

For each size, N synthetic gold rows (the reference model's 26 feature columns) are written to Delta in a temp lake,
an XGBoost and a PyTorch model are trained on 20,000 rows and registered in a temp MLflow registry, and each family
scores the N rows both ways: in the driver (what a date of up to ``MLP_SCORE_DRIVER_MAX_ROWS`` rows does) and
through MLflow's spark_udf on the executors (what a larger date does). Each pass ends with a Delta write of the
scores, as the nightly job does. The two ways must give the same scores.

Two costs per way: warm (``<family>.<way>``: libraries loaded, Python workers started and holding the model, i.e.
throughput) and, at the first size, cold (``<family>.<way>.cold``: the same pass as the first thing a fresh Spark
job does, in a child process, which is what a nightly scoring task pays). The difference is each way's fixed cost,
the reason small dates are scored in the driver. Prints JSON per size and appends it to docs/benchmarks/history.jsonl.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from typing import Any

from bench import harness, report
from bench.training import synthetic_rows
from jobs.config import feature_columns

log = logging.getLogger("bench.inference")

FAMILIES = ("xgboost", "pytorch")


def _frame(rows: int, columns: list[str], seed: int) -> Any:
    """Gold-like rows: customer_id, as_of_date and the training benchmark's synthetic features and label."""
    from datetime import date

    import numpy as np

    frame = synthetic_rows(rows, columns, seed)
    frame.insert(0, "customer_id", np.arange(rows, dtype="int64"))
    frame.insert(1, "as_of_date", date(1998, 6, 1))
    return frame


def _register(config: Any, columns: list[str], family: str) -> str:
    """Train ``family`` on 20,000 synthetic rows, register it; return its ``models:/name/version`` URI."""
    import mlflow
    from mlflow.models import infer_signature

    from jobs.ml import train

    small = config.model_copy(
        update={
            "training": config.training.model_copy(
                update={
                    "xgboost": config.training.xgboost.model_copy(update={"n_estimators": 100}),
                    "pytorch": config.training.pytorch.model_copy(update={"max_epochs": 2}),
                }
            )
        }
    )
    data = _frame(20_000, columns, 1)
    trainer = train.TRAINERS[family]
    model, _ = trainer(data, data, columns, small, "cpu")
    with mlflow.start_run(run_name=f"bench {family}"):
        example = data[columns].head(5)
        logged = mlflow.pyfunc.log_model(
            name="model", python_model=model, signature=infer_signature(example, model.predict(None, example))
        )
    version = mlflow.register_model(logged.model_uri, config.name).version
    return f"models:/{config.name}/{version}"


def _score_and_write(spark: Any, path: str, uri: str, columns: list[str], limit: int, out: str) -> float:
    """Seconds to score the Delta rows at ``path`` (``limit``: jobs.serving.batch's driver_max_rows) and write them."""
    from jobs.serving import batch

    gold = spark.read.format("delta").load(path)
    started = time.perf_counter()
    scored = batch.score(gold, uri, columns, driver_max_rows=limit)
    scored.select("customer_id", "score").write.format("delta").save(out)
    return time.perf_counter() - started


def child(path: str, uri: str, way: str, out: str) -> dict[str, Any]:
    """In a fresh process: start Spark, then time one pass of ``way`` as a nightly scoring task's first work."""
    from jobs.config import load_model_config
    from jobs.spark import get_spark

    columns = list(feature_columns(load_model_config("purchase_propensity")))
    spark = get_spark("bench-inference-cold")
    try:
        spark.read.format("delta").load(path).limit(1).collect()  # the first Delta query, paid by either way
        seconds = _score_and_write(spark, path, uri, columns, 0 if way == "spark_udf" else 2**31 - 2, out)
    finally:
        spark.stop()
    return {"seconds": round(seconds, 2)}


def run(sizes: list[int]) -> list[dict[str, Any]]:
    """Per size and family: seconds and rows/s to score and write, in the driver and through spark_udf."""
    import mlflow
    import numpy as np
    from pyspark.sql import functions as F

    from jobs.config import load_model_config
    from jobs.serving import batch
    from jobs.settings import load
    from jobs.spark import get_spark

    config = load_model_config("purchase_propensity")
    columns = list(feature_columns(config))
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-inference-") as root:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root}/mlflow.db"
        mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
        mlflow.set_experiment("bench-inference")
        settings = load()
        spark = get_spark("bench-inference", settings=settings)
        try:
            cores = spark.sparkContext.defaultParallelism
            uris = {family: _register(config, columns, family) for family in FAMILIES}
            for rows in sizes:
                path = f"{root}/gold-{rows}"
                frame = _frame(rows, columns, 2).drop(columns="label")
                spark.createDataFrame(frame).write.format("delta").save(path)
                del frame
                result: dict[str, Any] = {"rows": rows, "cores": os.cpu_count()}
                for family, uri in uris.items():
                    # Untimed: the first pass of each way loads libraries, warms the JVM's code paths and starts
                    # (and loads the model into) one Python worker per core, as many as the timed pass uses. The
                    # scores are summed, not counted: a count would let Spark prune the UDF and warm nothing.
                    warm = spark.read.format("delta").load(path).limit(1000).repartition(cores)
                    for limit in (1000, 0):
                        batch.score(warm, uri, columns, driver_max_rows=limit).agg(F.sum("score")).collect()
                    scores = {}
                    for way, limit in (("driver", rows), ("spark_udf", 0)):
                        out = f"{root}/scores-{rows}-{family}-{way}"
                        seconds = _score_and_write(spark, path, uri, columns, limit, out)
                        scores[way] = spark.read.format("delta").load(out).orderBy("customer_id").toPandas()
                        result[f"{family}.{way}"] = {
                            "seconds": round(seconds, 2),
                            "rows_per_second": round(rows / seconds),
                        }
                        log.info("%d rows, %s, %s: %s", rows, family, way, result[f"{family}.{way}"])
                        if rows == sizes[0]:
                            cold = harness.run_child("bench.inference", "--child", path, uri, way, f"{out}-cold")
                            result[f"{family}.{way}.cold"] = cold
                            log.info("%d rows, %s, %s, in a fresh job: %s", rows, family, way, cold)
                    gap = np.abs(scores["driver"]["score"].to_numpy() - scores["spark_udf"]["score"].to_numpy())
                    result[f"{family}.max_abs_difference"] = float(gap.max())
                results.append(result)
        finally:
            spark.stop()
    return results


def record(result: dict[str, Any]) -> dict[str, Any]:
    """Append one size to docs/benchmarks/history.jsonl: seconds per (family, way), rows/s, udf/driver ratios."""
    runs = {key: value for key, value in result.items() if isinstance(value, dict)}
    seconds = {key: value["seconds"] for key, value in runs.items()}
    ratios = {f"{f} udf/driver": round(seconds[f"{f}.spark_udf"] / seconds[f"{f}.driver"], 2) for f in FAMILIES}
    ratios.update(
        {
            f"{f} udf/driver cold": round(seconds[f"{f}.spark_udf.cold"] / seconds[f"{f}.driver.cold"], 2)
            for f in FAMILIES
            if f"{f}.driver.cold" in seconds
        }
    )
    ratios.update(
        {f"{key} rows/s": value["rows_per_second"] for key, value in runs.items() if "rows_per_second" in value}
    )
    stages = {key: {"seconds": value} for key, value in seconds.items()}
    return report.record("inference", {"rows": result["rows"]}, result, stages=stages, ratios=ratios)


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m bench.inference [--rows N ...] [--no-record]``."""
    parser = argparse.ArgumentParser(prog="python -m bench.inference", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--no-record", action="store_true", help="do not append to docs/benchmarks/history.jsonl")
    parser.add_argument("--child", nargs=4, metavar=("PATH", "URI", "WAY", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.child:
        print(json.dumps(child(*args.child)), flush=True)
        return 0
    results = run(args.rows)
    for result in results:
        print(json.dumps(result), flush=True)
        if not args.no_record:
            record(result)
    same = all(r[f"{f}.max_abs_difference"] < 1e-6 for r in results for f in FAMILIES)
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
