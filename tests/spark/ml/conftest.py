"""The promotion tests' shared lake: a synthetic training set whose holdout is the evaluation set, and the
reference model's config (a test module may tighten or loosen its gates with ``PROMOTION_GATES``)."""

from __future__ import annotations

from datetime import date

import pytest

from jobs.config import load_model_config
from tests.registry_helpers import synthetic_frame, write_training_set


@pytest.fixture(scope="module")
def data():
    return {
        "train": synthetic_frame(6000, 1, date(1997, 3, 1)),
        "holdout": synthetic_frame(6000, 2, date(1997, 9, 1)),
    }


@pytest.fixture()
def registry(request, settings, data):
    """The evaluation set in this test's lake and fresh MLflow store; the module's PROMOTION_GATES applied."""
    config = load_model_config("purchase_propensity")
    gates = getattr(request.module, "PROMOTION_GATES", {})
    config = config.model_copy(update={"promotion": config.promotion.model_copy(update=gates)})
    write_training_set(settings, config, data["train"], data["holdout"])
    return settings, config
