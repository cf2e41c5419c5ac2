"""Benchmark batch inference: rows scored per second by ``jobs.inference.score``, in the driver and through spark_udf.

For each size, N synthetic gold rows (the reference model's 26 feature columns) are written to Delta in a temp lake,
an XGBoost and a PyTorch model are trained on 20,000 rows and registered in a temp MLflow registry, and each family
scores the N rows both ways: in the driver (what a date of up to ``MLP_SCORE_DRIVER_MAX_ROWS`` rows does) and
through MLflow's spark_udf on the executors (what a larger date does). Each pass ends with a Delta write of the
scores, as the nightly job does. The two ways must give the same scores; the ratio says where the threshold pays.
Prints JSON per size and appends it to docs/benchmarks/history.jsonl.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from typing import Any

from bench import report
from bench.training import synthetic_rows
from jobs import features

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

    from jobs import train

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
    trainer = train.train_xgboost if family == "xgboost" else train.train_pytorch
    model, _ = trainer(data, data, columns, small, "cpu")
    with mlflow.start_run(run_name=f"bench {family}"):
        example = data[columns].head(5)
        logged = mlflow.pyfunc.log_model(
            name="model", python_model=model, signature=infer_signature(example, model.predict(None, example))
        )
    version = mlflow.register_model(logged.model_uri, config.name).version
    return f"models:/{config.name}/{version}"


def run(sizes: list[int]) -> list[dict[str, Any]]:
    """Per size and family: seconds and rows/s to score and write, in the driver and through spark_udf."""
    import mlflow
    import numpy as np

    from jobs import inference
    from jobs.config import load_model_config
    from jobs.settings import load
    from jobs.spark import get_spark

    config = load_model_config(features.DEFAULT_MODEL)
    columns = list(features.feature_columns(config))
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-inference-") as root:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root}/mlflow.db"
        mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
        mlflow.set_experiment("bench-inference")
        settings = load()
        spark = get_spark("bench-inference", settings=settings)
        try:
            uris = {family: _register(config, columns, family) for family in FAMILIES}
            for rows in sizes:
                path = f"{root}/gold-{rows}"
                frame = _frame(rows, columns, 2).drop(columns="label")
                spark.createDataFrame(frame).write.format("delta").save(path)
                del frame
                result: dict[str, Any] = {"rows": rows, "cores": os.cpu_count()}
                for family, uri in uris.items():
                    # Untimed: the first pass of each way loads libraries and warms the JVM's code paths.
                    warm = spark.read.format("delta").load(path).limit(100)
                    for limit in (100, 0):
                        inference.score(warm, uri, columns, driver_max_rows=limit).count()
                    scores = {}
                    for way, limit in (("driver", rows), ("spark_udf", 0)):
                        gold = spark.read.format("delta").load(path)
                        started = time.perf_counter()
                        scored = inference.score(gold, uri, columns, driver_max_rows=limit)
                        out = f"{root}/scores-{rows}-{family}-{way}"
                        scored.select("customer_id", "score").write.format("delta").save(out)
                        seconds = time.perf_counter() - started
                        scores[way] = spark.read.format("delta").load(out).orderBy("customer_id").toPandas()
                        result[f"{family}.{way}"] = {
                            "seconds": round(seconds, 2),
                            "rows_per_second": round(rows / seconds),
                        }
                        log.info("%d rows, %s, %s: %s", rows, family, way, result[f"{family}.{way}"])
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
    ratios.update({f"{key} rows/s": value["rows_per_second"] for key, value in runs.items()})
    stages = {key: {"seconds": value} for key, value in seconds.items()}
    return report.record("inference", {"rows": result["rows"]}, result, stages=stages, ratios=ratios)


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m bench.inference [--rows N ...] [--no-record]``."""
    parser = argparse.ArgumentParser(prog="python -m bench.inference", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--no-record", action="store_true", help="do not append to docs/benchmarks/history.jsonl")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    results = run(args.rows)
    for result in results:
        print(json.dumps(result), flush=True)
        if not args.no_record:
            record(result)
    same = all(r[f"{f}.max_abs_difference"] < 1e-6 for r in results for f in FAMILIES)
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
