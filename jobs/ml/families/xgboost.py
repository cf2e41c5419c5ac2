"""The XGBoost family: hist gradient boosting with early stopping, registered as a :class:`PropensityModel`."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from jobs.config import ModelConfig
from jobs.ml.pyfunc import PropensityModel

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


class XGBoostModel(PropensityModel):
    """A boosted-trees booster, kept as its JSON bytes and scored on CPU."""

    family = "xgboost"
    requirements = ("xgboost",)

    def build(self) -> Any:
        """The booster from its saved JSON, on CPU (scoring never needs a GPU)."""
        import xgboost as xgb

        booster = xgb.Booster()
        booster.load_model(bytearray(self.payload["booster"]))
        booster.set_param({"device": "cpu"})
        return booster

    def score(self, model: Any, x: np.ndarray) -> np.ndarray:
        """The booster's probabilities; NaN is XGBoost's missing value."""
        import numpy as np
        import xgboost as xgb

        return model.predict(xgb.DMatrix(x, missing=np.nan))


def train(
    train: pd.DataFrame, validation: pd.DataFrame, columns: list[str], config: ModelConfig, on: str
) -> tuple[XGBoostModel, dict[str, Any]]:
    """Hist gradient boosting with early stopping on validation log loss."""
    import numpy as np
    import xgboost as xgb

    c = config.training.xgboost
    params = {
        "objective": "binary:logistic",
        "eval_metric": "logloss",
        "tree_method": "hist",
        "device": on,
        "max_depth": c.max_depth,
        "eta": c.learning_rate,
        "subsample": c.subsample,
        "colsample_bytree": c.colsample_bytree,
        "seed": config.training.seed,
    }
    dtrain = xgb.DMatrix(train[columns].to_numpy(np.float32, na_value=np.nan), label=train.label, missing=np.nan)
    dvalid = xgb.DMatrix(
        validation[columns].to_numpy(np.float32, na_value=np.nan), label=validation.label, missing=np.nan
    )
    started = time.perf_counter()
    booster = xgb.train(
        params,
        dtrain,
        num_boost_round=c.n_estimators,
        evals=[(dvalid, "validation")],
        early_stopping_rounds=c.early_stopping_rounds,
        verbose_eval=50,
    )
    seconds = time.perf_counter() - started
    trained_rounds = booster.num_boosted_rounds()  # what the time paid for, early stopping's extra rounds included
    rounds = booster.best_iteration + 1
    booster = booster[:rounds]  # keep the best iteration only
    gain = booster.get_score(importance_type="gain")
    importance = {name: float(gain.get(f"f{i}", 0.0)) for i, name in enumerate(columns)}
    model = XGBoostModel(columns, {"booster": bytes(booster.save_raw("json"))})
    info = {
        "params": {**params, "num_boost_round": c.n_estimators, "best_rounds": rounds},
        "importance": importance,
        "seconds": seconds,
        "rows_per_second": len(train) * trained_rounds / max(seconds, 1e-9),  # rows x boosting rounds per second
        "epochs_or_rounds": rounds,
    }
    return model, info
