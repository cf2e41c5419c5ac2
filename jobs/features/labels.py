"""Labels: gold ``labels`` keyed (customer_id, as_of_date): did the customer buy within the horizon after as_of_date.

A label for as_of_date d needs the data through d + horizon, so a run that has data through ``data_end`` writes
labels only for as-of dates up to ``data_end - horizon``. The keys are the customers that have features on d
(the model's features table), so every label has a feature row to join.
"""

from __future__ import annotations

import json
import logging
from datetime import date, timedelta
from typing import TYPE_CHECKING

from jobs import cli
from jobs.config import ModelConfig, load_model_config
from jobs.features.build import FEATURES_TABLE
from jobs.lake.clean import SILVER_TABLE
from jobs.settings import Settings
from jobs.spark import replace_window, run_job

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

LABELS_TABLE = "labels"  # <lake>/models/<model>/labels


def label_window(start: date, end: date, horizon_days: int, first_date: date) -> tuple[date, date] | None:
    """As-of dates whose horizon has fully passed when data covers [start, end]; None when there are none."""
    last = end - timedelta(days=horizon_days)
    first = max(start - timedelta(days=horizon_days), first_date)
    return (first, last) if first <= last else None


def compute_labels(keys: DataFrame, purchases: DataFrame, horizon_days: int, run_id: str) -> DataFrame:
    """label = 1 if the customer has a purchase on a day in (as_of_date, as_of_date + horizon], else 0.

    One range window over the union of keys and purchase days: no per-date scans, no non-equi join.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    day = F.unix_date("day").cast("long")
    rows = keys.select(
        "customer_id", F.col("as_of_date").alias("day"), F.lit(1).alias("is_key"), F.lit(0).alias("bought")
    )
    buys = purchases.select("customer_id", F.col("order_date").alias("day")).distinct()
    union = rows.unionByName(buys.select("customer_id", "day", F.lit(0).alias("is_key"), F.lit(1).alias("bought")))
    ahead = Window.partitionBy("customer_id").orderBy(day).rangeBetween(1, horizon_days)
    return (
        union.withColumn("_future", F.sum("bought").over(ahead))
        .where("is_key = 1")
        .select(
            "customer_id",
            F.col("day").alias("as_of_date"),
            (F.coalesce("_future", F.lit(0)) > 0).cast("int").alias("label"),
            F.lit(horizon_days).alias("horizon_days"),
            F.lit(run_id).alias("label_run_id"),
        )
    )


def build_labels(
    spark: SparkSession, settings: Settings, config: ModelConfig, start: date, end: date, run_id: str
) -> dict[str, object]:
    """Write the labels that the data through ``end`` makes final, replacing their as-of dates."""
    from pyspark.sql import functions as F

    horizon = config.label.horizon_days
    window = label_window(start, end, horizon, config.source.first_date)
    if window is None:
        log.info("no as-of date in %s..%s has a matured %d-day horizon yet", start, end, horizon)
        return {"rows": 0, "as_of_start": None, "as_of_end": None}
    first, last = window
    keys = (
        spark.read.format("delta")
        .load(settings.model_table_path(config.name, FEATURES_TABLE))
        .where((F.col("as_of_date") >= F.lit(first)) & (F.col("as_of_date") <= F.lit(last)))
        .select("customer_id", "as_of_date")
    )
    purchases = (
        spark.read.format("delta")
        .load(settings.table_path(*SILVER_TABLE))
        .where((F.col("order_date") > F.lit(first)) & (F.col("order_date") <= F.lit(last + timedelta(days=horizon))))
    )
    labels = compute_labels(keys, purchases, horizon, run_id)
    window = f"as_of_date >= '{first}' AND as_of_date <= '{last}'"
    rows = replace_window(labels, settings.model_table_path(config.name, LABELS_TABLE), window, "as_of_date")
    log.info("labels for as-of %s..%s (horizon %d days): %d rows", first, last, horizon, rows)
    return {"rows": rows, "as_of_start": first.isoformat(), "as_of_end": last.isoformat()}


def main(argv: list[str] | None = None) -> int:
    """CLI: ``--model NAME --start D [--end D] --run-id ID`` writes the labels matured by data through end."""
    parser = cli.parser("jobs.features.labels", "gold labels")
    cli.add_model(parser)
    cli.add_window(parser)
    args = parser.parse_args(argv)
    config = load_model_config(args.model)
    summary = run_job(
        "labels",
        lambda spark, settings: build_labels(spark, settings, config, *cli.window(args), args.run_id),
    )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
