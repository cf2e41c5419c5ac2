"""should_alert: one mail per drift episode, then a cooldown; no storm, no silence; retraining on drift or decay."""

from __future__ import annotations

from datetime import date, timedelta

from jobs.config import DriftConfig
from jobs.monitoring.alerts import Alert, Window, drifted_share, should_alert

POLICY = DriftConfig(max_drifted_share=0.3, persistence_k=3, persistence_n=5, cooldown_days=30)
START = date(1998, 1, 1)


def _nights(shares: list[float], policy: DriftConfig = POLICY) -> tuple[list[int], list]:
    """Run the policy night by night as the DAG does; return the nights (0-based) that mailed, and the decisions."""
    history, alerts, mailed, decisions = [], [], [], []
    for night, share in enumerate(shares):
        day = START + timedelta(days=night)
        history.append(Window(day, share))
        decision = should_alert(history, alerts, policy, "m")
        decisions.append(decision)
        if decision.alert:
            mailed.append(night)
            alerts.append(Alert(day, decision.episode_id))
    return mailed, decisions


def test_stable_data_never_alerts_and_a_single_blip_is_not_an_episode() -> None:
    assert _nights([0.05] * 60)[0] == []
    blips = [0.05] * 60
    blips[10] = blips[30] = 0.9
    mailed, decisions = _nights(blips)
    assert mailed == [] and "below persistence 3" in decisions[10].reason


def test_persistent_drift_mails_once_within_k_windows_then_cools_down() -> None:
    shares = [0.05] * 10 + [0.6] * 50
    mailed, decisions = _nights(shares)
    assert mailed[0] == 12, "alerted on the k-th drifted window (k=3), not later"
    assert mailed == [12, 42], "one mail per episode; a drift that persists past the 30-day cooldown is re-announced"
    assert decisions[12].retrain and decisions[12].episode_id == "m/1998-01-13"
    assert "cooldown until 1998-02-12" in decisions[20].reason and not decisions[20].retrain


def test_k_of_n_counts_drift_that_flickers() -> None:
    shares = [0.05] * 5 + [0.6, 0.1, 0.6, 0.1, 0.6] + [0.05] * 5
    assert _nights(shares)[0] == [9]


def test_a_retried_alerting_night_reproduces_its_decision_instead_of_reading_its_own_write() -> None:
    history = [Window(START + timedelta(days=i), 0.8) for i in range(3)]
    first = should_alert(history, [], POLICY, "m")
    assert first.alert
    # The first try recorded the episode, then died before its mail was sent: the retry decides the same again
    # (same episode id: the outbox sends its one mail, the retraining trigger starts one run).
    again = should_alert(history, [Alert(history[-1].as_of_date, first.episode_id)], POLICY, "m")
    assert again == first
    # The next night is inside that episode's cooldown.
    later = [*history, Window(START + timedelta(days=3), 0.8)]
    assert not should_alert(later, [Alert(history[-1].as_of_date, first.episode_id)], POLICY, "m").alert


def test_prediction_drift_counts_and_performance_decay_retrains_under_the_cooldown() -> None:
    history = [Window(START + timedelta(days=i), 0.0, prediction_drifted=True) for i in range(3)]
    assert should_alert(history, [], POLICY, "m").alert
    decayed = [Window(START, 0.0, performance_drop=0.08)]
    decision = should_alert(decayed, [], POLICY, "m")
    assert decision.alert and decision.retrain and "performance dropped by 0.0800" in decision.reason
    recent = [Alert(START - timedelta(days=3), "m/earlier")]
    assert not should_alert(decayed, recent, POLICY, "m").retrain, "the cooldown stops retrain loops"
    off = POLICY.model_copy(update={"retrain_on_drift": False})
    assert not should_alert([Window(START + timedelta(days=i), 0.9) for i in range(3)], [], off, "m").retrain


def test_importance_weighting_counts_what_the_model_relies_on() -> None:
    drifted = {"recency_days": True, "tenure_days": False, "amount_sum_all": False, "noise": False}
    assert drifted_share(drifted) == 0.25
    importance = {"recency_days": 0.6, "tenure_days": 0.2, "amount_sum_all": 0.2, "noise": -0.01}
    assert abs(drifted_share(drifted, importance) - 0.6) < 1e-9
    assert drifted_share({}) == 0.0
