"""Training-set splits without Spark: holdout last, validation before it, a label horizon between each."""

from __future__ import annotations

from datetime import date

import pytest

from jobs.config import load_model_config
from jobs.ml import trainset


@pytest.fixture(scope="module")
def small_config():
    """The reference model with a 30-day horizon and 15-day validation and holdout (as tests/spark/ml/test_train.py)."""
    base = load_model_config("purchase_propensity")
    return base.model_copy(
        update={
            "label": base.label.model_copy(update={"horizon_days": 30}),
            "training": base.training.model_copy(update={"validation_days": 15, "holdout_days": 15}),
        }
    )


def test_split_bounds_leave_a_horizon_between_splits(small_config) -> None:
    split = trainset.split_bounds(date(1997, 1, 1), date(1997, 4, 1), small_config)
    horizon = small_config.label.horizon_days
    assert split.holdout == (date(1997, 3, 18), date(1997, 4, 1))
    assert (split.holdout[0] - split.validation[1]).days > horizon
    assert (split.validation[0] - split.train[1]).days > horizon
    with pytest.raises(ValueError, match="not enough matured labels"):
        trainset.split_bounds(date(1997, 1, 1), date(1997, 2, 1), small_config)
