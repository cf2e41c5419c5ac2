"""The metric set every model is judged on, which direction is better for each, and the one ``evaluate``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "calibration_error")
LOWER_IS_BETTER = frozenset({"log_loss", "brier", "calibration_error"})  # metrics where a smaller value is better


def gain(new: float, old: float, metric: str) -> float:
    """How much better ``new`` is than ``old`` on ``metric`` (positive = better), whatever the metric's direction."""
    return old - new if metric in LOWER_IS_BETTER else new - old


def better(a: dict[str, float], b: dict[str, float], metric: str) -> bool:
    """True when metrics ``a`` beat ``b`` on ``metric`` (ties keep ``b``)."""
    return gain(a[metric], b[metric], metric) > 0


def reaches(value: float, bar: float, metric: str) -> bool:
    """True when ``value`` is at least as good as ``bar`` on ``metric`` (a floor, or a ceiling for lower-is-better)."""
    return gain(value, bar, metric) >= 0


def calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: the row-weighted gap between mean score and positive rate over score bins."""
    import numpy as np

    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.sum() * abs(p[mask].mean() - y[mask].mean())
    return float(total / len(y))


def evaluate(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """ROC AUC, PR AUC, log loss, Brier score and calibration error of probabilities ``p`` for labels ``y``."""
    from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

    p = p.clip(1e-7, 1 - 1e-7)
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
        "calibration_error": calibration_error(y, p),
    }
