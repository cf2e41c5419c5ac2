"""The data-quality gate without Spark: suites load and name real GX expectations, a run's values fill them in,
unmet conditions skip, and the volume band comes from the trailing median."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from jobs.config import feature_columns, load_model_config
from jobs.quality import gate

D1, D2 = date(1997, 2, 1), date(1997, 2, 2)
HISTORY = [100] * 10  # ten days of 100 rows: band 20..500 with the suite's factors


@pytest.fixture(scope="module")
def config():
    return load_model_config("purchase_propensity")


def test_suites_load_and_name_real_gx_expectations(tmp_path: Path) -> None:
    for name in gate.DATASETS:
        suite = gate.load_suite(name)
        assert suite.dataset == name and suite.expectations
    bad = tmp_path / "silver.yaml"
    bad.write_text("dataset: silver\nexpectations:\n  - {type: expect_column_to_be_lovely, severity: critical}\n")
    with pytest.raises(ValueError, match="expect_column_to_be_lovely is not a Great Expectations"):
        gate.load_suite("silver", tmp_path)
    bad.write_text("dataset: silver\nexpectations:\n  - {type: expect_column_values_to_not_be_null, severity: high}\n")
    with pytest.raises(ValueError, match="severity"):
        gate.load_suite("silver", tmp_path)


def test_plan_fills_the_run_values_and_skips_unmet_conditions(config) -> None:
    suites = {name: gate.load_suite(name) for name in gate.DATASETS}
    specs, skipped = gate.plan(suites, config, D1, D2, HISTORY)
    fresh = next(s for s in specs["bronze"] if s.type == "expect_column_distinct_values_to_contain_set")
    assert fresh.kwargs["value_set"] == ["1997-02-01", "1997-02-02"]
    band = next(s for s in specs["volume"] if s.kwargs["column"] == "landed")
    assert (band.kwargs["min_value"], band.kwargs["max_value"]) == (20.0, 500.0)
    per_feature = [s for s in specs["gold"] if s.type == "expect_column_min_to_be_between"]
    assert {s.kwargs["column"] for s in per_feature} == set(feature_columns(config))

    # Two days of history is no band; the first week of data is not warm enough for the feature-spread checks.
    early = date(1997, 1, 3)
    specs, skipped = gate.plan(suites, config, early, early, [10, 12])
    assert not any(s.kwargs.get("column") == "landed" for s in specs["volume"])
    assert not any(s.type == "expect_column_stdev_to_be_between" for s in specs["gold"])
    assert len(skipped) == 1 + len(feature_columns(config))


def test_volume_band_is_the_trailing_median_times_the_factors() -> None:
    suite = gate.load_suite("volume")
    assert gate.volume_band([100, 120, 80, 100, 90, 110, 300], suite) == (20.0, 500.0)
    assert gate.volume_band([100] * 6, suite) is None
