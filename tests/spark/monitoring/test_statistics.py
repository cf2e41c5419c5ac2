"""Spark drift profiles decide every column as Evidently 0.7 does on all rows, with bounded-size profiles."""

from __future__ import annotations

import json

import pytest

from jobs.monitoring import statistics


def _frame(rows: int, seed: int, drift: bool):
    """Feature-like columns; ``drift`` shifts a mean, scales a spread and changes a category mix."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "gamma": rng.gamma(2.0, 2.6 if drift else 2.0, rows),
            "poisson": rng.poisson(4.0 if drift else 3.0, rows).astype(float),
            "poisson30": rng.poisson(30.0, rows).astype(float),
            "normal": rng.normal(10.6 if drift else 10.0, 3.0, rows),
            "lognormal": rng.lognormal(0.0, 1.0, rows),
            "category": rng.choice([0.0, 1.0, 2.0, 3.0], rows, p=[0.25] * 4 if drift else [0.1, 0.2, 0.3, 0.4]),
            "binary": rng.choice([0.0, 5.0], rows, p=[0.3, 0.7] if drift else [0.5, 0.5]),
            "with_nulls": np.where(rng.random(rows) < 0.2, np.nan, rng.normal(0.0, 1.0, rows)),
            "constant": np.ones(rows),
        }
    )


def _assert_same(spark_results: list, evidently_results: list, expected: set[str] | None = None) -> None:
    assert [r.column for r in spark_results] == [r.column for r in evidently_results]
    for ours, theirs in zip(spark_results, evidently_results, strict=True):
        where = f"{ours.column}: ours {ours}, Evidently {theirs}"
        assert (ours.method, ours.drifted, ours.threshold) == (theirs.method, theirs.drifted, theirs.threshold), where
        assert (ours.reference_rows, ours.current_rows) == (theirs.reference_rows, theirs.current_rows), where
        if ours.method == "wasserstein":
            assert ours.score == pytest.approx(theirs.score, abs=0.01, rel=0.02), where
        elif ours.method == "ks" and ours.current_rows > statistics.EXACT_VALUES:
            # The current CDF comes from a 1001-point grid: compare the statistic D, not the steep p-value.
            assert _ks_statistic(ours) == pytest.approx(_ks_statistic(theirs), abs=0.002), where
        else:  # exact value counts
            assert ours.score == pytest.approx(theirs.score, rel=1e-9, abs=1e-12), where
    if expected is not None:
        assert {r.column for r in spark_results if r.drifted} == expected


def _ks_statistic(result: statistics.ColumnDrift) -> float:
    """D back from scipy's asymptotic two-sided p-value (what ks_2samp uses above 10,000 rows)."""
    from scipy import stats

    n, m = result.reference_rows, result.current_rows
    return float(stats.kstwo.isf(result.score, round(n * m / (n + m))))


@pytest.mark.parametrize(
    ("drift", "expected"),
    [(False, set()), (True, {"gamma", "poisson", "normal", "category", "binary"})],
    ids=["no-drift", "drift"],
)
def test_large_reference_matches_evidently(spark, drift: bool, expected: set[str]) -> None:
    reference, current = _frame(30_000, 1, False), _frame(24_000, 2, drift)
    columns = list(reference.columns)
    ours = statistics.drift(spark.createDataFrame(reference), spark.createDataFrame(current), columns)
    theirs = statistics.evidently_drift(reference, current, columns)
    _assert_same(ours, theirs, expected)
    methods = {r.column: r.method for r in ours}
    assert methods["gamma"] == methods["poisson30"] == methods["with_nulls"] == "wasserstein"
    assert methods["category"] == methods["constant"] == "jensenshannon"
    assert next(r for r in ours if r.column == "with_nulls").reference_rows < 30_000  # nulls dropped


@pytest.mark.parametrize("current_rows", [600, 20_000], ids=["exact-current", "profiled-current"])
def test_small_reference_matches_evidently(spark, current_rows: int) -> None:
    """<= 1000 reference rows: K-S, chi-square and z, with the current side exact or from its quantile grid."""
    reference, current = _frame(800, 3, False), _frame(current_rows, 4, True)
    columns = list(reference.columns)
    ours = statistics.drift(spark.createDataFrame(reference), spark.createDataFrame(current), columns)
    theirs = statistics.evidently_drift(reference, current, columns)
    _assert_same(ours, theirs)
    methods = {r.column: r.method for r in ours}
    assert methods["normal"] == "ks" and methods["category"] == "chisquare" and methods["binary"] == "z"
    assert next(r for r in ours if r.column == "constant").score == 1.0  # Evidently's same-constant z-test


def test_profile_is_fixed_size_and_round_trips_json(spark) -> None:
    small, large = _frame(2_000, 5, False), _frame(40_000, 6, False)
    columns = ["gamma", "poisson", "with_nulls", "constant"]
    by_rows = statistics.profiles([spark.createDataFrame(small), spark.createDataFrame(large)], columns, 101)
    for profiles in by_rows:
        for p in profiles.values():
            assert len(p.quantiles) == 101 and len(p.means) == 100
            assert p.values is None  # > EXACT_VALUES finite values: only the fixed-size summary
            assert p.counts is None or len(p.counts) <= statistics.DISTINCT_CAP
            assert p.quantiles[0] == p.min and p.quantiles[-1] == p.max
            assert _round_trip(p) == p
    # What a profile holds does not grow with the rows: same JSON size within rounding of the numbers.
    for name in columns:
        sizes = [len(json.dumps(profiles[name].to_dict())) for profiles in by_rows]
        assert max(sizes) < 1.2 * min(sizes) + 200, (name, sizes)
    gamma = by_rows[1]["gamma"]
    values = large["gamma"].to_numpy()
    assert gamma.rows == gamma.count == 40_000
    assert gamma.mean == pytest.approx(values.mean(), rel=1e-12)
    assert gamma.std == pytest.approx(values.std(), rel=1e-9)  # population std, as np.std
    nulls = by_rows[1]["with_nulls"]
    assert nulls.rows == 40_000 and nulls.count == int(large["with_nulls"].notna().sum())
    assert by_rows[0]["constant"].counts == ((1.0, 2_000),)


def _round_trip(p: statistics.Profile) -> statistics.Profile:
    return statistics.Profile.from_dict(json.loads(json.dumps(p.to_dict())))
