"""The gold customer features in DuckDB SQL on silver's Parquet files: timed next to Spark's and checked equal.

A single-node peer for ``jobs.features.build``: the same columns, types and semantics (point in time, one row per
customer per as-of date from the first purchase on, windows ``(as_of_date - w, as_of_date]``, nulls, ratios and
trends), computed from the Parquet files of silver's current Delta snapshot (listed by Spark with ``inputFiles()``
before any timing, so removed files are never read; DuckDB's delta extension cannot be downloaded here).

* backfill: every as-of date of the data, by the job's own change-point method in SQL (window sums over purchase
  days entering and leaving each window, then one dense row per date of each constant segment);
* night: one as-of date (the last of the data), as one aggregate over the silver history up to it. DuckDB keeps no
  state, so unlike Spark's increment (yesterday's gold rolled forward) its cost grows with the history.

Each DuckDB stage runs in a fresh child process with the default threads (all cores) and writes Parquet
partitioned by as_of_date, the layout of Spark's gold. On CDNOW that write is most of DuckDB's backfill: the same
rows into one unpartitioned file take about a third of the time. DuckDB's seconds are the query and write, its
peak memory the child's max RSS (the interpreter included). Spark's seconds are ``build_features`` (read, compute,
Delta write and commit), its peak the JVM's RSS sampled during the stage (heap grown earlier stays resident, so
it errs high).

The check joins both outputs on (customer_id, as_of_date) in DuckDB: equal row counts, no key on one side only,
the same column names and Parquet types, and per column the same value (nulls equal; floats within 1e-9
relative, and the count of bit-level differences is reported too). ``feature_run_id`` is lineage and differs by
design. Money is summed in whole cents and every float derives from exact integers by the same sequence of IEEE
operations on both engines (integer to double, divisions, a correctly rounded sqrt), so floats are expected to
match bit for bit. The one principled exception would be ``std_basket_amount`` once ``txn_count * sum(cents^2)``
exceeds 2^64: DuckDB converts that HUGEINT to DOUBLE in two halves, Spark the decimal with correct rounding, so the
last bit can differ; it takes some 4 * 10^5 purchases of $100 by one customer.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import resource
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any

from bench import harness, report
from jobs.config import ModelConfig
from jobs.features import build
from jobs.sources import cdnow

log = logging.getLogger("bench.duckdb_features")

NIGHT = cdnow.LAST_DAY
TOLERANCE = 1e-9
LINEAGE = ("feature_run_id",)
_FLOAT_PREFIXES = ("amount_sum_", "mean_gap_days", "avg_", "max_basket", "std_", "trend_")
# Additive per-window counters and the daily column each one sums (as in jobs.features.build).
_COUNTERS = {"txn_count": "n", "_amount_cents": "cents", "quantity_sum": "qty", "active_days": "active"}


def _windows(config: ModelConfig) -> list[tuple[int | None, str]]:
    """(window days or None for all time, column suffix) pairs."""
    return [*((w, f"{w}d") for w in config.features.windows_days), (None, "all")]


def _source(files: list[str]) -> str:
    quoted = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
    return f"read_parquet([{quoted}], hive_partitioning = false)"


def _daily(files: list[str], end: date, with_prev: bool) -> str:
    """Purchase-day aggregates per customer up to ``end``, in whole cents (optionally with the previous day)."""
    prev = ", lag(day) OVER (PARTITION BY customer_id ORDER BY day) AS prev_day" if with_prev else ""
    return f"""
    SELECT *, CAST(1 AS BIGINT) AS active{prev}
    FROM (
        SELECT customer_id, order_date AS day, count(*) AS n, CAST(sum(c) AS BIGINT) AS cents,
               CAST(sum(c * c) AS BIGINT) AS cents_sq, CAST(sum(q) AS BIGINT) AS qty, max(c) AS max_cents
        FROM (
            SELECT customer_id, order_date, CAST(round(amount * 100) AS BIGINT) AS c, CAST(quantity AS BIGINT) AS q
            FROM {_source(files)}
            WHERE order_date <= DATE '{end}'
        )
        GROUP BY customer_id, order_date
    )"""


def _derived(config: ModelConfig) -> list[str]:
    """Features that follow from the counters and purchase dates."""
    out = [f"CAST(_amount_cents_{s} AS DOUBLE) / 100 AS amount_sum_{s}" for _, s in _windows(config)]
    out += [
        "CASE WHEN active_days_all > 1 THEN CAST(last_day - first_day AS DOUBLE) / (active_days_all - 1) END"
        " AS mean_gap_days",
        "CAST(last_day - prev_day AS INTEGER) AS last_gap_days",
        "CAST(_amount_cents_all AS DOUBLE) / (txn_count_all * 100) AS avg_basket_amount",
        "sqrt(CAST(CAST(txn_count_all AS HUGEINT) * _amount_sq_cents_all"
        " - CAST(_amount_cents_all AS HUGEINT) * _amount_cents_all AS DOUBLE)) / txn_count_all / 100"
        " AS std_basket_amount",
        "CAST(quantity_sum_all AS DOUBLE) / txn_count_all AS avg_basket_quantity",
    ]
    for short, long in config.features.trend_pairs:
        out.append(
            f"CASE WHEN txn_count_{long}d > 0 THEN (CAST(txn_count_{short}d AS DOUBLE) / {short})"
            f" / (CAST(txn_count_{long}d AS DOUBLE) / {long}) END AS trend_{short}_{long}"
        )
    return out


def _final(config: ModelConfig, run_id: str) -> str:
    """The gold columns in the table's order, from a relation with as_of_date, counters, dates and derived."""
    special = {
        "recency_days": "CAST(as_of_date - last_day AS INTEGER) AS recency_days",
        "tenure_days": "CAST(as_of_date - first_day AS INTEGER) AS tenure_days",
        "feature_run_id": "'" + run_id.replace("'", "''") + "' AS feature_run_id",
    }
    return ", ".join(special.get(c, c) for c in build.gold_columns(config))


def backfill_sql(files: list[str], start: date, end: date, config: ModelConfig, run_id: str) -> str:
    """Gold rows for every as_of_date in [start, end] (``files`` must hold the history before start)."""
    windows = _windows(config)
    offsets = ", ".join(f"({o})" for o in [0, *config.features.windows_days])
    deltas = []
    for w, suffix in windows:
        for counter, source in _COUNTERS.items():
            leave = f" WHEN offset_days = {w} THEN -{source}" if w is not None else ""
            deltas.append(f"sum(CASE WHEN offset_days = 0 THEN {source}{leave} ELSE 0 END) AS {counter}_{suffix}")
    deltas.append("sum(CASE WHEN offset_days = 0 THEN cents_sq ELSE 0 END) AS _amount_sq_cents_all")
    counters = [f"{c}_{s}" for _, s in windows for c in _COUNTERS] + ["_amount_sq_cents_all"]
    running = "(PARTITION BY customer_id ORDER BY point ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)"
    sums = ", ".join(f"CAST(sum({c}) OVER {running} AS BIGINT) AS {c}" for c in counters)
    return f"""
    WITH daily AS ({_daily(files, end, with_prev=True)}),
    moves AS (
        SELECT daily.*, o.offset_days, day + o.offset_days AS point
        FROM daily, (VALUES {offsets}) AS o(offset_days)
        WHERE day + o.offset_days <= DATE '{end}'
    ),
    points AS (
        SELECT customer_id, point, {", ".join(deltas)},
               max(day) FILTER (WHERE offset_days = 0) AS enter_day,
               max(prev_day) FILTER (WHERE offset_days = 0) AS enter_prev,
               max(max_cents) FILTER (WHERE offset_days = 0) AS enter_max
        FROM moves
        GROUP BY customer_id, point
    ),
    state AS (
        SELECT customer_id, point, {sums},
               min(enter_day) OVER {running} AS first_day,
               max(enter_day) OVER {running} AS last_day,
               max(enter_prev) OVER {running} AS prev_day,
               CAST(max(enter_max) OVER {running} AS DOUBLE) / 100 AS max_basket_amount,
               coalesce(lead(point) OVER (PARTITION BY customer_id ORDER BY point) - 1, DATE '{end}') AS segment_end
        FROM points
    ),
    segments AS (
        SELECT *, {", ".join(_derived(config))}
        FROM (
            SELECT *, greatest(point, DATE '{start}') AS seg_from, least(segment_end, DATE '{end}') AS seg_to
            FROM state
        )
        WHERE seg_from <= seg_to
    ),
    dense AS (
        SELECT *, CAST(seg_from + CAST(unnest(range(seg_to - seg_from + 1)) AS INTEGER) AS DATE) AS as_of_date
        FROM segments
    )
    SELECT {_final(config, run_id)} FROM dense"""


def night_sql(files: list[str], as_of: date, config: ModelConfig, run_id: str) -> str:
    """Gold rows of one as_of_date, aggregated straight from the silver history up to it."""
    sums = []
    for w, suffix in _windows(config):
        for counter, source in _COUNTERS.items():
            value = source if w is None else f"CASE WHEN day > DATE '{as_of}' - {w} THEN {source} ELSE 0 END"
            sums.append(f"CAST(sum({value}) AS BIGINT) AS {counter}_{suffix}")
    return f"""
    WITH daily AS ({_daily(files, as_of, with_prev=False)}),
    state AS (
        SELECT customer_id, DATE '{as_of}' AS as_of_date, {", ".join(sums)},
               CAST(sum(cents_sq) AS BIGINT) AS _amount_sq_cents_all,
               min(day) AS first_day, max(day) AS last_day, max(day, 2)[2] AS prev_day,
               CAST(max(max_cents) AS DOUBLE) / 100 AS max_basket_amount
        FROM daily
        GROUP BY customer_id
    )
    SELECT {_final(config, run_id)} FROM (SELECT *, {", ".join(_derived(config))} FROM state)"""


def write(con: Any, query: str, out: Path) -> float:
    """Run ``query`` into Parquet under ``out`` partitioned by as_of_date; return the seconds it took."""
    # Rows arrive customer-major; sorted by date, the partitioned writer fills one file at a time: ~2x faster on
    # CDNOW, for a higher peak (the sort holds the result: 3.8 GiB against 1.5 GiB).
    ordered = f"SELECT * FROM ({query}) ORDER BY as_of_date"
    started = time.perf_counter()
    con.execute(f"COPY ({ordered}) TO '{out}' (FORMAT parquet, PARTITION_BY (as_of_date), OVERWRITE_OR_IGNORE)")
    return time.perf_counter() - started


def _write_measured(query: str, out: str) -> dict[str, float]:
    """In a fresh process: ``write`` with DuckDB's defaults; seconds and the process's peak RSS."""
    import duckdb

    seconds = write(duckdb.connect(), query, Path(out))
    return {"seconds": seconds, "peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def write_in_child(query: str, out: Path) -> dict[str, float]:
    """``write`` in a spawned child, so its peak memory is its own and no Spark threads compete in-process."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_write_measured, query, str(out)).result()


def _relation(files: list[str]) -> str:
    quoted = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
    return f"read_parquet([{quoted}], hive_partitioning = true, hive_types = {{'as_of_date': DATE}})"


def parquet_files(root: Path) -> list[str]:
    """The Parquet files DuckDB wrote under ``root``."""
    return sorted(str(p) for p in root.rglob("*.parquet"))


def _is_float(column: str) -> bool:
    return column.startswith(_FLOAT_PREFIXES)


def _equal(column: str) -> str:
    s, d = f's."{column}"', f'd."{column}"'
    if not _is_float(column):
        return f"{s} IS NOT DISTINCT FROM {d}"
    close = f"abs({s} - {d}) <= {TOLERANCE} * greatest(abs({s}), abs({d}))"
    return f"CASE WHEN {s} IS NULL OR {d} IS NULL THEN {s} IS NULL AND {d} IS NULL ELSE {close} END"


def compare(con: Any, spark_files: list[str], duckdb_files: list[str], config: ModelConfig) -> dict[str, Any]:
    """Spark's gold rows against DuckDB's: counts, keys, types and every feature value per (customer, date)."""
    con.execute(f"CREATE OR REPLACE TEMP VIEW s AS SELECT * FROM {_relation(spark_files)}")
    con.execute(f"CREATE OR REPLACE TEMP VIEW d AS SELECT * FROM {_relation(duckdb_files)}")
    types = {side: con.execute(f"DESCRIBE {side}").fetchall() for side in ("s", "d")}
    schema = {side: [(row[0], row[1]) for row in rows] for side, rows in types.items()}
    columns = [c for c in build.gold_columns(config) if c not in (*build.KEY_COLUMNS, *LINEAGE)]
    joined = "s FULL OUTER JOIN d ON s.customer_id = d.customer_id AND s.as_of_date = d.as_of_date"
    both = "s.customer_id IS NOT NULL AND d.customer_id IS NOT NULL"
    checks = [
        "count(*) FILTER (WHERE d.customer_id IS NULL)",
        "count(*) FILTER (WHERE s.customer_id IS NULL)",
        *(f"count(*) FILTER (WHERE {both} AND NOT ({_equal(c)}))" for c in columns),
        *(f'count(*) FILTER (WHERE {both} AND s."{c}" IS DISTINCT FROM d."{c}")' for c in columns if _is_float(c)),
    ]
    counts = con.execute(f"SELECT {', '.join(checks)} FROM {joined}").fetchone()
    only_spark, only_duckdb, rest = counts[0], counts[1], counts[2:]
    mismatches = dict(zip(columns, rest[: len(columns)], strict=True))
    inexact = dict(zip([c for c in columns if _is_float(c)], rest[len(columns) :], strict=True))
    keys = "SELECT count(*), count(DISTINCT (customer_id, as_of_date)) FROM "
    rows = {side: con.execute(keys + side).fetchone() for side in ("s", "d")}
    failing = {c: n for c, n in mismatches.items() if n}
    same_schema = schema["s"] == schema["d"]
    duplicates = {"spark": rows["s"][0] - rows["s"][1], "duckdb": rows["d"][0] - rows["d"][1]}
    return {
        "rows_spark": rows["s"][0],
        "rows_duckdb": rows["d"][0],
        "duplicate_keys": duplicates,
        "only_in_spark": only_spark,
        "only_in_duckdb": only_duckdb,
        "same_schema": same_schema,
        "schema": None if same_schema else {"spark": schema["s"], "duckdb": schema["d"]},
        "columns_compared": len(columns),
        "mismatching_columns": failing,
        "examples": {c: _example(con, joined, both, c) for c in failing},
        "float_bit_differences": {c: n for c, n in inexact.items() if n},
        "float_tolerance_relative": TOLERANCE,
        "equal": same_schema and not (failing or only_spark or only_duckdb or any(duplicates.values())),
    }


def _example(con: Any, joined: str, both: str, column: str) -> dict[str, Any]:
    """One (customer_id, as_of_date) where ``column`` differs, with both values."""
    row = con.execute(
        f'SELECT s.customer_id, s.as_of_date, s."{column}", d."{column}" FROM {joined} '
        f"WHERE {both} AND NOT ({_equal(column)}) ORDER BY 1, 2 LIMIT 1"
    ).fetchone()
    return {"customer_id": row[0], "as_of_date": str(row[1]), "spark": row[2], "duckdb": row[3]}


def _spark_stage(spark: Any, settings: Any, config: ModelConfig, start: date, end: date, run_id: str) -> dict:
    """Time ``build_features`` on [start, end] and sample the JVM's RSS while it runs."""
    with harness.peak_rss(harness.jvm_pid(spark)) as peak:
        started = time.perf_counter()
        summary = build.build_features(spark, settings, config, start, end, run_id)
        seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 2), "peak_gib": round(peak["bytes"] / 2**30, 2), "mode": summary["mode"]}


def _duckdb_stage(query: str, out: Path) -> dict[str, Any]:
    measured = write_in_child(query, out)
    return {"seconds": round(measured["seconds"], 2), "peak_gib": round(measured["peak_gib"], 2)}


def _stage(name: str, spark_cost: dict, duckdb_cost: dict, check: dict) -> dict[str, Any]:
    ratio = round(spark_cost["seconds"] / max(duckdb_cost["seconds"], 1e-3), 2)
    log.info(
        "%s: spark %.2fs, duckdb %.2fs, spark/duckdb %.2f, equal %s",
        name,
        spark_cost["seconds"],
        duckdb_cost["seconds"],
        ratio,
        check["equal"],
    )
    return {"spark": spark_cost, "duckdb": duckdb_cost, "spark_over_duckdb": ratio, "check": check}


def run(source: str, rows: int, customers: int, model: str, keep: bool = False) -> dict[str, Any]:
    """Build silver, run Spark's backfill and night, then DuckDB's on the same files, and compare the outputs."""
    import duckdb
    from pyspark.sql import functions as F

    from jobs.config import load_model_config

    config = load_model_config(model)
    work = Path(tempfile.mkdtemp(prefix="bench-duckdb-"))
    try:
        with harness.session("bench-duckdb-features", keep) as (spark, settings):
            result: dict[str, Any] = {"source": source, "model": model, "night_date": NIGHT.isoformat()}
            result["silver_rows"] = harness.build_silver(spark, settings, source, rows, customers, result)
            silver = harness.delta_files(spark, settings.table_path(*build.SILVER_TABLE))
            gold = settings.model_table_path(config.name, build.FEATURES_TABLE)

            spark_backfill = _spark_stage(spark, settings, config, cdnow.FIRST_DAY, NIGHT, "bench-backfill")
            gold_backfill = harness.delta_files(spark, gold)
            spark_night = _spark_stage(spark, settings, config, NIGHT, NIGHT, "bench-night")
            gold_night = harness.delta_files(spark, gold, F.col("as_of_date") == F.lit(NIGHT))

            query = backfill_sql(silver, cdnow.FIRST_DAY, NIGHT, config, "duckdb-backfill")
            duckdb_backfill = _duckdb_stage(query, work / "backfill")
            duckdb_night = _duckdb_stage(night_sql(silver, NIGHT, config, "duckdb-night"), work / "night")

            con = duckdb.connect()
            backfill_check = compare(con, gold_backfill, parquet_files(work / "backfill"), config)
            night_check = compare(con, gold_night, parquet_files(work / "night"), config)
            result["gold_rows"] = backfill_check["rows_spark"]
            result["backfill"] = _stage("backfill", spark_backfill, duckdb_backfill, backfill_check)
            result["night"] = _stage("night", spark_night, duckdb_night, night_check)
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    result["equal"] = result["backfill"]["check"]["equal"] and result["night"]["check"]["equal"]
    return result


def record(result: dict[str, Any], params: dict[str, Any], root: Path) -> dict[str, Any]:
    """Append the run (whole result, per-stage seconds and peaks, spark/duckdb ratios) to the history."""
    name = f"features-duckdb-{result['source']}"
    stages = {
        f"{engine}.{stage}": {k: result[stage][engine][k] for k in ("seconds", "peak_gib")}
        for stage in ("backfill", "night")
        for engine in ("spark", "duckdb")
    }
    ratios = {f"{stage} spark/duckdb": result[stage]["spark_over_duckdb"] for stage in ("backfill", "night")}
    return report.record(name, params, result, rows=result["silver_rows"], stages=stages, ratios=ratios, root=root)


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m bench.duckdb_features --source cdnow|synthetic [--rows N --customers C]``."""
    parser = argparse.ArgumentParser(prog="python -m bench.duckdb_features", description=__doc__.splitlines()[0])
    parser.add_argument("--source", choices=("cdnow", "synthetic"), default="cdnow")
    parser.add_argument("--rows", type=int, default=1_000_000, help="synthetic transactions")
    parser.add_argument("--customers", type=int, default=100_000, help="synthetic customers")
    parser.add_argument("--model", default="purchase_propensity")
    parser.add_argument("--keep", action="store_true", help="keep the temp lake and DuckDB output for inspection")
    parser.add_argument("--results", type=Path, default=report.RESULTS_DIR, help="folder holding history.jsonl")
    parser.add_argument("--no-record", action="store_true", help="do not append to docs/benchmarks/history.jsonl")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    result = run(args.source, args.rows, args.customers, args.model, args.keep)
    params = {"source": args.source, "model": args.model, "night_date": result["night_date"]}
    if args.source == "synthetic":
        params.update(rows=args.rows, customers=args.customers)
    print(json.dumps(result, indent=2, default=str))
    for stage in ("backfill", "night"):
        done = result[stage]
        print(
            f"{stage}: spark {done['spark']['seconds']}s, duckdb {done['duckdb']['seconds']}s, "
            f"spark/duckdb {done['spark_over_duckdb']}, equal {done['check']['equal']}"
        )
    if not args.no_record:
        entry = record(result, params, args.results)
        print(f"recorded: {entry['benchmark']} at {entry['timestamp']} in {args.results / 'history.jsonl'}")
    return 0 if result["equal"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
