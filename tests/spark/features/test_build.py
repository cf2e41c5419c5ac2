"""Gold features: hand-checked values, no look-ahead, increment == backfill, idempotent re-runs."""

from __future__ import annotations

import random
import statistics
from datetime import date, timedelta

import pytest

from jobs.config import ModelConfig
from jobs.features import build

SILVER_SCHEMA = (
    "transaction_id string, customer_id long, order_date date, quantity int, amount double, "
    "landing_date date, source_file string, ingest_run_id string"
)
# Short windows keep the hand-computed case and the dense output small while exercising every edge.
CONFIG = ModelConfig.model_validate(
    {
        "name": "test_model",
        "source": {"first_date": "2024-01-01"},
        "features": {"windows_days": [3, 7], "trend_pairs": [[3, 7]]},
        "label": {"horizon_days": 5},
    }
)
D = date.fromisoformat


def _silver(spark, purchases):
    """Silver rows from (customer, order_date, quantity, amount[, landing_date]) tuples."""
    rows = []
    for i, p in enumerate(purchases):
        customer, ordered, quantity, amount = p[:4]
        landed = p[4] if len(p) > 4 else ordered
        rows.append((f"t{i:04d}", customer, ordered, quantity, amount, landed, f"f-{landed}", "ingest-1"))
    return spark.createDataFrame(rows, SILVER_SCHEMA)


def _write_silver(frame, settings, mode="overwrite") -> None:
    path = settings.table_path(*build.SILVER_TABLE)
    frame.write.format("delta").mode(mode).partitionBy("landing_date").save(path)


def _gold(spark, settings):
    return spark.read.format("delta").load(settings.model_table_path(CONFIG.name, build.FEATURES_TABLE))


def _rows(frame, drop=("feature_run_id",)) -> dict:
    """{(customer_id, as_of_date): row dict without lineage} for an exact comparison."""
    return {
        (r["customer_id"], r["as_of_date"]): {k: v for k, v in r.asDict().items() if k not in drop}
        for r in frame.collect()
    }


def _random_purchases(seed: int, start: date, days: int) -> list[tuple]:
    rng = random.Random(seed)
    out = []
    for customer in range(1, 9):
        first = rng.randrange(days)
        for offset in sorted(rng.sample(range(first, days), k=min(days - first, rng.randint(1, 6)))):
            for _ in range(rng.choice((1, 1, 2))):  # sometimes two baskets on one day
                out.append((customer, start + timedelta(offset), rng.randint(1, 5), rng.randint(100, 99_999) / 100))
    return out


def test_hand_computed_features(spark) -> None:
    silver = _silver(
        spark,
        [
            (1, D("2024-01-01"), 1, 10.00),
            (1, D("2024-01-01"), 2, 20.50),
            (1, D("2024-01-03"), 1, 5.25),
            (1, D("2024-01-08"), 3, 100.00),
            (2, D("2024-01-05"), 1, 7.00),
            (3, D("2024-01-10"), 1, 1.00),  # after every as-of date: never visible
            (4, D("2023-12-20"), 1, 3.00),
        ],
    )
    got = _rows(build.compute_backfill(silver, D("2024-01-04"), D("2024-01-08"), CONFIG, "run-1"), drop=())
    assert len(got) == 5 + 4 + 5  # customers 1 and 4 on all five dates, 2 from its first purchase on 01-05
    assert {r["feature_run_id"] for r in got.values()} == {"run-1"}

    def check(customer: int, as_of: str, **expected) -> None:
        row = got[(customer, D(as_of))]
        for name, value in expected.items():
            if isinstance(value, float):
                assert row[name] == pytest.approx(value, abs=1e-9), (customer, as_of, name)
            else:
                assert row[name] == value, (customer, as_of, name)

    def counts(suffix: str, txns: int, amount: float, quantity: int, active: int) -> dict:
        return {
            f"txn_count_{suffix}": txns,
            f"amount_sum_{suffix}": amount,
            f"quantity_sum_{suffix}": quantity,
            f"active_days_{suffix}": active,
        }

    # 01-04: the 3-day window (01-02..01-04) holds only 01-03; the 7-day one everything so far.
    check(
        1,
        "2024-01-04",
        recency_days=1,
        tenure_days=3,
        **counts("3d", 1, 5.25, 1, 1),
        **counts("7d", 3, 35.75, 4, 2),
        **counts("all", 3, 35.75, 4, 2),
        mean_gap_days=2.0,
        last_gap_days=2,
        avg_basket_amount=35.75 / 3,
        max_basket_amount=20.5,
        std_basket_amount=statistics.pstdev([10, 20.5, 5.25]),
        avg_basket_quantity=4 / 3,
        trend_3_7=(1 / 3) / (3 / 7),
        _amount_sq_cents_all=1000**2 + 2050**2 + 525**2,
    )
    # 01-08: 01-01 has just left the 7-day window (01-02..01-08).
    check(
        1,
        "2024-01-08",
        recency_days=0,
        tenure_days=7,
        **counts("3d", 1, 100.0, 3, 1),
        **counts("7d", 2, 105.25, 4, 2),
        **counts("all", 4, 135.75, 7, 3),
        mean_gap_days=3.5,
        last_gap_days=5,
        avg_basket_amount=135.75 / 4,
        max_basket_amount=100.0,
        std_basket_amount=statistics.pstdev([10, 20.5, 5.25, 100]),
        avg_basket_quantity=7 / 4,
        trend_3_7=(1 / 3) / (2 / 7),
    )
    check(
        2,
        "2024-01-08",
        recency_days=3,
        tenure_days=3,
        **counts("3d", 0, 0.0, 0, 0),
        **counts("7d", 1, 7.0, 1, 1),
        **counts("all", 1, 7.0, 1, 1),
        mean_gap_days=None,
        last_gap_days=None,
        avg_basket_amount=7.0,
        max_basket_amount=7.0,
        std_basket_amount=0.0,
        avg_basket_quantity=1.0,
        trend_3_7=0.0,
    )
    check(
        4,
        "2024-01-04",
        recency_days=15,
        tenure_days=15,
        **counts("7d", 0, 0.0, 0, 0),
        **counts("all", 1, 3.0, 1, 1),
        trend_3_7=None,
        std_basket_amount=0.0,
        last_gap_days=None,
    )
    assert (2, D("2024-01-04")) not in got and not any(key[0] == 3 for key in got)


def test_features_as_of_a_date_ignore_later_purchases(spark) -> None:
    start, cut, end = D("2024-01-01"), D("2024-01-15"), D("2024-01-25")
    history = _random_purchases(3, start, 16)
    before = [p for p in history if p[1] <= cut]
    later = [p for p in history if p[1] > cut] + [(1, cut + timedelta(1), 2, 50.0), (99, cut + timedelta(3), 1, 9.99)]
    assert later and before
    known = build.compute_backfill(_silver(spark, before), start, end, CONFIG, "r")
    full = build.compute_backfill(_silver(spark, before + later), start, end, CONFIG, "r")
    cut_lit = f"as_of_date <= '{cut}'"
    known_rows, full_rows = _rows(known.filter(cut_lit)), _rows(full.filter(cut_lit))
    assert known_rows and known_rows == full_rows


def test_nightly_increment_equals_backfill(spark, settings) -> None:
    start, day = D("2024-01-01"), D("2024-01-20")
    purchases = _random_purchases(11, start, 20)
    purchases += [
        (1, day, 2, 12.34),  # buys today, and ...
        (1, day - timedelta(3), 1, 5.00),  # ... a day leaving the 3-day window
        (2, day - timedelta(7), 1, 8.50),  # a day leaving the 7-day window
        (2, day - timedelta(7), 3, 1.01),
        (50, day, 1, 99.99),  # a brand-new customer
        (50, day, 4, 0.01),
    ]
    _write_silver(_silver(spark, purchases), settings)
    assert build.build_features(spark, settings, CONFIG, start, day - timedelta(1), "bf")["mode"] == "backfill"
    summary = build.build_features(spark, settings, CONFIG, day, day, "inc")
    assert summary["mode"] == "increment"
    silver = spark.read.format("delta").load(settings.table_path(*build.SILVER_TABLE))
    expected = _rows(build.compute_backfill(silver, day, day, CONFIG, "x"))
    got = _rows(_gold(spark, settings).filter(f"as_of_date = '{day}'"))
    assert summary["rows"] == len(expected) == len(got)
    assert got == expected  # exact, floats included: both paths derive from the same integer cents

    # A purchase for an earlier day that lands late: yesterday's gold missed it, so the night backfills; the
    # late purchase counts from the night it arrived on, and yesterday's row keeps what was known then.
    late_day, nxt = day - timedelta(2), day + timedelta(1)
    _write_silver(_silver(spark, [(1, late_day, 1, 4.00, nxt)]), settings, mode="append")
    assert build.build_features(spark, settings, CONFIG, nxt, nxt, "late")["mode"] == "backfill"
    rows = {r["as_of_date"]: r for r in _gold(spark, settings).filter("customer_id = 1").collect()}
    assert rows[nxt]["txn_count_all"] == rows[day]["txn_count_all"] + 1
    assert rows[nxt]["amount_sum_all"] == pytest.approx(rows[day]["amount_sum_all"] + 4.00, abs=1e-9)


def _fingerprint(spark, settings) -> tuple:
    """Rows, distinct keys, checksums over all columns and over the values alone, and the dates run "r2" wrote."""
    from pyspark.sql import functions as F

    everything = build.gold_columns(CONFIG)
    values = [c for c in everything if c != "feature_run_id"]
    row = (
        _gold(spark, settings)
        .agg(
            F.count(F.lit(1)),
            F.countDistinct("customer_id", "as_of_date"),
            F.sum(F.xxhash64(*everything).cast("decimal(38,0)")),
            F.sum(F.xxhash64(*values).cast("decimal(38,0)")),
            F.array_sort(F.collect_set(F.when(F.col("feature_run_id") == "r2", F.col("as_of_date")))),
        )
        .first()
    )
    return tuple(row)


def test_rerunning_a_range_replaces_it_exactly(spark, settings) -> None:
    start, end = D("2024-01-01"), D("2024-01-12")
    _write_silver(_silver(spark, _random_purchases(5, start, 12)), settings)
    first = build.build_features(spark, settings, CONFIG, start, end, "r1")
    once = _fingerprint(spark, settings)
    again = build.build_features(spark, settings, CONFIG, start, end, "r1")
    assert again == {**first, "version": first["version"] + 1}
    assert _fingerprint(spark, settings) == once
    rows, keys, _, values, _ = once
    assert rows == keys == first["rows"] > 0

    # Re-running part of the window replaces just those dates: same values, new lineage, no duplicates.
    part = build.build_features(spark, settings, CONFIG, D("2024-01-05"), D("2024-01-07"), "r2")
    assert part["mode"] == "backfill" and 0 < part["rows"] < rows
    after = _fingerprint(spark, settings)
    assert (after[0], after[1], after[3]) == (rows, keys, values) and after[2] != once[2]
    assert after[4] == [D("2024-01-05"), D("2024-01-06"), D("2024-01-07")]
