"""Benchmark drift detection on N reference + N current rows of 20 numeric columns: Spark profiles vs Evidently.

Both sides are generated in Spark (``spark.range`` + ``rand``/``randn``; four columns drifted in the current side)
and written to Parquet first, so no timing includes generation. Then, each in its own child process:

* spark: ``jobs.monitoring.statistics.drift`` on the two Parquet folders (local[2], 1 GiB driver heap: the
  profiles' memory does not grow with the rows, so neither does the heap);
* evidently: ``pandas.read_parquet`` of both folders and ``jobs.monitoring.statistics.evidently_drift``
  (Evidently 0.7 on every row).

Peak memory is the peak of the summed RSS of the child's whole process tree (the Python driver, its JVM, and the
JVM's Python workers), sampled every 50 ms by this parent process; shared pages count once per process, so the
figure errs high. Seconds are the stage itself (``drift`` / ``evidently_drift``), timed in the child after start-up.
Prints one JSON line per size and appends each, with machine info, to ``docs/benchmarks/history.jsonl``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench import report
from jobs.settings import REPO_ROOT

log = logging.getLogger("bench.drift")

COLUMNS = 20
DRIFTED = {"f00": "mean +0.2 sd", "f05": "lognormal sigma x1.25", "f12": "uniform shifted +5", "f16": "category mix"}
SPARK_OVERRIDES = {
    "spark.ui.enabled": "false",
    "spark.driver.memory": "1g",
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
}


def columns(seed: int, drifted: frozenset[int] = frozenset()) -> list[Any]:
    """20 feature-like columns drawn with ``seed``; the columns whose index is in ``drifted`` move."""
    from pyspark.sql import functions as F

    out = []
    for i in range(COLUMNS):
        rand, randn, moved = F.rand(seed + i), F.randn(seed + i), i in drifted
        if i < 5:  # normal; drift: mean +0.2 sd
            value = randn * (2 + i) + 10 * i + (0.2 * (2 + i) if moved else 0)
        elif i < 9:  # lognormal (heavy right tail); drift: sigma x1.25
            value = F.exp(randn * (1.25 if moved else 1.0) * (0.5 + 0.1 * (i - 5)))
        elif i < 12:  # count-like: geometric, ~30-60 distinct values; drift: mean x1.3
            value = F.floor(-F.log(rand) * (3 + i - 9) * (1.3 if moved else 1.0))
        elif i < 16:  # uniform; drift: shifted +5
            value = rand * 100 + (5 if moved else 0)
        elif i < 18:  # 4 categories (Jensen-Shannon); drift: another mix
            cuts = (0.25, 0.5, 0.75) if moved else (0.1, 0.3, 0.6)
            value = F.when(rand < cuts[0], 0).when(rand < cuts[1], 1).when(rand < cuts[2], 2).otherwise(3)
        elif i == 18:  # nulls
            value = F.when(rand < 0.1, None).otherwise(F.randn(seed + 50))
        else:  # constant
            value = F.lit(1.0)
        out.append(value.cast("double").alias(f"f{i:02d}"))
    return out


def _generate(root: Path, rows: int) -> None:
    from jobs.spark import get_spark

    spark = get_spark("bench-drift-generate", master="local[2]", overrides=SPARK_OVERRIDES)
    try:
        for side in ("reference", "current"):
            moved = frozenset(int(c[1:]) for c in DRIFTED) if side == "current" else frozenset()
            frame = spark.range(rows, numPartitions=max(2, rows // 1_000_000)).select(
                *columns(100 if side == "current" else 0, moved)
            )
            frame.write.mode("overwrite").parquet(str(root / side))
    finally:
        spark.stop()


def _spark_stage(root: Path) -> dict[str, Any]:
    from jobs.monitoring import statistics
    from jobs.spark import get_spark

    spark = get_spark("bench-drift", master="local[2]", overrides=SPARK_OVERRIDES)
    try:
        reference, current = (spark.read.parquet(str(root / side)) for side in ("reference", "current"))
        started = time.perf_counter()
        results = statistics.drift(reference, current, reference.columns)
        seconds = time.perf_counter() - started
    finally:
        spark.stop()
    return {"seconds": seconds, "results": [r.__dict__ for r in results]}


def _evidently_stage(root: Path) -> dict[str, Any]:
    import pandas as pd

    from jobs.monitoring import statistics

    started = time.perf_counter()
    reference, current = (pd.read_parquet(root / side) for side in ("reference", "current"))
    read = time.perf_counter() - started
    started = time.perf_counter()
    results = statistics.evidently_drift(reference, current, list(reference.columns))
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "read_seconds": read, "results": [r.__dict__ for r in results]}


def _child(stage: str, root: Path, rows: int) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if stage == "generate":
        _generate(root, rows)
        result: dict[str, Any] = {}
    elif stage == "spark":
        result = _spark_stage(root)
    else:
        result = _evidently_stage(root)
    print(json.dumps(result), flush=True)
    return 0


def _tree_rss(process: Any) -> dict[str, int]:
    """RSS in bytes of a process and its descendants, split into driver / jvm / others."""
    import psutil

    out = {"driver": 0, "jvm": 0, "others": 0}
    try:
        members = [process, *process.children(recursive=True)]
    except psutil.Error:
        return out
    for member in members:
        try:
            rss = member.memory_info().rss
            role = "driver" if member.pid == process.pid else "jvm" if "java" in member.name() else "others"
        except psutil.Error:
            continue
        out[role] += rss
    return out


def _measure(stage: str, root: Path, rows: int, limit_bytes: int | None = None) -> dict[str, Any]:
    """Run one stage in a child process, sampling its process tree's RSS; kill it above ``limit_bytes``."""
    import psutil

    command = [sys.executable, "-m", "bench.drift", "--child", stage, "--root", str(root), "--rows", str(rows)]
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT)
    peaks = {"total": 0, "driver": 0, "jvm": 0, "others": 0}
    killed = threading.Event()

    def sample() -> None:
        process = psutil.Process(child.pid)
        while child.poll() is None:
            rss = _tree_rss(process)
            total = sum(rss.values())
            peaks["total"] = max(peaks["total"], total)
            for role, value in rss.items():
                peaks[role] = max(peaks[role], value)
            if limit_bytes is not None and total > limit_bytes and not killed.is_set():
                killed.set()
                for member in [*process.children(recursive=True), process]:
                    with contextlib.suppress(psutil.Error):
                        member.kill()
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, _ = child.communicate()
    sampler.join()
    mib = {f"peak_{role}_mib": round(value / 2**20) for role, value in peaks.items()}
    wall = round(time.perf_counter() - started, 1)
    if killed.is_set():
        return {"skipped": f"killed at {mib['peak_total_mib']} MiB (limit {limit_bytes // 2**20} MiB)", **mib}
    if child.returncode != 0:
        return {"skipped": f"child exited {child.returncode}", **mib, "child_wall_s": wall}
    result = json.loads(stdout.strip().splitlines()[-1])
    return {**result, **mib, "child_wall_s": wall}


def _compare(spark: list[dict], evidently: list[dict]) -> dict[str, Any]:
    theirs = {r["column"]: r for r in evidently}
    decision = {r["column"]: (r["method"], r["drifted"]) for r in evidently}
    disagree = [r["column"] for r in spark if (r["method"], r["drifted"]) != decision[r["column"]]]
    errors: dict[str, float] = {}
    for r in spark:
        error = abs(r["score"] - theirs[r["column"]]["score"])
        errors[r["method"]] = max(errors.get(r["method"], 0.0), error)
    return {"disagreements": len(disagree), "disagreeing_columns": disagree, "max_score_abs_error": errors}


def run(rows: int, evidently_max_rows: int, memory_fraction: float) -> dict[str, Any]:
    """Generate N + N rows, then measure the Spark stage and (when it fits) Evidently on all rows."""
    import psutil

    root = Path(tempfile.mkdtemp(prefix="bench-drift-"))
    try:
        generated = _measure("generate", root, rows)
        if "skipped" in generated:
            raise RuntimeError(f"generation failed: {generated['skipped']}")
        spark = _measure("spark", root, rows)
        out: dict[str, Any] = {"rows_per_side": rows, "columns": COLUMNS, "drifted_columns": DRIFTED}
        out["spark"] = {k: (round(v, 1) if k == "seconds" else v) for k, v in spark.items() if k != "results"}
        if rows > evidently_max_rows:
            out["evidently"] = {"skipped": f"--evidently-max-rows {evidently_max_rows}"}
        else:
            limit = int(psutil.virtual_memory().available * memory_fraction)
            evidently = _measure("evidently", root, rows, limit_bytes=limit)
            out["evidently"] = {
                k: (round(v, 1) if k in ("seconds", "read_seconds") else v)
                for k, v in evidently.items()
                if k != "results"
            }
            if "results" in evidently and "results" in spark:
                out["ratios"] = {
                    "seconds": round(evidently["seconds"] / spark["seconds"], 2),
                    "peak_mib": round(evidently["peak_total_mib"] / spark["peak_total_mib"], 2),
                }
                out.update(_compare(spark["results"], evidently["results"]))
        if "results" in spark:
            out["spark_drifted"] = [r["column"] for r in spark["results"] if r["drifted"]]
        return out
    finally:
        shutil.rmtree(root, ignore_errors=True)


def record(result: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Append one size's result to docs/benchmarks/history.jsonl: both engines' seconds and peaks, and the ratios."""
    stages = {
        engine: {"seconds": result[engine]["seconds"], "peak_gib": round(result[engine]["peak_total_mib"] / 1024, 2)}
        for engine in ("spark", "evidently")
        if isinstance(result.get(engine), dict) and "seconds" in result[engine]
    }
    ratios = {f"evidently/spark {k.replace('_mib', '')}": v for k, v in (result.get("ratios") or {}).items()}
    return report.record("drift", params, result, rows=result["rows_per_side"], stages=stages, ratios=ratios)


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m bench.drift [--rows N ...]``; appends each size to docs/benchmarks/history.jsonl."""
    parser = argparse.ArgumentParser(prog="python -m bench.drift", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000], help="rows per side")
    parser.add_argument("--evidently-max-rows", type=int, default=10_000_000, help="skip Evidently above this")
    parser.add_argument(
        "--memory-fraction", type=float, default=0.8, help="kill Evidently above this share of available memory"
    )
    parser.add_argument("--no-record", action="store_true", help="do not append to docs/benchmarks/history.jsonl")
    parser.add_argument("--child", choices=("generate", "spark", "evidently"), help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args.child, args.root, args.rows[0])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    results = []
    for rows in args.rows:
        result = run(rows, args.evidently_max_rows, args.memory_fraction)
        print(json.dumps(result), flush=True)
        results.append(result)
    if not args.no_record:
        for rows, result in zip(args.rows, results, strict=True):
            record(result, {"rows_per_side": rows, "evidently_max_rows": args.evidently_max_rows})
    return 0 if all(r.get("disagreements", 0) == 0 for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
