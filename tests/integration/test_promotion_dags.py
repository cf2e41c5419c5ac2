"""The manual promotion DAGs end to end with ``dag.test()``: real spark-submit of ``jobs.ml.promotion``, a real MLflow
registry, the Delta audit table, and the team's e-mail at a real SMTP server on loopback."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from urllib.parse import unquote

import pytest

from jobs.config import load_model_config
from jobs.ml import promotion, registry
from tests.registry_helpers import NOISE, STRONG, WEAK, register, synthetic_frame, write_training_set

REPO = Path(__file__).resolve().parents[2]
MODEL = "purchase_propensity"


def _dag(dag_id: str):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags" / f"{dag_id}.py"))
    assert bag.import_errors == {}
    return bag.dags[dag_id]


@pytest.fixture()
def champion_and_previous(settings):
    """v1 (weak) was champion, v2 (strong) replaced it, v3 (noise) waits as challenger; a lake and registry of
    this test's own (the settings fixture's), which the spark-submit child inherits through the environment."""
    from mlflow import MlflowClient

    config = load_model_config(MODEL)
    train = synthetic_frame(5000, 1, date(1997, 3, 1))
    write_training_set(settings, config, train, synthetic_frame(5000, 2, date(1997, 9, 1)))
    weak, strong, noise = (register(config, train, columns) for columns in (WEAK, STRONG, NOISE))
    client = MlflowClient()
    client.set_registered_model_alias(MODEL, registry.PREVIOUS_CHAMPION, str(weak))
    client.set_registered_model_alias(MODEL, registry.CHAMPION, str(strong))
    return settings, {"weak": weak, "strong": strong, "noise": noise}


def test_rollback_dag_restores_the_previous_champion_audits_and_mails(
    airflow_db, smtp_server, spark, champion_and_previous
) -> None:
    from airflow.utils.state import DagRunState

    settings, v = champion_and_previous
    run = _dag("rollback_model").test(run_conf={"reason": "complaints about scores in the CRM export"})

    assert run.state == DagRunState.SUCCESS
    assert registry.aliases(_client(), MODEL) == {
        "champion": v["weak"],
        "previous_champion": v["strong"],
        "challenger": v["noise"],
    }
    (row,) = [r for r in promotion.decisions(spark, settings, MODEL) if r["dag_run_id"] == run.run_id]
    assert row["action"] == "rolled_back" and row["applied"] is True
    assert (row["champion_before"], row["champion_after"], row["candidate_version"]) == (
        v["strong"],
        v["weak"],
        v["weak"],
    )
    assert row["reason"] == "complaints about scores in the CRM export"
    assert row["dag_id"] == "rollback_model" and row["triggered_by"].startswith("manual")
    assert json.loads(row["champion_metrics_json"])["roc_auc"] > json.loads(row["candidate_metrics_json"])["roc_auc"]

    (mail,) = smtp_server.messages
    assert mail["Subject"] == f"[ml-platform] {MODEL}: rolled back to v{v['weak']}" + _primary(row)
    assert "ml-team@localhost" in mail["X-Envelope-To"]
    body = smtp_server.html(mail)
    assert f"Rolled back: champion v{v['strong']} -&gt; v{v['weak']}" in body
    assert "<b>roc_auc</b> (primary)" in body and "complaints about scores in the CRM export" in body
    assert row["report"] in body and Path(unquote(row["report"].removeprefix("file://"))).exists()


@pytest.mark.spark_submit  # the spark-submit path (MLP_SPARK_MODE=submit) through Airflow: one short Spark task
def test_promote_dag_refuses_a_worse_version_at_once_and_says_why(
    airflow_db, smtp_server, spark, champion_and_previous
) -> None:
    from airflow.utils.state import DagRunState, TaskInstanceState

    settings, v = champion_and_previous
    run = _dag("promote_model").test(run_conf={"version": v["noise"], "reason": "try the new one"})

    assert run.state == DagRunState.FAILED
    (ti,) = run.get_task_instances()
    assert (ti.state, ti.try_number) == (TaskInstanceState.FAILED, 1), "a refusal is final: no retries"
    assert registry.aliases(_client(), MODEL)["champion"] == v["strong"]
    (row,) = [r for r in promotion.decisions(spark, settings, MODEL) if r["dag_run_id"] == run.run_id]
    assert row["action"] == "rejected" and "min_lift" in row["failed_gates"].split(",")

    (mail,) = smtp_server.messages
    assert mail["Subject"].startswith(f"[ml-platform] {MODEL}: v{v['noise']} rejected, champion unchanged")
    assert "min_lift" in mail["Subject"] and "FAIL" in smtp_server.html(mail)


def _client():
    from mlflow import MlflowClient

    return MlflowClient()


def _primary(row: dict) -> str:
    return f" (roc_auc {json.loads(row['candidate_metrics_json'])['roc_auc']:.4f})"
