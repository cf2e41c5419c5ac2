"""Drift alert and retraining decisions: small pure functions over the history of monitoring windows.

A window is *drifted* when the (optionally importance-weighted) share of drifted feature columns reaches
``drift.max_drifted_share`` or the prediction distribution drifted. An *episode* starts when at least
``persistence_k`` of the last ``persistence_n`` windows, the latest included, are drifted; it is mailed once
(through the outbox, keyed by the episode), and the same model is not mailed again (nor retrained for drift) until
``cooldown_days`` have passed since the episode's alert. A drop of the primary metric on matured labels beyond
``max_performance_drop`` also starts retraining, under the same cooldown. No storm, no silence: a persisting drift
is re-announced after the cooldown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from jobs.config import DriftConfig


@dataclass(frozen=True)
class Window:
    """One monitoring window's outcome (one row of models/<model>/drift_windows)."""

    as_of_date: date
    drifted_share: float
    prediction_drifted: bool = False
    drifted_columns: tuple[str, ...] = ()
    performance_drop: float | None = None  # champion's metric at promotion minus the metric on matured labels

    def drifted(self, policy: DriftConfig) -> bool:
        """Whether this window counts towards an episode."""
        return self.drifted_share >= policy.max_drifted_share or self.prediction_drifted


@dataclass(frozen=True)
class Alert:
    """A drift alert already sent (one row of models/<model>/drift_alerts)."""

    as_of_date: date
    episode_id: str


@dataclass(frozen=True)
class AlertDecision:
    """What tonight's monitoring does: mail (a new episode), retrain, and why."""

    alert: bool
    retrain: bool
    episode_id: str | None
    reason: str
    drifted_windows: list[date] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """For XCom and the decision file."""
        return {
            "alert": self.alert,
            "retrain": self.retrain,
            "episode_id": self.episode_id,
            "reason": self.reason,
            "drifted_windows": [d.isoformat() for d in self.drifted_windows],
        }


def drifted_share(drifted: dict[str, bool], importance: dict[str, float] | None = None) -> float:
    """Share of drifted columns; with ``importance``, the share of total (non-negative) importance that drifted."""
    if not drifted:
        return 0.0
    if not importance:
        return sum(drifted.values()) / len(drifted)
    weights = {c: max(importance.get(c, 0.0), 0.0) for c in drifted}
    total = sum(weights.values())
    if total <= 0:
        return sum(drifted.values()) / len(drifted)
    return sum(w for c, w in weights.items() if drifted[c]) / total


def should_alert(history: list[Window], alerts: list[Alert], policy: DriftConfig, model: str) -> AlertDecision:
    """Decide on the latest window of ``history`` (any order; one window per date) given the alerts already sent."""
    if not history:
        return AlertDecision(False, False, None, "no monitoring windows yet")
    windows = sorted(history, key=lambda w: w.as_of_date)
    latest = windows[-1]
    recent = windows[-policy.persistence_n :]
    drifted = [w.as_of_date for w in recent if w.drifted(policy)]
    # Only episodes opened on earlier nights count: a retried or re-run night reproduces its own decision (the same
    # episode id, so the outbox and the retraining trigger dedupe it) instead of reading its own write as "alerted".
    last_alert = max((a for a in alerts if a.as_of_date < latest.as_of_date), key=lambda a: a.as_of_date, default=None)
    cooling = last_alert is not None and latest.as_of_date - last_alert.as_of_date < timedelta(
        days=policy.cooldown_days
    )

    performance = latest.performance_drop is not None and latest.performance_drop > policy.max_performance_drop
    persistent = latest.drifted(policy) and len(drifted) >= policy.persistence_k
    if persistent and not cooling:
        episode = f"{model}/{latest.as_of_date.isoformat()}"
        why = (
            f"drift in {len(drifted)} of the last {len(recent)} windows (>= {policy.persistence_k}); latest: "
            f"{latest.drifted_share:.0%} of feature weight drifted"
            + (", prediction drift" if latest.prediction_drifted else "")
        )
        return AlertDecision(True, policy.retrain_on_drift, episode, why, drifted)
    if performance and not cooling:
        episode = f"{model}/{latest.as_of_date.isoformat()}"
        why = (
            f"performance dropped by {latest.performance_drop:.4f} (> {policy.max_performance_drop}) on matured labels"
        )
        return AlertDecision(True, policy.retrain_on_performance_drop, episode, why, drifted)
    if (persistent or performance) and cooling:
        until = last_alert.as_of_date + timedelta(days=policy.cooldown_days)
        return AlertDecision(
            False,
            False,
            last_alert.episode_id,
            f"drift continues; episode already alerted, cooldown until {until}",
            drifted,
        )
    if latest.drifted(policy):
        return AlertDecision(
            False,
            False,
            None,
            f"drift in {len(drifted)} of {len(recent)} windows, below persistence {policy.persistence_k}",
            drifted,
        )
    return AlertDecision(False, False, None, "no drift", drifted)
