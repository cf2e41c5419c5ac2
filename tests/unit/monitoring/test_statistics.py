"""Drift statistics without Spark: the quantile sketch and Evidently's empty-column error."""

from __future__ import annotations

import pytest

from jobs.monitoring import statistics


def test_sketch_preserves_the_mean_and_ranks() -> None:
    """Chunked compaction: cell means add up to the exact sum; quantiles within ~1e-4 in rank."""
    import numpy as np

    rng = np.random.default_rng(7)
    x = rng.lognormal(0.0, 1.0, 300_000)
    sketch = statistics.Sketch(4096)
    for start in range(0, len(x), 20_000):
        chunk = np.sort(x[start : start + 20_000])
        sketch.add(*statistics.compact(chunk, np.ones(len(chunk)), 4096))
    values, weights = sketch.result()
    assert weights.sum() == pytest.approx(len(x))
    quantiles, means = statistics.quantile_grid(values, weights, float(x.min()), float(x.max()), 1001)
    assert np.mean(means) == pytest.approx(x.mean(), rel=1e-9)
    ranks = np.searchsorted(np.sort(x), quantiles[1:-1]) / len(x)
    assert np.max(np.abs(ranks - np.linspace(0, 1, 1001)[1:-1])) < 1e-3


def test_empty_column_raises_like_evidently() -> None:
    empty = statistics.Profile("x", 10, 0, None, None, None, None, (), (), (), ())
    full = statistics.Profile("x", 1, 1, 1.0, 0.0, 1.0, 1.0, (1.0, 1.0), (1.0,), ((1.0, 1),), (1.0,))
    with pytest.raises(ValueError, match="empty column"):
        statistics.compare({"x": full}, {"x": empty})
