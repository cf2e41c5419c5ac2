"""Clean: bronze -> silver (typed, validated, deduplicated) with every rejected line quarantined with a reason.

Counts reconcile per landing date and are stored in the ``ops/reconciliation`` table:
``landed = accepted + duplicates + quarantined`` (by reason). The job fails before writing if they do not.
Duplicates are lines whose transaction_id was already accepted, in the same window or in the
``DEDUP_LOOKBACK_DAYS`` landing days before it (re-sends arrive soon after; a bounded lookback keeps the nightly
cost independent of history length). The first accepted copy wins.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING

from jobs import cli
from jobs.config import source_first_date
from jobs.lake.ingest import BRONZE_TABLE
from jobs.settings import Settings
from jobs.sources import landing
from jobs.spark import read_delta, replace_window, run_job

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

log = logging.getLogger(__name__)

SILVER_TABLE = ("silver", "transactions")
QUARANTINE_TABLE = ("quarantine", "transactions")
RECONCILIATION_TABLE = ("ops", "reconciliation")
DEDUP_LOOKBACK_DAYS = 7
ACCEPTED = "accepted"
DUPLICATE = "duplicate"
SILVER_COLUMNS = (
    "transaction_id",
    "customer_id",
    "order_date",
    "quantity",
    "amount",
    "landing_date",
    "source_file",
    "ingest_run_id",
)


def _field(name: str) -> Column:
    """The raw string value of column ``name``, located through the line's own file header."""
    from pyspark.sql import functions as F

    position = F.array_position("_header_cols", name)
    return F.when(position > 0, F.trim(F.try_element_at("_fields", position.cast("int"))))


def parse_fields(bronze: DataFrame) -> DataFrame:
    """Add ``_header_cols`` (the line's header, normalised names) and ``_fields``, both parsed as CSV (RFC 4180).

    A line and header without a double quote split on commas exactly as a CSV parser would, in the JVM; the rest
    (quoted fields, quoted commas, doubled quotes) go through Python's csv module. ``_fields`` is null for a line
    that is not valid CSV (an unterminated quote), which makes it malformed.
    """
    from pyspark.sql import functions as F

    def names(header: Column) -> Column:
        return F.transform(header, lambda name: F.lower(F.trim(name)))

    quoted = F.coalesce(F.col("raw_line").contains('"') | F.col("header").contains('"'), F.lit(False))
    plain = bronze.where(~quoted).select(
        "*",
        names(F.split(F.coalesce("header", F.lit("")), ",", -1)).alias("_header_cols"),
        F.split("raw_line", ",", -1).alias("_fields"),
    )
    csv_line = F.udf(landing.parse_line, "array<string>", useArrow=True)
    with_quotes = bronze.where(quoted).select(
        "*",
        names(F.coalesce(csv_line("header"), F.array().cast("array<string>"))).alias("_header_cols"),
        csv_line("raw_line").alias("_fields"),
    )
    return plain.unionByName(with_quotes)


def classify(bronze: DataFrame, first_date: date | None = None) -> DataFrame:
    """Parse and type every bronze line; ``reason`` is null for a valid line, else the first rule it breaks.
    ``first_date``: orders before it are ``bad_date`` (the silver suite's lower bound, ``source_first_date``)."""
    from pyspark.sql import functions as F

    parsed = parse_fields(bronze)
    missing = F.lit(False)
    for column in landing.COLUMNS:
        missing = missing | (F.array_position("_header_cols", column) == 0)
    tid, cid, odate, qty, amt = (_field(c) for c in landing.COLUMNS)
    typed = parsed.select(
        "*",
        tid.alias("_tid"),
        cid.alias("_cid"),
        cid.try_cast("bigint").alias("_customer_id"),
        F.to_date(F.try_to_timestamp(odate, F.lit("yyyy-MM-dd"))).alias("_order_date"),
        qty.try_cast("int").alias("_quantity"),
        amt.try_cast("double").alias("_amount"),
        odate.alias("_odate_raw"),
    )
    reason = (
        F.when(missing, F.lit(landing.REASON_MISSING_COLUMN))
        .when(
            (F.size("_fields") != F.size("_header_cols")) | F.col("_tid").isNull() | (F.col("_tid") == ""),
            F.lit(landing.REASON_MALFORMED),
        )
        .when(
            ~F.col("_cid").rlike(r"^[0-9]{1,18}$") | F.col("_customer_id").isNull() | (F.col("_customer_id") <= 0),
            F.lit(landing.REASON_BAD_CUSTOMER),
        )
        .when(
            ~F.col("_odate_raw").rlike(r"^\d{4}-\d{2}-\d{2}$")
            | F.col("_order_date").isNull()
            | (F.col("_order_date") < F.lit(first_date) if first_date is not None else F.lit(False)),
            F.lit(landing.REASON_BAD_DATE),
        )
        .when(F.col("_order_date") > F.col("landing_date"), F.lit(landing.REASON_FUTURE_DATE))
        .when(
            F.col("_quantity").isNull() | (F.col("_quantity") < 1) | (F.col("_quantity") > landing.MAX_QUANTITY),
            F.lit(landing.REASON_BAD_QUANTITY),
        )
        .when(
            F.col("_amount").isNull()
            | F.isnan("_amount")
            | (F.col("_amount") < 0)
            | (F.col("_amount") > landing.MAX_AMOUNT),
            F.lit(landing.REASON_BAD_AMOUNT),
        )
    )
    return typed.withColumn("reason", reason).select(
        F.col("_tid").alias("transaction_id"),
        F.col("_customer_id").alias("customer_id"),
        F.col("_order_date").alias("order_date"),
        F.col("_quantity").alias("quantity"),
        F.round("_amount", 2).alias("amount"),
        "landing_date",
        "source_file",
        "raw_line",
        "ingest_run_id",
        "reason",
    )


def judge(classified: DataFrame, already_accepted_ids: DataFrame) -> DataFrame:
    """Add ``outcome``: 'accepted', 'duplicate' (its transaction_id was already accepted) or the quarantine reason."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    seen = already_accepted_ids.select("transaction_id", F.lit(True).alias("_seen")).distinct()
    first = Window.partitionBy("transaction_id").orderBy(
        F.col("reason").asc_nulls_first(), "landing_date", "source_file", "raw_line"
    )
    with_rank = classified.join(seen, "transaction_id", "left").withColumn(
        "_rank", F.when(F.col("reason").isNull(), F.row_number().over(first))
    )
    outcome = (
        F.when(F.col("reason").isNotNull(), F.col("reason"))
        .when(F.col("_seen").isNotNull() | (F.col("_rank") > 1), F.lit(DUPLICATE))
        .otherwise(F.lit(ACCEPTED))
    )
    return with_rank.withColumn("outcome", outcome).drop("_seen", "_rank")


@dataclass(frozen=True)
class CleanResult:
    """Counts for the cleaned window (also stored per landing date in ops.reconciliation)."""

    landed: int
    accepted: int
    duplicates: int
    quarantined: dict[str, int]

    def as_dict(self) -> dict[str, object]:
        """Small and JSON-friendly, for XCom."""
        return {
            "landed": self.landed,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "quarantined": dict(self.quarantined),
        }


def _window(start: date, end: date, column: str = "landing_date") -> str:
    return f"{column} >= '{start}' AND {column} <= '{end}'"


def clean(spark: SparkSession, settings: Settings, start: date, end: date, run_id: str) -> CleanResult:
    """Clean the bronze landing window [start, end] into silver and quarantine; write reconciliation counts."""
    from pyspark.sql import functions as F

    bronze_path = settings.table_path(*BRONZE_TABLE)
    bronze = read_delta(spark, bronze_path)
    if bronze is None:
        raise FileNotFoundError(f"no bronze table at {bronze_path}; run ingest first")
    silver_path = settings.table_path(*SILVER_TABLE)
    silver = read_delta(spark, silver_path)
    lookback = start - timedelta(days=DEDUP_LOOKBACK_DAYS)
    seen = (
        silver.where(f"landing_date >= '{lookback}' AND landing_date < '{start}'").select("transaction_id")
        if silver is not None
        else spark.createDataFrame([], "transaction_id string")
    )
    judged = judge(classify(bronze.where(_window(start, end)), source_first_date()), seen).persist()
    try:
        counted = {row["landing_date"]: row for row in _reconcile(judged, run_id)}
        # Ingest only lands complete days, so a date of the window without rows is one the source declared empty:
        # it is counted as 0 landed (the volume gate judges it), not left out.
        days = (start + timedelta(days=i) for i in range((end - start).days + 1))
        per_day = [counted.get(day) or _count_row(day, {}, run_id) for day in days]
        result = _totals(per_day)
        # The checks run before anything is written: a window that does not add up changes no table.
        written_silver = _write_window(
            judged.where(f"outcome = '{ACCEPTED}'").select(*SILVER_COLUMNS), silver_path, start, end
        )
        quarantine = judged.where("reason IS NOT NULL").select(
            "landing_date", "source_file", "raw_line", "reason", "ingest_run_id", F.lit(run_id).alias("clean_run_id")
        )
        written_quarantine = _write_window(quarantine, settings.table_path(*QUARANTINE_TABLE), start, end)
        if (written_silver, written_quarantine) != (result.accepted, sum(result.quarantined.values())):
            raise RuntimeError(
                f"rows written ({written_silver} silver, {written_quarantine} quarantined) do not match the counts "
                f"({result.accepted}, {sum(result.quarantined.values())}); re-run the window"
            )
        _write_window(spark.createDataFrame(per_day), settings.table_path(*RECONCILIATION_TABLE), start, end)
    finally:
        judged.unpersist()
    log.info(
        "silver %s..%s: landed %d = accepted %d + duplicates %d + quarantined %s",
        start,
        end,
        result.landed,
        result.accepted,
        result.duplicates,
        result.quarantined,
    )
    return result


def _reconcile(judged: DataFrame, run_id: str) -> list[dict]:
    """Per landing date counts; raises if landed != accepted + duplicates + quarantined for any date."""
    counts: dict[date, dict[str, int]] = {}
    for r in judged.groupBy("landing_date", "outcome").count().collect():
        counts.setdefault(r.landing_date, {})[r.outcome] = r["count"]
    rows, broken = [], []
    for day, by_outcome in sorted(counts.items()):
        row = _count_row(day, by_outcome, run_id)
        unknown = set(by_outcome) - {ACCEPTED, DUPLICATE, *landing.REASONS}
        if unknown or row["landed"] != row["accepted"] + row["duplicates"] + row["quarantined"]:
            broken.append({**row, "unknown_outcomes": sorted(map(str, unknown))})
        rows.append(row)
    if broken:
        raise RuntimeError(f"reconciliation failed (landed != accepted + duplicates + quarantined): {broken}")
    return rows


def _count_row(day: date, by_outcome: dict[str, int], run_id: str) -> dict:
    """One landing date's row of ops.reconciliation."""
    return {
        "landing_date": day,
        "landed": sum(by_outcome.values()),
        "accepted": by_outcome.get(ACCEPTED, 0),
        "duplicates": by_outcome.get(DUPLICATE, 0),
        "quarantined": sum(by_outcome.get(reason, 0) for reason in landing.REASONS),
        **{f"quarantined_{reason}": by_outcome.get(reason, 0) for reason in landing.REASONS},
        "run_id": run_id,
    }


def _totals(per_day: list[dict]) -> CleanResult:
    return CleanResult(
        landed=sum(r["landed"] for r in per_day),
        accepted=sum(r["accepted"] for r in per_day),
        duplicates=sum(r["duplicates"] for r in per_day),
        quarantined={
            reason: total for reason in landing.REASONS if (total := sum(r[f"quarantined_{reason}"] for r in per_day))
        },
    )


def _write_window(frame: DataFrame, path: str, start: date, end: date) -> int:
    """Atomically replace the landing-date window of a Delta table (creating it on first write); rows written."""
    return replace_window(frame, path, _window(start, end), "landing_date")


def main(argv: list[str] | None = None) -> int:
    """CLI: ``--start D [--end D] --run-id ID`` cleans a landing window from bronze into silver."""
    import json

    parser = cli.parser("jobs.lake.clean", "bronze -> silver + quarantine")
    cli.add_window(parser)
    args = parser.parse_args(argv)
    result = run_job("clean", lambda spark, settings: clean(spark, settings, *cli.window(args), args.run_id))
    print(json.dumps(result.as_dict()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
