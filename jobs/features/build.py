"""Gold point-in-time customer features: silver transactions -> one row per (customer_id, as_of_date).

Only purchases with ``order_date <= as_of_date`` contribute, and window ``w`` covers the ``w`` days ending on
``as_of_date`` (``order_date`` in ``(as_of_date - w, as_of_date]``). Windows and trend pairs come from the model
config, so a second model with other windows is a second config file, not new code.

Two ways to the same numbers:

* backfill: purchase-day aggregates per (customer, day) become *change points*: a purchase on day ``t`` enters
  every window at ``t`` and leaves window ``w`` at ``t + w``. Running sums over the change points give every
  feature exactly, and the features are constant between two change points, so the dense (customer, date) rows
  are produced by exploding each constant segment. The heavy lifting happens on O(purchase days x windows) rows;
  the O(customers x dates) output is only generated and written. No scan per date, no shuffle of dense rows.
* increment: features at ``d`` = gold at ``d - 1`` + the aggregates of day ``d`` - those of days ``d - w``
  leaving each window; all-time stats roll forward and new customers appear. Its cost is one day of silver plus
  one row per known customer, independent of the history length.

Money is added up in whole cents (``long``), so sums, means and the standard deviation derive from the same
exact integers on both paths: the increment equals the backfill bit for bit, not merely within a tolerance.
The increment recovers its running state from yesterday's features; the one piece it cannot (the sum of squared
cents behind the standard deviation) is kept in a ``_``-prefixed column.
"""

from __future__ import annotations

import logging
import operator
from datetime import date, timedelta
from functools import reduce
from typing import TYPE_CHECKING, Any

from jobs import cli
from jobs.config import ModelConfig, feature_columns, load_model_config, window_suffixes
from jobs.lake.clean import SILVER_TABLE
from jobs.settings import Settings
from jobs.spark import create_delta_table, delta_history, read_delta, run_job, write_window

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

log = logging.getLogger(__name__)

FEATURES_TABLE = "features"  # <lake>/models/<model>/features
KEY_COLUMNS: tuple[str, ...] = ("customer_id", "as_of_date")

_SQ = "_amount_sq_cents_all"


def state_columns() -> tuple[str, ...]:
    """Columns kept only so tomorrow's increment can roll today's row forward exactly.

    Everything else the increment needs is recovered exactly from the features themselves (see
    ``_state_from_gold``); storing it again would make the largest write of the pipeline ~15% wider.
    """
    return (_SQ,)


def gold_columns(config: ModelConfig) -> tuple[str, ...]:
    """Every column of the gold table, in order."""
    return (*KEY_COLUMNS, *feature_columns(config), "feature_run_id", *state_columns())


def daily_aggregates(silver: DataFrame) -> DataFrame:
    """One row per (customer_id, day) with a purchase: count, cents, squared cents, quantity, largest basket."""
    from pyspark.sql import functions as F

    cents = F.round(F.col("amount") * 100).cast("long")
    return (
        silver.select(
            "customer_id",
            F.col("order_date").alias("day"),
            cents.alias("c"),
            F.col("quantity").cast("long").alias("q"),
        )
        .groupBy("customer_id", "day")
        .agg(
            F.count(F.lit(1)).alias("n"),
            F.sum("c").alias("cents"),
            F.sum(F.col("c") * F.col("c")).alias("cents_sq"),
            F.sum("q").alias("qty"),
            F.max("c").alias("max_cents"),
        )
    )


def _counter_names(suffix: str) -> dict[str, str]:
    """Additive per-window counters and the daily-aggregate column each one sums."""
    return {
        f"txn_count_{suffix}": "n",
        f"_amount_cents_{suffix}": "cents",
        f"quantity_sum_{suffix}": "qty",
        f"active_days_{suffix}": "active",
    }


def _derived(config: ModelConfig) -> list[Column]:
    """Features that follow from the counters and dates; shared by both paths so they agree exactly."""
    from pyspark.sql import functions as F

    col = F.col
    out: list[Column] = [(col(f"_amount_cents_{s}") / 100).alias(f"amount_sum_{s}") for s in window_suffixes(config)]
    n, cents, first, last = (
        col("txn_count_all"),
        col("_amount_cents_all"),
        col("_first_purchase_date"),
        col("_last_purchase_date"),
    )
    active = col("active_days_all")
    out.append(F.when(active > 1, F.datediff(last, first) / (active - 1)).alias("mean_gap_days"))
    out.append(F.datediff(last, col("_prev_purchase_date")).alias("last_gap_days"))
    out.append((cents / (n * 100)).alias("avg_basket_amount"))
    # n * sum(x^2) - sum(x)^2 in exact integers: no cancellation error, so std is 0.0 for a single purchase.
    wide = "decimal(38,0)"
    spread = n.cast(wide) * col(_SQ).cast(wide) - cents.cast(wide) * cents.cast(wide)
    out.append((F.sqrt(spread.cast("double")) / n / 100).alias("std_basket_amount"))
    out.append((col("quantity_sum_all") / n).alias("avg_basket_quantity"))
    for short, long in config.features.trend_pairs:
        rate_short = col(f"txn_count_{short}d") / short
        rate_long = col(f"txn_count_{long}d") / long
        out.append(F.when(col(f"txn_count_{long}d") > 0, rate_short / rate_long).alias(f"trend_{short}_{long}"))
    return out


def _finish(frame: DataFrame, config: ModelConfig, run_id: str) -> DataFrame:
    """Add recency, tenure and lineage, and put the columns in the table's order."""
    from pyspark.sql import functions as F

    return frame.withColumns(
        {
            "recency_days": F.datediff("as_of_date", "_last_purchase_date"),
            "tenure_days": F.datediff("as_of_date", "_first_purchase_date"),
            "feature_run_id": F.lit(run_id),
        }
    ).select(*gold_columns(config))


def compute_backfill(silver_df: DataFrame, start: date, end: date, config: ModelConfig, run_id: str) -> DataFrame:
    """Features for every as_of_date in [start, end] in one job (``silver_df`` must hold the history before start)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    spark = silver_df.sparkSession
    partitions = int(spark.conf.get("spark.sql.shuffle.partitions"))
    windows = config.features.windows_days
    suffixes = window_suffixes(config)
    end_lit, start_lit = F.lit(end), F.lit(start)

    # One shuffle, by customer: every later aggregate and window is per customer and reuses this partitioning.
    # An explicit partition count also keeps adaptive execution from folding the small input into one task,
    # which would leave the dense explode and the write on a single core.
    silver = (
        silver_df.filter(F.col("order_date") <= end_lit)
        .select("customer_id", "order_date", "amount", "quantity")
        .repartition(partitions, "customer_id")
    )
    by_customer = Window.partitionBy("customer_id")
    days = daily_aggregates(silver).withColumns(
        {"active": F.lit(1).cast("long"), "prev_day": F.lag("day").over(by_customer.orderBy("day"))}
    )

    # A purchase day enters every window on its day (offset 0) and leaves window w on day + w.
    offsets = [0, *windows]
    moves = days.select("*", F.explode(F.array(*[F.lit(o) for o in offsets])).alias("offset")).withColumn(
        "point", F.date_add("day", F.col("offset"))
    )
    moves = moves.filter(F.col("point") <= end_lit)
    enter = F.col("offset") == 0
    deltas: list[Column] = []
    for w, suffix in zip([*windows, None], suffixes, strict=True):
        for name, source in _counter_names(suffix).items():
            value = F.when(enter, F.col(source))
            if w is not None:
                value = value.when(F.col("offset") == w, -F.col(source))
            deltas.append(F.sum(value.otherwise(0)).alias(name))
    deltas.append(F.sum(F.when(enter, F.col("cents_sq")).otherwise(0)).alias(_SQ))
    points = moves.groupBy("customer_id", "point").agg(
        *deltas,
        F.max(F.when(enter, F.col("day"))).alias("enter_day"),
        F.max(F.when(enter, F.col("prev_day"))).alias("enter_prev"),
        F.max(F.when(enter, F.col("max_cents"))).alias("enter_max"),
    )

    running = by_customer.orderBy("point").rowsBetween(Window.unboundedPreceding, Window.currentRow)
    ordered = by_customer.orderBy("point")
    counters = [name for suffix in suffixes for name in _counter_names(suffix)] + [_SQ]
    state = points.select(
        "customer_id",
        "point",
        *[F.sum(name).over(running).alias(name) for name in counters],
        # The first change point is always the first purchase; later purchases only raise last/prev/max.
        F.min("enter_day").over(running).alias("_first_purchase_date"),
        F.max("enter_day").over(running).alias("_last_purchase_date"),
        F.max("enter_prev").over(running).alias("_prev_purchase_date"),
        (F.max("enter_max").over(running) / 100).alias("max_basket_amount"),
        F.coalesce(F.date_sub(F.lead("point").over(ordered), 1), end_lit).alias("segment_end"),
    )
    segments = state.withColumns(
        {"segment_from": F.greatest("point", start_lit), "segment_to": F.least("segment_end", end_lit)}
    ).filter(F.col("segment_from") <= F.col("segment_to"))
    segments = segments.select("*", *_derived(config))

    # Hand each task a run of consecutive dates (not a slice of customers), so every date is written as one
    # file by one task instead of one small file per task. Segments crossing a run boundary are split first;
    # the dense rows are then generated where they are written and never shuffled.
    n_days = (end - start).days + 1
    run_days = -(-n_days // min(partitions, n_days))
    runs = -(-n_days // run_days)

    def run_of(day: str) -> Column:
        return F.floor(F.datediff(day, start_lit) / run_days).cast("int")

    pieces = segments.withColumn("run", F.explode(F.sequence(run_of("segment_from"), run_of("segment_to"))))
    pieces = pieces.withColumns(
        {
            "piece_from": F.greatest("segment_from", F.date_add(start_lit, F.col("run") * run_days)),
            "piece_to": F.least("segment_to", F.date_add(start_lit, (F.col("run") + 1) * run_days - 1)),
        }
    ).repartition(runs, F.element_at(F.array(*[F.lit(k) for k in _partition_keys(spark, runs)]), F.col("run") + 1))
    dense = pieces.withColumn("as_of_date", F.explode(F.sequence("piece_from", "piece_to")))
    return _finish(dense, config, run_id)


def _partition_keys(spark: SparkSession, partitions: int) -> list[int]:
    """For each p in [0, partitions), an int that Spark's hash partitioning into ``partitions`` sends to p."""
    # Hash partitioning is pmod(hash(key), n), the same Murmur3 as SQL's hash(); ask Spark instead of re-implementing.
    candidates = spark.range(64 * partitions).selectExpr(
        "CAST(id AS INT) AS key", f"pmod(hash(CAST(id AS INT)), {partitions}) AS target"
    )
    keys: dict[int, int] = {}
    for row in candidates.collect():
        keys.setdefault(row["target"], row["key"])
    if len(keys) < partitions:
        raise RuntimeError(f"no int key found for some of {partitions} hash partitions")
    return [keys[p] for p in range(partitions)]


def increment_days(as_of: date, config: ModelConfig) -> list[date]:
    """The purchase days an increment at ``as_of`` reads: the new day and the day leaving each window."""
    return [as_of, *(as_of - timedelta(days=w) for w in config.features.windows_days)]


def _state_from_gold(gold: DataFrame, as_of: date, config: ModelConfig) -> DataFrame:
    """The running state behind gold's rows of ``as_of``: counters in cents, first/last/previous purchase day."""
    from pyspark.sql import functions as F

    col, day = F.col, F.lit(as_of)
    last = F.date_sub(day, col("recency_days"))
    counters = []
    for suffix in window_suffixes(config):
        for name in _counter_names(suffix):
            if name.startswith("_amount_cents_"):
                # amount_sum is cents / 100 as a double; x100 and rounding gives the cents back exactly while
                # they stay below 2^51 (about $2 * 10^13), far beyond any customer's total.
                counters.append(F.round(col(f"amount_sum_{suffix}") * 100).cast("long").alias(name))
            else:
                counters.append(col(name))
    return gold.filter(col("as_of_date") == day).select(
        "customer_id",
        *counters,
        col(_SQ),
        col("max_basket_amount"),
        F.date_sub(day, col("tenure_days")).alias("_first_purchase_date"),
        last.alias("_last_purchase_date"),
        F.date_sub(last, col("last_gap_days")).alias("_prev_purchase_date"),
    )


def compute_increment(
    prev_gold_df: DataFrame, day_aggregates_df: DataFrame, as_of: date, config: ModelConfig, run_id: str
) -> DataFrame:
    """Features at ``as_of`` from gold at ``as_of - 1`` and ``daily_aggregates`` of ``increment_days(as_of)``."""
    from pyspark.sql import functions as F

    col = F.col
    windows = config.features.windows_days
    prev = _state_from_gold(prev_gold_df, as_of - timedelta(days=1), config)

    # One row per touched customer: what enters today (in_*) and what leaves each window (out<w>_*).
    aggs = day_aggregates_df.filter(col("day").isin(increment_days(as_of, config))).withColumn(
        "active", F.lit(1).cast("long")
    )
    sources = ("n", "cents", "qty", "active")
    moves = [F.sum(F.when(col("day") == F.lit(as_of), col(s))).alias(f"in_{s}") for s in (*sources, "cents_sq")]
    moves.append(F.max(F.when(col("day") == F.lit(as_of), col("max_cents"))).alias("in_max_cents"))
    for w in windows:
        leaving = col("day") == F.lit(as_of - timedelta(days=w))
        moves += [F.sum(F.when(leaving, col(s))).alias(f"out{w}_{s}") for s in sources]
    touched = aggs.groupBy("customer_id").agg(*moves)

    joined = prev.join(touched, "customer_id", "full_outer")
    bought = F.coalesce(col("in_n"), F.lit(0)) > 0
    today = F.lit(as_of)

    def zero(name: str) -> Column:
        return F.coalesce(col(name), F.lit(0).cast("long"))

    rolled: dict[str, Column] = {}
    for w, suffix in zip([*windows, None], window_suffixes(config), strict=True):
        for name, source in _counter_names(suffix).items():
            value = zero(name) + zero(f"in_{source}")
            rolled[name] = value if w is None else value - zero(f"out{w}_{source}")
    rolled[_SQ] = zero(_SQ) + zero("in_cents_sq")
    rolled["_first_purchase_date"] = F.coalesce(col("_first_purchase_date"), today)
    rolled["_prev_purchase_date"] = F.when(bought, col("_last_purchase_date")).otherwise(col("_prev_purchase_date"))
    rolled["_last_purchase_date"] = F.when(bought, today).otherwise(col("_last_purchase_date"))
    # x / 100 is monotonic in x, so the max of the rounded amounts equals the rounded max of the cents.
    rolled["max_basket_amount"] = F.greatest(col("max_basket_amount"), col("in_max_cents") / 100)
    state = joined.select("customer_id", *[value.alias(name) for name, value in rolled.items()])
    return _finish(state.select("*", *_derived(config)).withColumn("as_of_date", today), config, run_id)


def _has_rows(frame: DataFrame) -> bool:
    return bool(frame.limit(1).count())


def build_features(
    spark: SparkSession, settings: Settings, config: ModelConfig, start: date, end: date, run_id: str
) -> dict[str, Any]:
    """Compute and write gold features for [start, end] (replaceWhere on the window); return a summary for XCom.

    A single day whose previous day is in gold rolls forward (increment); anything else is a backfill. A purchase
    that landed on or after ``start`` with an earlier ``order_date`` means yesterday's gold may have missed it,
    so such a day is backfilled from the full history instead: correct, only slower.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import StructField, StructType

    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    silver_path, gold_path = settings.table_path(*SILVER_TABLE), settings.model_table_path(config.name, FEATURES_TABLE)
    silver = read_delta(spark, silver_path)
    if silver is None:
        raise FileNotFoundError(f"silver table not found at {silver_path}; run the clean stage first")
    gold = read_delta(spark, gold_path)
    expected = gold_columns(config)
    if gold is not None and set(gold.columns) != set(expected):
        raise ValueError(
            f"gold table {gold_path} has other feature columns than model {config.name!r} defines "
            f"(windows or trend pairs changed?); write to a fresh table or rebuild it from scratch"
        )

    mode, reason = "backfill", "range" if end > start else "no gold for the previous day"
    if end == start and gold is not None and _has_rows(gold.filter(F.col("as_of_date") == F.lit(start - timedelta(1)))):
        late = silver.filter((F.col("landing_date") >= F.lit(start)) & (F.col("order_date") < F.lit(start)))
        mode, reason = ("backfill", "late-arriving purchases") if _has_rows(late) else ("increment", "")
    log.info("features %s..%s for %s: %s%s", start, end, config.name, mode, f" ({reason})" if reason else "")

    if mode == "increment":
        wanted = increment_days(start, config)
        # landing_date >= order_date (the clean stage rejects future dates) prunes every older partition; an OR of
        # equalities, unlike IN, lets Delta skip the remaining files by their order_date statistics.
        on_wanted_day = reduce(operator.or_, [F.col("order_date") == F.lit(day) for day in wanted])
        days = silver.filter((F.col("landing_date") >= F.lit(min(wanted))) & on_wanted_day)
        features = compute_increment(gold, daily_aggregates(days), start, config, run_id)
    else:
        features = compute_backfill(silver.filter(F.col("order_date") <= F.lit(end)), start, end, config, run_id)

    if gold is None:
        # Statistics only on the key: stats on ~40 feature columns would cost as much CPU as the write itself,
        # and nobody skips files by a feature value.
        create_delta_table(
            spark,
            gold_path,
            StructType([StructField(f.name, f.dataType, nullable=True) for f in features.schema]),
            {"delta.dataSkippingStatsColumns": "customer_id"},
            partition_by="as_of_date",
        )
    version, metrics = write_window(
        features, gold_path, f"as_of_date >= '{start}' AND as_of_date <= '{end}'", "as_of_date"
    )
    summary = {
        "table": gold_path,
        "model": config.name,
        "mode": mode,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "dates": (end - start).days + 1,
        "rows": int(metrics.get("numOutputRows", 0)),
        "files": int(metrics.get("numFiles", 0)),
        # An empty window commits nothing of its own: the table's version is then the one it was read at.
        "version": version if version is not None else int(delta_history(spark, gold_path)[0]["version"]),
        "run_id": run_id,
    }
    log.info(
        "gold features %s..%s: %d rows in %d files (%s, version %d)",
        start,
        end,
        summary["rows"],
        summary["files"],
        mode,
        summary["version"],
    )
    return summary


def main(argv: list[str] | None = None) -> int:
    """CLI: ``--model NAME --start D [--end D] --run-id ID`` builds gold features for the window."""
    parser = cli.parser("jobs.features.build", "silver -> gold customer features")
    cli.add_model(parser)
    cli.add_window(parser)
    args = parser.parse_args(argv)
    config = load_model_config(args.model)
    summary = run_job(
        "features",
        lambda spark, settings: build_features(spark, settings, config, *cli.window(args), args.run_id),
    )
    print(
        f"features {summary['start']}..{summary['end']} ({summary['mode']}): "
        f"{summary['rows']} rows into {summary['table']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
