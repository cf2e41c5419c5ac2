"""The model every family registers: one MLflow pyfunc whose ``predict`` takes feature columns and returns P(label = 1).

A family subclasses :class:`PropensityModel` with how to rebuild its trained object from the pickled payload and how
to score a float32 matrix; training, evaluation, promotion and scoring only ever see this interface.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import mlflow.pyfunc

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


class PropensityModel(mlflow.pyfunc.PythonModel):
    """The scoring interface of every family: a DataFrame of feature columns in, P(label = 1) out."""

    family = ""
    # The distributions this family needs to load and score, beyond what every family needs (BASE_REQUIREMENTS).
    requirements: tuple[str, ...] = ()

    def __init__(self, columns: list[str], payload: dict[str, Any]) -> None:
        self.columns = columns
        self.payload = payload
        self._model: Any = None

    def build(self) -> Any:
        """The trained object (booster, network...) rebuilt from ``payload``; once per process."""
        raise NotImplementedError

    def score(self, model: Any, x: np.ndarray) -> np.ndarray:
        """Probabilities for the float32 feature matrix ``x`` (NaN = missing)."""
        raise NotImplementedError

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Probabilities for the rows of ``frame``."""
        import numpy as np

        if self._model is None:
            self._model = self.build()
        return self.score(self._model, frame[self.columns].to_numpy(dtype=np.float32, na_value=np.nan))

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> pd.Series:
        """MLflow's pyfunc entry point (context and params are unused: the model carries everything it needs)."""
        import pandas as pd

        return pd.Series(self.predict_proba(model_input), index=model_input.index, name="score")


# What every logged model needs to load: MLflow's pyfunc loader, the pickle, the frames, and this platform's package
# (the model classes live in jobs.ml.families).
BASE_REQUIREMENTS = ("mlflow", "cloudpickle", "numpy", "pandas", "mlplatform")


def pip_requirements(model: PropensityModel) -> list[str]:
    """The model's requirements pinned to the versions installed here (``name==version``), for ``log_model``.

    Given explicitly because MLflow would otherwise infer them by loading the model in a subprocess, which costs
    4-10 s per logged model and can pick up whatever else that import drags in."""
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for name in (*BASE_REQUIREMENTS, *model.requirements):
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            if name != "mlplatform":  # a checkout run without `pip install -e .` (then the code is on the path)
                raise
    return pins


def permutation_importance(model: PropensityModel, frame: pd.DataFrame, columns: list[str], seed: int) -> dict:
    """Drop in validation ROC AUC when one column is shuffled (on up to 20k rows)."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    sample = frame.sample(n=min(len(frame), 20_000), random_state=seed)
    base = roc_auc_score(sample.label, model.predict_proba(sample))
    rng = np.random.default_rng(seed)
    out = {}
    for column in columns:
        shuffled = sample.copy()
        shuffled[column] = rng.permutation(shuffled[column].to_numpy())
        out[column] = float(base - roc_auc_score(sample.label, model.predict_proba(shuffled)))
    return out
