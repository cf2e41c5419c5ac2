"""Benchmark the scale-out path: the gold features job on a Spark standalone cluster (master + 2 workers) vs local mode.

Both runs get the same cores (``--workers`` x 1 core on the cluster, ``local[workers]`` in local mode) and the same
silver (CDNOW, or ``--source synthetic --rows N``), each in its own child process and temp lake: the backfill,
then one nightly increment (day 500). The cluster is ``tooling.cluster.standalone_cluster`` on loopback; its executors
are separate JVMs with their own Python workers, so what the numbers show on one machine is the cost of the
distribution itself (task scheduling, executor start-up, shuffle over the network stack), not a speed-up: that
needs more machines. The gold checksums of both modes must match. Appends to docs/benchmarks/history.jsonl.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from contextlib import ExitStack
from datetime import date
from typing import Any

from bench import harness, report
from jobs.features import build
from jobs.sources import cdnow

log = logging.getLogger("bench.cluster")

DAY500 = date(1998, 5, 16)
EXECUTOR_CONF = {"spark.executor.cores": "1", "spark.executor.memory": "1g", "spark.driver.memory": "1g"}


def child(mode: str, workers: int, source: str, rows: int, customers: int) -> dict[str, Any]:
    """One mode in this process: silver, then the timed backfill and increment; the gold checksum."""
    from bench import harness
    from bench.features import gold_values
    from jobs.config import load_model_config
    from tooling.cluster import standalone_cluster

    config = load_model_config("purchase_propensity")
    out: dict[str, Any] = {"mode": mode, "workers": workers}
    with ExitStack() as stack:
        if mode == "cluster":
            master = stack.enter_context(standalone_cluster(workers=workers, cores=1, memory="1536m"))
            os.environ["MLP_SPARK_MASTER"] = master
            overrides = {**EXECUTOR_CONF, "spark.cores.max": str(workers)}
        else:
            os.environ["MLP_SPARK_MASTER"] = f"local[{workers}]"
            overrides = EXECUTOR_CONF
        spark, settings = stack.enter_context(harness.session(f"bench-cluster-{mode}", overrides=overrides))
        out["silver_rows"] = harness.build_silver(spark, settings, source, rows, customers, {})
        started = time.perf_counter()
        summary = build.build_features(spark, settings, config, cdnow.FIRST_DAY, cdnow.LAST_DAY, "bench-backfill")
        out["backfill"] = {"seconds": round(time.perf_counter() - started, 1), "rows": summary["rows"]}
        started = time.perf_counter()
        build.build_features(spark, settings, config, DAY500, DAY500, "bench-day500")
        out["day500"] = {"seconds": round(time.perf_counter() - started, 2)}
        gold = settings.model_table_path(config.name, build.FEATURES_TABLE)
        values = [c for c in build.gold_columns(config) if c != "feature_run_id"]
        out["checksums"] = {str(day): str(gold_values(spark, gold, day, values)) for day in (date(1997, 6, 1), DAY500)}
    return out


def run(workers: int, source: str, rows: int, customers: int) -> dict[str, Any]:
    """Both modes, each in a child process; the cluster/local ratios and whether gold matched."""
    result: dict[str, Any] = {"source": source, "workers": workers, "cores": os.cpu_count()}
    for mode in ("local", "cluster"):
        args = ["--child", mode, "--workers", str(workers), "--source", source, "--rows", str(rows)]
        args += ["--customers", str(customers)]
        log.info("%s mode: python -m bench.cluster %s", mode, " ".join(args))
        result[mode] = harness.run_child("bench.cluster", *args)
        log.info("%s: %s", mode, {k: v for k, v in result[mode].items() if k != "checksums"})
    result["silver_rows"] = result["local"]["silver_rows"]
    result["equal_gold"] = result["local"]["checksums"] == result["cluster"]["checksums"]
    result["ratios"] = {
        stage: round(result["cluster"][stage]["seconds"] / result["local"][stage]["seconds"], 2)
        for stage in ("backfill", "day500")
    }
    return result


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m bench.cluster [--workers 2] [--source cdnow|synthetic --rows N] [--no-record]``."""
    parser = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--source", choices=("cdnow", "synthetic"), default="cdnow")
    parser.add_argument("--rows", type=int, default=1_000_000, help="synthetic transactions")
    parser.add_argument("--customers", type=int, default=100_000, help="synthetic customers")
    parser.add_argument("--no-record", action="store_true", help="do not append to docs/benchmarks/history.jsonl")
    parser.add_argument("--child", choices=("local", "cluster"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.child:
        print(json.dumps(child(args.child, args.workers, args.source, args.rows, args.customers)), flush=True)
        return 0
    result = run(args.workers, args.source, args.rows, args.customers)
    print(json.dumps(result, indent=2))
    if not args.no_record:
        params = {"workers": args.workers, "source": args.source}
        if args.source == "synthetic":
            params.update(rows=args.rows, customers=args.customers)
        stages = {
            f"{mode}.{stage}": {"seconds": result[mode][stage]["seconds"]}
            for mode in ("local", "cluster")
            for stage in ("backfill", "day500")
        }
        ratios = {f"{stage} cluster/local": ratio for stage, ratio in result["ratios"].items()}
        report.record(
            f"cluster-{args.source}", params, result, rows=result["silver_rows"], stages=stages, ratios=ratios
        )
    return 0 if result["equal_gold"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
