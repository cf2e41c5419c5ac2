"""should_promote: the pure gate function every promotion goes through."""

from __future__ import annotations

import re

from jobs.config import PromotionConfig
from jobs.ml.gates import Evaluation, should_promote

GATES = PromotionConfig(min_primary=0.7, min_lift=0.005, max_slice_drop=0.02, max_calibration_error=0.05)


def _eval(auc: float, calib: float = 0.02, slices: dict | None = None, mean: float = 0.2, std: float = 0.1):
    return Evaluation(
        metrics={"roc_auc": auc, "calibration_error": calib, "log_loss": 0.4},
        slices={k: {"roc_auc": v} for k, v in (slices or {}).items()},
        score_mean=mean,
        score_std=std,
        positive_rate=0.18,
    )


def test_without_a_champion_only_the_absolute_gates_apply() -> None:
    assert should_promote(_eval(0.75), None, GATES, "roc_auc").promote
    decision = should_promote(_eval(0.65), None, GATES, "roc_auc")
    assert not decision.promote and decision.failed == ["min_primary"]
    assert {g.name for g in decision.gates} == {
        "min_primary",
        "max_calibration_error",
        "min_score_std",
        "max_mean_score_gap",
    }


def test_a_worse_or_barely_better_challenger_is_rejected_by_the_lift_gate() -> None:
    champion = _eval(0.80, slices={"new": 0.7, "loyal": 0.85})
    worse = should_promote(_eval(0.79, slices={"new": 0.7, "loyal": 0.85}), champion, GATES, "roc_auc")
    assert not worse.promote and "min_lift" in worse.failed
    barely = should_promote(_eval(0.803, slices={"new": 0.7, "loyal": 0.85}), champion, GATES, "roc_auc")
    assert barely.failed == ["min_lift"]
    better = should_promote(_eval(0.82, slices={"new": 0.71, "loyal": 0.86}), champion, GATES, "roc_auc")
    assert better.promote and better.failed == []


def test_a_slice_worse_than_the_margin_blocks_promotion_even_with_overall_lift() -> None:
    champion = _eval(0.80, slices={"new": 0.70, "loyal": 0.85})
    decision = should_promote(_eval(0.83, slices={"new": 0.65, "loyal": 0.90}), champion, GATES, "roc_auc")
    assert decision.failed == ["max_slice_drop"]
    gate = next(g for g in decision.gates if g.name == "max_slice_drop")
    assert abs(gate.observed - 0.05) < 1e-9 and gate.detail == "worst slice: new"
    missing = should_promote(_eval(0.83), champion, GATES, "roc_auc")
    assert missing.failed == ["max_slice_drop"]


def test_miscalibrated_or_degenerate_scores_are_never_promoted() -> None:
    assert should_promote(_eval(0.9, calib=0.2), None, GATES, "roc_auc").failed == ["max_calibration_error"]
    assert should_promote(_eval(0.9, std=0.0001), None, GATES, "roc_auc").failed == ["min_score_std"]
    assert should_promote(_eval(0.9, mean=0.6), None, GATES, "roc_auc").failed == ["max_mean_score_gap"]


def test_lower_is_better_metrics_count_a_decrease_as_lift() -> None:
    gates = PromotionConfig(min_primary=0.5, min_lift=0.01, max_slice_drop=1.0)
    champion = Evaluation(
        metrics={"log_loss": 0.40, "calibration_error": 0.01}, score_mean=0.2, score_std=0.1, positive_rate=0.18
    )
    challenger = Evaluation(
        metrics={"log_loss": 0.35, "calibration_error": 0.01}, score_mean=0.2, score_std=0.1, positive_rate=0.18
    )
    assert should_promote(challenger, champion, gates, "log_loss").promote
    assert not should_promote(champion, challenger, gates, "log_loss").promote


def _config_with(tmp_path, **promotion):
    import yaml

    from jobs.config import load_model_config
    from jobs.settings import REPO_ROOT

    raw = yaml.safe_load((REPO_ROOT / "include/models/purchase_propensity.yaml").read_text())
    raw["promotion"].update(promotion)
    path = tmp_path / "purchase_propensity.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_model_config(path)


def test_promotion_config_rejects_unknown_slice_columns_and_bad_cuts_by_name(tmp_path) -> None:
    import pytest

    from jobs.config import ConfigError

    assert _config_with(tmp_path).promotion.mode == "enabled"
    with pytest.raises(ConfigError, match=re.escape("promotion.slices name columns that are not features: ['age']")):
        _config_with(tmp_path, slices={"age": [30, 60]})
    with pytest.raises(ConfigError, match=r"promotion\.slices.*ascending"):
        _config_with(tmp_path, slices={"tenure_days": [365, 90]})
    with pytest.raises(ConfigError, match=r"promotion\.mode"):
        _config_with(tmp_path, mode="sometimes")


def test_slices_label_every_row_including_missing_values() -> None:
    import pandas as pd

    from jobs.ml.evaluation import slice_labels

    frame = pd.DataFrame({"tenure_days": [10, 90, 200, 365, 900, None]})
    labels = slice_labels(frame, {"tenure_days": (90.0, 365.0)})["tenure_days"].tolist()
    assert labels == [
        "tenure_days<90",
        "tenure_days[90,365)",
        "tenure_days[90,365)",
        "tenure_days>=365",
        "tenure_days>=365",
        "tenure_days=missing",
    ]
