"""Promotion gates as a pure function: every gate's result, so a rejection says which gate failed and by how much."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from jobs.config import PromotionConfig
from jobs.ml.metrics import gain, reaches


@dataclass(frozen=True)
class Evaluation:
    """One model's results on the evaluation set: overall metrics, metrics per slice, score distribution."""

    metrics: dict[str, float]
    slices: dict[str, dict[str, float]] = field(default_factory=dict)
    score_mean: float = 0.0
    score_std: float = 0.0
    positive_rate: float = 0.0


@dataclass(frozen=True)
class GateResult:
    """One gate: passed or not, what was observed, what was required."""

    name: str
    passed: bool
    observed: float | None
    threshold: float
    detail: str = ""


@dataclass(frozen=True)
class Decision:
    """The verdict and every gate behind it."""

    promote: bool
    gates: tuple[GateResult, ...]

    @property
    def failed(self) -> list[str]:
        """Names of the gates that failed."""
        return [g.name for g in self.gates if not g.passed]

    def as_dict(self) -> dict[str, Any]:
        """For audit rows and e-mails."""
        return {"promote": self.promote, "gates": [g.__dict__ for g in self.gates]}


def should_promote(
    challenger: Evaluation, champion: Evaluation | None, gates: PromotionConfig, primary: str
) -> Decision:
    """Whether the challenger earned the champion alias; every gate is evaluated and reported."""
    value = challenger.metrics[primary]
    results = [
        GateResult(
            "min_primary",
            reaches(value, gates.min_primary, primary),
            value,
            gates.min_primary,
            f"{primary} must reach {gates.min_primary}",
        ),
        GateResult(
            "max_calibration_error",
            challenger.metrics["calibration_error"] <= gates.max_calibration_error,
            challenger.metrics["calibration_error"],
            gates.max_calibration_error,
        ),
        GateResult(
            "min_score_std",
            challenger.score_std >= gates.min_score_std,
            challenger.score_std,
            gates.min_score_std,
            "scores must vary across customers",
        ),
        GateResult(
            "max_mean_score_gap",
            abs(challenger.score_mean - challenger.positive_rate) <= gates.max_mean_score_gap,
            abs(challenger.score_mean - challenger.positive_rate),
            gates.max_mean_score_gap,
            "mean score close to the observed positive rate",
        ),
    ]
    if champion is not None:
        lift = gain(value, champion.metrics[primary], primary)
        base = abs(champion.metrics[primary]) or 1.0
        results.append(
            GateResult(
                "min_lift",
                lift >= gates.min_lift,
                lift,
                gates.min_lift,
                f"{primary} challenger {value:.5f} vs champion {champion.metrics[primary]:.5f}",
            )
        )
        results.append(
            GateResult(
                "min_relative_lift", lift / base >= gates.min_relative_lift, lift / base, gates.min_relative_lift
            )
        )
        drops = {
            name: -gain(metrics[primary], champion.slices[name][primary], primary)
            for name, metrics in challenger.slices.items()
            if name in champion.slices and primary in metrics and primary in champion.slices[name]
        }
        worst = max(drops, key=drops.get) if drops else None
        results.append(
            GateResult(
                "max_slice_drop",
                # A champion evaluated by slice and a challenger without those slices is an evaluation bug: fail.
                (worst is None and not champion.slices) or (worst is not None and drops[worst] <= gates.max_slice_drop),
                drops[worst] if worst else None,
                gates.max_slice_drop,
                f"worst slice: {worst}" if worst else "no slice to compare",
            )
        )
    return Decision(promote=all(g.passed for g in results), gates=tuple(results))
