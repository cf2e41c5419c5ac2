"""Model files: the feature columns a model's windows and trend pairs expand to."""

from __future__ import annotations

from jobs.config import ModelConfig, feature_columns, load_model_config
from jobs.features import build

# The short windows of tests/spark/features/test_build.py.
CONFIG = ModelConfig.model_validate(
    {
        "name": "test_model",
        "source": {"first_date": "2024-01-01"},
        "features": {"windows_days": [3, 7], "trend_pairs": [[3, 7]]},
        "label": {"horizon_days": 5},
    }
)


def test_feature_columns_follow_the_config() -> None:
    names = feature_columns(CONFIG)
    assert names[:2] == ("recency_days", "tenure_days")
    assert names[2:6] == ("txn_count_3d", "amount_sum_3d", "quantity_sum_3d", "active_days_3d")
    assert names[10:14] == ("txn_count_all", "amount_sum_all", "quantity_sum_all", "active_days_all")
    assert names[-1] == "trend_3_7" and not any(n.startswith("_") for n in names)
    reference = feature_columns(load_model_config("purchase_propensity"))
    assert len(set(reference)) == len(reference)
    assert {"txn_count_365d", "trend_30_90", "trend_90_365"} <= set(reference)
    assert all(c.startswith("_") for c in build.state_columns())
