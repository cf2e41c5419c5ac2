"""Champion/challenger evaluation: both models scored on the same recent, matured holdout, overall and by slice.

The evaluation set is the holdout split of the newest training set (the one tagged on the candidate version): the
most recent ``training.holdout_days`` of matured labels at pinned Delta versions, separated from validation by
the label horizon. Neither model chose its hyper-parameters or its family on it, and an older champion was
trained on data that ends before it, so both sides are judged on data they never saw.

``evaluate_scores`` turns labels and scores into an :class:`jobs.ml.gates.Evaluation` (ROC/PR AUC, log loss,
Brier, calibration error, the same per slice from ``promotion.slices``, and the score distribution);
``write_report`` renders the HTML report (``include/reports/evaluation.html``) with plots that the decision e-mail
links and MLflow keeps.
"""

from __future__ import annotations

import base64
import io
import itertools
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs import reports
from jobs.config import ModelConfig
from jobs.ml import trainset
from jobs.ml.gates import Evaluation
from jobs.ml.metrics import evaluate
from jobs.settings import Settings

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

log = logging.getLogger(__name__)


def slice_labels(frame: pd.DataFrame, slices: dict[str, tuple[float, ...]]) -> dict[str, pd.Series]:
    """For each sliced column, a label per row such as ``tenure_days<90`` or ``tenure_days>=365`` (NaN: missing)."""
    import numpy as np
    import pandas as pd

    out = {}
    for column, cuts in slices.items():
        values = frame[column].to_numpy(dtype=float, na_value=np.nan)
        names = [f"{column}<{cuts[0]:g}"]
        names += [f"{column}[{lo:g},{hi:g})" for lo, hi in itertools.pairwise(cuts)]
        names.append(f"{column}>={cuts[-1]:g}")
        which = np.digitize(values, cuts)
        labels = np.asarray(names, dtype=object)[which]
        labels[np.isnan(values)] = f"{column}=missing"
        out[column] = pd.Series(labels, index=frame.index)
    return out


def evaluate_scores(frame: pd.DataFrame, scores: np.ndarray, config: ModelConfig) -> Evaluation:
    """Metrics overall and per slice (slices too small or with one class are left out), and score moments."""
    import numpy as np

    y = frame["label"].to_numpy(dtype=int)
    p = np.asarray(scores, dtype=float)
    gates = config.promotion
    per_slice: dict[str, dict[str, float]] = {}
    for labels in slice_labels(frame, gates.slices).values():
        for name in sorted(labels.unique()):
            mask = (labels == name).to_numpy()
            ys = y[mask]
            if mask.sum() < gates.min_slice_rows or ys.min() == ys.max():
                continue
            per_slice[name] = {**evaluate(ys, p[mask]), "rows": float(mask.sum())}
    return Evaluation(
        metrics={**evaluate(y, p), "rows": float(len(y))},
        slices=per_slice,
        score_mean=float(p.mean()),
        score_std=float(p.std()),
        positive_rate=float(y.mean()),
    )


def evaluation_set(settings: Settings, config: ModelConfig, key: str) -> tuple[dict[str, Any], pd.DataFrame]:
    """(manifest, holdout frame) of the training set ``key``."""
    manifest, sets = trainset.load_training_set(trainset.set_path(settings, config, key))
    holdout = sets["holdout"]
    if holdout.empty or holdout["label"].nunique() < 2:
        raise ValueError(f"training set {key}: the holdout needs rows of both classes to evaluate on")
    return manifest, holdout


def score(model_uri: str, frame: pd.DataFrame) -> np.ndarray:
    """Scores of the registered model at ``model_uri`` (a ``models:/name/version`` URI) for ``frame``."""
    import mlflow.pyfunc
    import numpy as np

    model = mlflow.pyfunc.load_model(model_uri)
    columns = [c.name for c in model.metadata.get_input_schema().inputs]
    return np.asarray(model.predict(frame[columns]), dtype=float)


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    return base64.b64encode(buffer.getvalue()).decode()


def plots(y: np.ndarray, scored: dict[str, np.ndarray], evaluations: dict[str, Evaluation], primary: str) -> list:
    """(title, base64 PNG) pairs: ROC, precision-recall, calibration, score histograms, primary metric by slice."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import precision_recall_curve, roc_curve

    out = []
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for name, p in scored.items():
        fpr, tpr, _ = roc_curve(y, p)
        axes[0].plot(fpr, tpr, label=name)
        precision, recall, _ = precision_recall_curve(y, p)
        axes[1].plot(recall, precision, label=name)
        frac, mean = calibration_curve(y, p, n_bins=10, strategy="quantile")
        axes[2].plot(mean, frac, "o-", label=name)
    axes[0].plot([0, 1], [0, 1], "k--")
    axes[2].plot([0, 1], [0, 1], "k--", label="perfect")
    axes[0].set(title="ROC", xlabel="false positive rate", ylabel="true positive rate")
    axes[1].set(title="precision-recall", xlabel="recall", ylabel="precision")
    axes[2].set(title="calibration", xlabel="mean predicted", ylabel="fraction positive")
    for ax in axes:
        ax.legend()
    fig.tight_layout()
    out.append(("ROC, precision-recall and calibration on the evaluation set", _png(fig)))
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, p in scored.items():
        ax.hist(p, bins=40, range=(0, 1), alpha=0.5, label=name)
    ax.axvline(float(y.mean()), color="k", linestyle="--", label="positive rate")
    ax.set(title="score distribution", xlabel="score", ylabel="rows")
    ax.legend()
    fig.tight_layout()
    out.append(("Score distributions", _png(fig)))
    plt.close(fig)

    names = sorted({s for e in evaluations.values() for s in e.slices})
    if names:
        fig, ax = plt.subplots(figsize=(9, 0.4 * len(names) + 1.5))
        width = 0.8 / len(evaluations)
        for i, (who, e) in enumerate(evaluations.items()):
            values = [e.slices.get(s, {}).get(primary, np.nan) for s in names]
            ax.barh(np.arange(len(names)) + i * width, values, height=width, label=who)
        ax.set_yticks(np.arange(len(names)) + width * (len(evaluations) - 1) / 2, names)
        ax.set(title=f"{primary} by slice", xlabel=primary)
        ax.legend()
        fig.tight_layout()
        out.append((f"{primary} by slice", _png(fig)))
        plt.close(fig)
    return out


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.5f}"


def write_report(path: Path, decision: dict[str, Any], figures: list[tuple[str, str]]) -> Path:
    """The evaluation report: the verdict, every gate, metrics side by side, slices and plots, in one HTML file."""
    sides = [s for s in ("candidate", "champion") if decision.get(s) and decision[s].get("metrics")]
    primary = decision["primary_metric"]
    nan = float("nan")
    metric_names = sorted({m for s in sides for m in decision[s]["metrics"]})
    slice_names = sorted({n for s in sides for n in decision[s].get("slices", {})})

    def on_slice(side: str, name: str) -> str:
        values = decision[side]["slices"].get(name, {})
        return f"{_number(values.get(primary, nan))} ({int(values.get('rows', 0))} rows)"

    evaluated = decision.get("evaluation_set") or {}
    return reports.write_html(
        path,
        "reports/evaluation.html",
        decision=decision,
        primary=primary,
        evaluation_set={
            "key": str(evaluated.get("key")),
            "holdout": " .. ".join(evaluated.get("holdout") or []),
            "rows": evaluated.get("rows"),
        },
        gates=[
            {
                "name": g["name"],
                "passed": g["passed"],
                "observed": _number(g["observed"]),
                "threshold": g["threshold"],
                "detail": g.get("detail", ""),
            }
            for g in decision.get("gates", [])
        ],
        sides=[{"name": s, "version": decision[s]["version"]} for s in sides],
        metrics=[(m, [_number(decision[s]["metrics"].get(m, nan)) for s in sides]) for m in metric_names],
        slices=[(n, [on_slice(s, n) for s in sides]) for n in slice_names],
        figures=[{"title": title, "src": f"data:image/png;base64,{png}"} for title, png in figures],
    )
