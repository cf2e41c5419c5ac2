"""The data-quality gate on Spark: the gate passes on clean CDNOW, fails on corrupted input, and every critical
expectation fails for its own reason (each case breaks one thing in otherwise valid frames). Suites and plans
without Spark: tests/unit/quality/test_gate.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import pytest

from jobs import reports
from jobs.config import feature_columns, load_model_config
from jobs.features import build
from jobs.lake import clean, ingest
from jobs.quality import gate
from jobs.sources import cdnow
from jobs.sources import generate as gen

D1, D2 = date(1997, 2, 1), date(1997, 2, 2)
HISTORY = [100] * 10  # ten days of 100 rows: band 20..500 with the suite's factors


@pytest.fixture(scope="module")
def config():
    return load_model_config("purchase_propensity")


@pytest.fixture(scope="module")
def specs(config) -> dict[str, list[gate.ExpectationSpec]]:
    suites = {name: gate.load_suite(name) for name in gate.DATASETS}
    planned, skipped = gate.plan(suites, config, D1, D2, HISTORY)
    assert skipped == []
    return planned


# --- every critical expectation fails for its own reason -------------------------------------------------------


def _baseline(spark, config) -> dict:
    """Small frames for the window D1..D2 that pass every expectation."""
    from pyspark.sql import functions as F

    bronze = spark.createDataFrame(
        [(d, f"file-{d}", "h", f"line-{d}-{i}", "run") for d in (D1, D2) for i in range(3)],
        "landing_date date, source_file string, header string, raw_line string, ingest_run_id string",
    )
    volume = spark.createDataFrame(
        [(d, 100, 98, 1, 1, 0.01, 0.01) for d in (D1, D2)],
        "landing_date date, landed long, accepted long, duplicates long, quarantined long, "
        "quarantine_share double, duplicate_share double",
    )
    silver = spark.createDataFrame(
        [(f"t{i}", i + 1, d, i % 3 + 1, 10.0 * i, d, f"file-{d}", "run") for i, d in enumerate([D1, D1, D2, D2])],
        "transaction_id string, customer_id long, order_date date, quantity int, amount double, landing_date date, "
        "source_file string, ingest_run_id string",
    )
    rank = {f"{w}d": i + 1 for i, w in enumerate(config.features.windows_days)} | {"all": 9}
    rows = []
    for c in range(1, 5):
        for d in (D1, D2):
            row = {"customer_id": c, "as_of_date": d, "feature_run_id": "run", "_amount_sq_cents_all": 1.0}
            for name in feature_columns(config):
                suffix = name.rsplit("_", 1)[-1]
                row[name] = float(c * rank[suffix]) if suffix in rank else float(c)
            row["tenure_days"] = 10.0 * c
            rows.append(row)
    gold = spark.createDataFrame(rows).withColumn("as_of_date", F.col("as_of_date").cast("date"))
    return {"bronze": bronze, "volume": volume, "silver": silver, "gold": gold}


def _null_first(column: str, key: str, first) -> Callable:
    from pyspark.sql import functions as F

    return lambda f: f.withColumn(column, F.when(F.col(key) == F.lit(first), F.lit(None)).otherwise(F.col(column)))


def _set_first(column: str, key: str, first, value) -> Callable:
    from pyspark.sql import functions as F

    return lambda f: f.withColumn(column, F.when(F.col(key) == F.lit(first), F.lit(value)).otherwise(F.col(column)))


def _gold_row(column: str, value) -> Callable:
    """Change one gold row: customer 1 as of D1."""
    from pyspark.sql import functions as F

    def mutate(frame):
        hit = (F.col("customer_id") == 1) & (F.col("as_of_date") == F.lit(D1))
        return frame.withColumn(column, F.when(hit, F.lit(value)).otherwise(F.col(column)))

    return mutate


def _cases() -> list[tuple[str, str, Callable, set[tuple[str, str]]]]:
    """(dataset, case, mutation, the (expectation, column) failures it must cause and nothing else)."""
    from pyspark.sql import functions as F

    later = D2 + timedelta(days=1)
    return [
        ("bronze", "schema", lambda f: f.drop("header"), {("expect_table_columns_to_match_set", "")}),
        (
            "bronze",
            "freshness",
            lambda f: f.where(F.col("landing_date") == F.lit(D1)),
            {("expect_column_distinct_values_to_contain_set", "landing_date")},
        ),
        (
            "bronze",
            "raw line null",
            _null_first("raw_line", "raw_line", f"line-{D1}-0"),
            {("expect_column_values_to_not_be_null", "raw_line")},
        ),
        (
            "bronze",
            "lineage",
            _null_first("source_file", "raw_line", f"line-{D1}-0"),
            {("expect_column_values_to_not_be_null", "source_file")},
        ),
        (
            "volume",
            "row count out of band",
            _set_first("landed", "landing_date", D2, 5),
            {("expect_column_values_to_be_between", "landed")},
        ),
        (
            "volume",
            "quarantine share",
            _set_first("quarantine_share", "landing_date", D2, 0.2),
            {("expect_column_values_to_be_between", "quarantine_share")},
        ),
        ("silver", "schema", lambda f: f.withColumn("extra", F.lit(1)), {("expect_table_columns_to_match_set", "")}),
        (
            "silver",
            "customer_id type",
            lambda f: f.withColumn("customer_id", F.col("customer_id").cast("int")),
            {("expect_column_values_to_be_of_type", "customer_id")},
        ),
        (
            "silver",
            "order_date type",
            lambda f: f.withColumn("order_date", F.col("order_date").cast("timestamp")),
            {("expect_column_values_to_be_of_type", "order_date")},
        ),
        (
            "silver",
            "amount type",
            lambda f: f.withColumn("amount", F.col("amount").cast("float")),
            {("expect_column_values_to_be_of_type", "amount")},
        ),
        (
            "silver",
            "transaction_id null",
            _null_first("transaction_id", "transaction_id", "t0"),
            {("expect_column_values_to_not_be_null", "transaction_id")},
        ),
        (
            "silver",
            "duplicate transaction",
            _set_first("transaction_id", "transaction_id", "t1", "t0"),
            {("expect_column_values_to_be_unique", "transaction_id")},
        ),
        (
            "silver",
            "customer_id null",
            _null_first("customer_id", "transaction_id", "t0"),
            {("expect_column_values_to_not_be_null", "customer_id")},
        ),
        (
            "silver",
            "customer_id zero",
            _set_first("customer_id", "transaction_id", "t0", 0),
            {("expect_column_values_to_be_between", "customer_id")},
        ),
        (
            "silver",
            "quantity absurd",
            _set_first("quantity", "transaction_id", "t0", 5000),
            {("expect_column_values_to_be_between", "quantity")},
        ),
        (
            "silver",
            "amount negative",
            _set_first("amount", "transaction_id", "t0", -1.0),
            {("expect_column_values_to_be_between", "amount")},
        ),
        (
            "silver",
            "purchase after the logical date",
            lambda f: _set_first("landing_date", "transaction_id", "t3", later)(
                _set_first("order_date", "transaction_id", "t3", later)(f)
            ),
            {("expect_column_values_to_be_between", "order_date")},
        ),
        (
            "silver",
            "landed before it was bought",
            _set_first("order_date", "transaction_id", "t0", D2),
            {("expect_column_pair_values_a_to_be_greater_than_b", "landing_date,order_date")},
        ),
        (
            "gold",
            "customer_id null",
            _null_first("customer_id", "customer_id", 1),
            {("expect_column_values_to_not_be_null", "customer_id")},
        ),
        (
            "gold",
            "as_of_date null",
            lambda f: f.withColumn(
                "as_of_date",
                F.when((F.col("customer_id") == 1) & (F.col("as_of_date") == F.lit(D1)), None).otherwise(
                    F.col("as_of_date")
                ),
            ),
            {("expect_column_values_to_not_be_null", "as_of_date")},
        ),
        (
            "gold",
            "duplicate key",
            lambda f: f.unionByName(f.where("customer_id = 1 AND as_of_date = '1997-02-01'")),
            {("expect_compound_columns_to_be_unique", "customer_id,as_of_date")},
        ),
        (
            "gold",
            "as-of date outside the window",
            _gold_row("as_of_date", later),
            {("expect_column_values_to_be_between", "as_of_date")},
        ),
        (
            "gold",
            "as-of date missing",
            lambda f: f.where(F.col("as_of_date") == F.lit(D1)),
            {("expect_column_distinct_values_to_contain_set", "as_of_date")},
        ),
        (
            "gold",
            "recency beyond tenure",
            _set_first("recency_days", "customer_id", 1, 99.0),
            {("expect_column_pair_values_a_to_be_greater_than_b", "tenure_days,recency_days")},
        ),
        (
            "gold",
            "negative feature",
            _set_first("mean_gap_days", "customer_id", 1, -1.0),
            {("expect_column_min_to_be_between", "mean_gap_days")},
        ),
        (
            "gold",
            "constant feature",
            lambda f: f.withColumn("avg_basket_amount", F.lit(5.0)),
            {("expect_column_stdev_to_be_between", "avg_basket_amount")},
        ),
        (
            "gold",
            "all-null feature",
            lambda f: f.withColumn("last_gap_days", F.lit(None).cast("double")),
            {
                ("expect_column_stdev_to_be_between", "last_gap_days"),
                ("expect_column_min_to_be_between", "last_gap_days"),
            },
        ),
        (
            "gold",
            "shorter window holds more",
            _set_first("txn_count_30d", "customer_id", 1, 50.0),
            {("expect_column_pair_values_a_to_be_greater_than_b", "txn_count_90d,txn_count_30d")},
        ),
    ]


def _case_ids() -> list[str]:
    # The cases need pyspark's functions module, which is fine to import at collection time in this package.
    return [f"{dataset}: {name}" for dataset, name, _, _ in _cases()]


@pytest.fixture(scope="module")
def baseline(spark, config) -> dict:
    return _baseline(spark, config)


def test_the_baseline_frames_pass_every_expectation(baseline, specs, tmp_path: Path) -> None:
    outcomes = gate.validate(baseline, specs, tmp_path / "docs", "baseline")
    assert [o for o in outcomes if not o.success] == []
    assert len(outcomes) == sum(map(len, specs.values()))
    assert (tmp_path / "docs" / "index.html").exists()


@pytest.mark.parametrize("index", range(len(_case_ids())), ids=_case_ids())
def test_each_critical_expectation_fails_for_its_own_reason(index, baseline, specs, tmp_path: Path) -> None:
    dataset, _, mutate, expected = _cases()[index]
    outcomes = gate.validate({dataset: mutate(baseline[dataset])}, {dataset: specs[dataset]}, tmp_path, "case")
    failed = {(o.expectation, o.column) for o in outcomes if not o.success}
    assert failed == expected
    assert all(o.severity == "critical" for o in outcomes if not o.success)


def test_every_critical_expectation_has_a_failing_case(specs) -> None:
    covered = {(dataset, *failure) for dataset, _, _, expected in _cases() for failure in expected}
    templated = {"expect_column_min_to_be_between", "expect_column_stdev_to_be_between"}  # one feature stands for all
    pairs = "expect_column_pair_values_a_to_be_greater_than_b"
    for dataset, dataset_specs in specs.items():
        for spec in dataset_specs:
            if spec.severity != "critical":
                continue
            key = (dataset, spec.type, gate.expectation_column(spec.kwargs))
            if spec.type in templated:
                assert any(c[:2] == key[:2] for c in covered), key
            elif spec.type == pairs and spec.kwargs["column_A"].startswith("txn_count_"):
                assert any(c[:2] == key[:2] and c[2].startswith("txn_count_") for c in covered), key
            else:
                assert key in covered, key


# --- the gate on real stages --------------------------------------------------------------------------------------


def _stages(spark, settings, config, start: date, end: date) -> None:
    ingest.ingest(spark, settings, start, end, "stages")
    clean.clean(spark, settings, start, end, "stages")
    build.build_features(spark, settings, config, start, end, "stages")


def test_gate_passes_on_clean_cdnow_days_and_records_every_expectation(spark, settings, config) -> None:
    first, night = date(1997, 1, 1), date(1997, 2, 5)
    cdnow.replay(settings.landing_root, first, night, cdnow.read_cdnow())
    _stages(spark, settings, config, first, night)

    result = gate.run_gate(spark, settings, config, night, night, "nightly")
    assert result.passed and result.warnings == [] and result.skipped == [], gate.describe(result)
    ops = spark.read.format("delta").load(settings.model_table_path(config.name, gate.QUALITY_TABLE))
    assert ops.count() == len(result.outcomes) > 80
    assert ops.where("NOT success").count() == 0
    summary = json.loads(Path(result.summary_path).read_text())
    assert summary["passed"] and summary["run_id"] == "nightly"
    assert Path(result.report.removeprefix("file://")).exists()

    # A re-run of the window replaces its rows; a backfill window is its own set of rows.
    gate.run_gate(spark, settings, config, night, night, "nightly")
    backfill = gate.run_gate(spark, settings, config, first, night, "backfill")
    assert backfill.passed, gate.describe(backfill)
    ops = spark.read.format("delta").load(settings.model_table_path(config.name, gate.QUALITY_TABLE))
    assert ops.count() == len(result.outcomes) + len(backfill.outcomes)


def test_gate_fails_on_generator_corruption_beyond_the_threshold(spark, settings, config) -> None:
    start = date(1997, 1, 1)
    gen.generate(
        gen.GeneratorConfig(
            out=settings.landing_root,
            rows=6_000,
            customers=300,
            start=start,
            days=20,
            seed=3,
            corrupt_rate=0.15,
            corrupt_kinds=("malformed", "negative_amount", "bad_quantity"),
        )
    )
    night = start + timedelta(days=19)
    _stages(spark, settings, config, start, night)

    result = gate.run_gate(spark, settings, config, night, night, "corrupt")
    with pytest.raises(gate.QualityGateFailed, match=r"volume\.expect_column_values_to_be_between\(quarantine_share\)"):
        gate.enforce(result)
    summary = json.loads(reports.summary_path(settings, "quality", config.name, night, night).read_text())
    assert not summary["passed"]
    failed = {(f["dataset"], f["column"]) for f in summary["critical_failures"]}
    assert failed == {("volume", "quarantine_share")}
    observed = summary["critical_failures"][0]["observed"]
    assert "1 of 1 rows unexpected" in observed


def test_only_versions_that_passed_the_gate_are_published_and_a_failed_window_blocks_the_next(
    spark, settings, config
) -> None:
    from delta.tables import DeltaTable

    from jobs.features import labels

    first, night = date(1997, 1, 1), date(1997, 2, 5)
    bad_night, next_night = night + timedelta(days=1), night + timedelta(days=2)
    cdnow.replay(settings.landing_root, first, next_night, cdnow.read_cdnow())
    _stages(spark, settings, config, first, night)
    labels.build_labels(spark, settings, config, first, night, "stages")
    good = gate.run_gate(spark, settings, config, night, night, "n1")
    assert good.passed, gate.describe(good)
    assert good.versions["features"] is not None  # (no labels have matured by February: no labels table yet)
    assert gate.validated_versions(settings, config.name) == good.versions

    # The next night's features land with a broken row: its gate fails, and its versions are never published.
    _stages(spark, settings, config, bad_night, bad_night)
    gold = DeltaTable.forPath(spark, settings.model_table_path(config.name, build.FEATURES_TABLE))
    (victim,) = gold.toDF().where(f"as_of_date = '{bad_night}'").limit(1).collect()
    gold.update(
        f"as_of_date = '{bad_night}' AND customer_id = {victim.customer_id}", {"recency_days": "tenure_days + 5"}
    )
    bad = gate.run_gate(spark, settings, config, bad_night, bad_night, "n2")
    assert not bad.passed and bad.versions["features"] > good.versions["features"]
    assert gate.validated_versions(settings, config.name) == good.versions, "training pins the last passed versions"

    # The night after lands clean data, but the failed night's rows are in the lake (and its increment carries them
    # on): it does not publish either, and says why.
    _stages(spark, settings, config, next_night, next_night)
    blocked = gate.run_gate(spark, settings, config, next_night, next_night, "n3")
    (history,) = [o for o in blocked.critical_failures if o.dataset == "history"]
    assert history.expectation == "earlier_windows_passed" and f"{bad_night}..{bad_night}" in history.observed
    assert gate.validated_versions(settings, config.name) == good.versions

    # Fixed and re-run, the failed night passes; then the next night publishes its versions.
    build.build_features(spark, settings, config, bad_night, next_night, "fix")
    assert gate.run_gate(spark, settings, config, bad_night, bad_night, "n2-fix").passed
    again = gate.run_gate(spark, settings, config, next_night, next_night, "n3-again")
    assert again.passed, gate.describe(again)
    assert gate.validated_versions(settings, config.name) == again.versions
