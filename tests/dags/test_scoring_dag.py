"""The nightly scoring DAG's wiring: on the features Asset, score -> drift -> (retrain) -> alert, as the UI shows it."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags" / "scoring.py"))
    assert bag.import_errors == {}
    return bag.dags["scoring"]


def test_scoring_runs_on_the_features_asset_then_drift_then_retrain_and_alert() -> None:
    from mlplatform.tasks import features_asset

    dag = _dag()
    assert features_asset("purchase_propensity") in dag.timetable.asset_condition.objects
    upstream = {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks}
    assert upstream == {
        "as_of_date": [],
        "score": ["as_of_date"],
        "monitor_drift": ["score"],
        "retrain_needed": ["monitor_drift"],
        "start_retraining": ["retrain_needed"],
        "send_alert": ["monitor_drift", "start_retraining"],
    }
    assert dag.get_task("score").application_args[:1] == ["jobs.serving.batch"]
    assert type(dag.get_task("monitor_drift")).__name__ == "DriftMonitorOperator"
    retrain = dag.get_task("start_retraining")
    assert retrain.trigger_dag_id == "training" and retrain.skip_when_already_exists
    assert "retrain_reason" in retrain.conf["reason"], "the training run carries the reason in its conf"
    assert "retrain_as_of_end" in retrain.conf["as_of_end"], "and trains on the labels matured by that night"
    # A night without an episode skips retraining; the alert task still decides (and skips) on its own.
    assert dag.get_task("send_alert").trigger_rule == "none_failed"
