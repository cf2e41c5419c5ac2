"""The drift monitor without Spark: which columns the Evidently report can plot."""

from __future__ import annotations


def test_columns_numpy_cannot_bin_are_left_out_of_the_evidently_plots_only() -> None:
    import numpy as np

    from jobs.monitoring.drift import binnable

    assert binnable(np.array([1.0, 2.0, np.nan]), np.array([3.0]))
    assert binnable(np.array([5.0]), np.array([5.0])), "a constant is drawn as one bar"
    assert not binnable(np.array([1e16, 1e16 + 2]), np.array([1e16])), "range too narrow for its magnitude"
    assert not binnable(np.array([1.0, 2.0]), np.array([1e16, 1e16 + 2])), "either side"
    assert binnable(np.array([1.0, np.inf]), np.array([2.0])), "infinities are dropped, as Evidently does"
