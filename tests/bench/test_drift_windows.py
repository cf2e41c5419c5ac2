"""Night after night: stable windows raise no alert; injected drift is alerted within k windows, and only once."""

from __future__ import annotations

import pytest

from bench import drift_windows


@pytest.mark.slow
def test_stable_nights_stay_silent_and_injected_drift_alerts_once_within_k_windows(spark) -> None:
    # Small windows here; `make bench` runs the same loop on 30 nights of 1M rows (docs/benchmarks/drift-windows.json).
    result = drift_windows.run(
        rows=20_000, nights=9, drift_from=4, drift_columns=8, model="purchase_propensity", spark=spark
    )
    k = result["policy"]["persistence_k"]
    nights = {r["night"]: r for r in result["nights_log"]}
    assert all(not nights[n]["drifted_columns"] for n in (1, 2, 3)), "stable nights: no column drifts"
    assert result["false_alerts"] == []
    assert result["alerts_on_nights"] == [4 + k - 1], "alerted on the k-th drifted night, then the cooldown holds"
    assert all("cooldown" in nights[n]["reason"] for n in range(4 + k, 10))
    assert set(nights[5]["drifted_columns"]) == set(result["drifted_columns_injected"])
    assert result["ok"]


@pytest.mark.slow
def test_drift_below_the_share_threshold_never_alerts(spark) -> None:
    result = drift_windows.run(
        rows=20_000, nights=6, drift_from=2, drift_columns=4, model="purchase_propensity", spark=spark
    )
    assert all(len(r["drifted_columns"]) == 4 for r in result["nights_log"] if r["injected"])
    assert result["alerts_on_nights"] == [], "4 of 20 columns (20%) is below max_drifted_share 0.3"
