"""The nightly scoring DAG end to end with ``dag.test()``: real spark-submit of inference and the drift monitor, a
drift episode that mails the team once through ``smtp_default`` at a real SMTP server on loopback and starts the
training DAG with the reason in its conf; the next drifted night stays quiet (cooldown)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml

from jobs.config import load_model_config
from jobs.features.build import FEATURES_TABLE
from jobs.features.labels import LABELS_TABLE
from jobs.ml import registry
from jobs.serving import batch
from tests.registry_helpers import STRONG, register, synthetic_frame, write_training_set

REPO = Path(__file__).resolve().parents[2]
MODEL = "purchase_propensity"
NIGHTS = (date(1998, 3, 1), date(1998, 3, 2))


def _dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags" / "scoring.py"))
    assert bag.import_errors == {}
    return bag.dags["scoring"]


@pytest.fixture()
def drifting_lake(spark, settings, tmp_path, monkeypatch):
    """A champion trained on 1997-like rows; two nights of aged customers; a policy that alerts on one window."""
    import mlflow

    from jobs.settings import load

    raw = yaml.safe_load((REPO / "include" / "models" / f"{MODEL}.yaml").read_text())
    raw["drift"] = {"persistence_k": 1, "persistence_n": 1, "cooldown_days": 30}
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / f"{MODEL}.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("MLP_MODELS_DIR", str(tmp_path / "models"))  # the DAG's tasks read this model file
    settings, config = load(), load_model_config(MODEL)
    train = synthetic_frame(6000, 1, date(1997, 3, 1))
    write_training_set(settings, config, train, synthetic_frame(3000, 2, date(1997, 9, 1)))
    version = register(config, train, STRONG)
    mlflow.MlflowClient().set_registered_model_alias(MODEL, registry.CHAMPION, str(version))
    import pandas as pd

    nights = []
    for i, night in enumerate(NIGHTS):
        frame = synthetic_frame(1500, 20 + i, night)
        frame["as_of_date"] = night
        frame["recency_days"] += 250
        frame["tenure_days"] += 400
        nights.append(frame)
    gold = pd.concat(nights, ignore_index=True)
    spark.createDataFrame(gold.drop(columns="label")).write.format("delta").save(
        settings.model_table_path(MODEL, FEATURES_TABLE)
    )
    spark.createDataFrame(gold[["customer_id", "as_of_date", "label"]]).write.format("delta").save(
        settings.model_table_path(MODEL, LABELS_TABLE)
    )
    return settings, version


def test_a_drift_episode_mails_once_and_starts_retraining_with_its_reason(
    airflow_db, smtp_server, spark, drifting_lake
) -> None:
    from airflow.models import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, TaskInstanceState

    settings, version = drifting_lake
    first = _dag().test(run_conf={"as_of_date": str(NIGHTS[0])})

    assert first.state == DagRunState.SUCCESS
    states = {ti.task_id: ti.state for ti in first.get_task_instances()}
    assert all(state == TaskInstanceState.SUCCESS for state in states.values()), states
    scored = spark.read.format("delta").load(settings.model_table_path(MODEL, batch.PREDICTIONS_TABLE))
    assert scored.count() == 1500 and {r.model_version for r in scored.select("model_version").collect()} == {version}

    (mail,) = smtp_server.messages
    assert mail["Subject"].startswith(f"[ml-platform] DRIFT {MODEL} {NIGHTS[0]}: ")
    assert mail["Subject"].endswith("retraining started") and "ml-team@localhost" in mail["X-Envelope-To"]
    body = smtp_server.html(mail)
    assert "recency_days" in body and "wasserstein" in body and f"drift__{NIGHTS[0]}" in body
    report = settings.reports_root / "drift" / MODEL / str(NIGHTS[0]) / "index.html"
    assert report.exists() and report.as_uri() in body

    with create_session() as session:
        (retrain,) = session.query(DagRun).filter(DagRun.dag_id == "training").all()
    assert retrain.run_id == f"drift__{NIGHTS[0]}" and retrain.state == DagRunState.QUEUED
    assert retrain.conf["reason"].startswith(f"drift episode {MODEL}/{NIGHTS[0]}: ")
    horizon = load_model_config(MODEL).label.horizon_days
    assert retrain.conf["as_of_end"] == str(NIGHTS[0] - timedelta(days=horizon + 1)), "labels matured by that night"

    # The next night drifts as much: the same episode, inside the cooldown, so no second mail and no second retrain.
    second = _dag().test(run_conf={"as_of_date": str(NIGHTS[1])})
    assert second.state == DagRunState.SUCCESS
    states = {ti.task_id: ti.state for ti in second.get_task_instances()}
    assert states["start_retraining"] == TaskInstanceState.SKIPPED and states["send_alert"] == TaskInstanceState.SKIPPED
    assert len(smtp_server.messages) == 1
    decision = second.get_task_instance("monitor_drift").xcom_pull(task_ids="monitor_drift")
    assert "cooldown until 1998-03-31" in decision["reason"]
