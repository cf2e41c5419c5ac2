"""Task links to MLflow and the reports, without an Airflow server.

The URL builders and ``get_link`` are unit-tested with ``XCom.get_value`` replaced by a stub (no database). The slow
tests run the real operators with ``dag.test()`` (the Spark job and the MLflow verification stubbed, since only the
links are under test): the operator pushes what it knows, Airflow's task runner resolves the links when the task
ends, and the serialized task reads them back from the metadata database as the API server does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import airflow  # noqa: F401  (initialising Airflow puts plugins/ on sys.path, so `mlplatform` imports)
import pytest

REPO = Path(__file__).resolve().parents[2]
LINKED_TASKS = {
    ("feature_pipeline", "quality_gate"): {"Data-quality report"},
    ("training", "train"): {"MLflow run"},
    ("training", "evaluate_and_promote"): {"Evaluation report", "MLflow run"},
    ("promote_model", "promote"): {"Evaluation report", "MLflow run"},
    ("rollback_model", "rollback"): {"Evaluation report", "MLflow run"},
    ("scoring", "monitor_drift"): {"Drift report"},
}


def test_mlflow_run_url_opens_the_run_in_its_experiment() -> None:
    from mlplatform.links import mlflow_run_url

    ui = "http://127.0.0.1:5000/"
    assert mlflow_run_url({"run_id": "ab12", "experiment_id": "7"}, ui) == (
        "http://127.0.0.1:5000/#/experiments/7/runs/ab12"
    )
    # Experiment unknown: MLflow's direct run page finds it.
    assert mlflow_run_url({"run_id": "ab12", "experiment_id": None}, ui) == "http://127.0.0.1:5000/#/runs/ab12"
    assert mlflow_run_url(None, ui) == "" and mlflow_run_url({"run_id": ""}, ui) == ""


def test_report_url_is_the_file_or_the_served_copy(tmp_path: Path) -> None:
    from mlplatform.links import report_url

    root = tmp_path / "reports"
    report = root / "evaluation" / "m" / "manual__2024-01-01T00:00:00+00:00" / "index.html"
    assert report_url(report.as_uri(), root) == report.as_uri()
    assert report_url(str(report), root) == report.as_uri()
    assert report_url(report.as_uri(), root, "http://127.0.0.1:8090/") == (
        "http://127.0.0.1:8090/evaluation/m/manual__2024-01-01T00%3A00%3A00%2B00%3A00/index.html"
    )
    outside = tmp_path / "elsewhere" / "index.html"
    assert report_url(outside.as_uri(), root, "http://127.0.0.1:8090") == outside.as_uri()
    assert report_url("s3://bucket/report.html", root, "http://x") == "s3://bucket/report.html"
    assert report_url(None, root) == "" and report_url("", root) == ""


def test_get_link_builds_the_url_from_what_the_task_pushed(monkeypatch: pytest.MonkeyPatch, settings) -> None:
    """``XCom.get_value`` is stubbed here; the slow tests below read real XComs."""
    from mlplatform import links

    key = SimpleNamespace(dag_id="d", task_id="t", run_id="r", map_index=-1)
    report = settings.reports_root / "drift" / "m" / "2024-01-01" / "index.html"
    pushed = {
        (key.task_id, links.MLflowRunLink.source_key): {"run_id": "ab12", "experiment_id": "3"},
        (key.task_id, links.DriftReportLink.source_key): report.as_uri(),
    }
    calls = []

    class _XCom:
        @staticmethod
        def get_value(*, ti_key, key):
            calls.append((ti_key, key))
            return pushed.get((ti_key.task_id, key))

    monkeypatch.setattr(links, "XCom", _XCom)
    monkeypatch.setenv("MLP_MLFLOW_UI_URL", "https://mlflow.example.org")
    monkeypatch.setenv("MLP_REPORTS_URL", "https://reports.example.org/ml")
    assert links.MLflowRunLink().get_link(None, ti_key=key) == "https://mlflow.example.org/#/experiments/3/runs/ab12"
    assert links.DriftReportLink().get_link(None, ti_key=key) == (
        "https://reports.example.org/ml/drift/m/2024-01-01/index.html"
    )
    assert links.EvaluationReportLink().get_link(None, ti_key=key) == "", "nothing pushed: an empty (disabled) link"
    assert calls[0] == (key, "mlp_mlflow_run")


def test_each_link_reads_its_own_key_and_has_its_own_name() -> None:
    from mlplatform.links import LINKS

    assert len({link.source_key for link in LINKS}) == len(LINKS)
    assert len({link.name for link in LINKS}) == len(LINKS)
    assert len({link().xcom_key for link in LINKS}) == len(LINKS)


def test_platform_operators_declare_their_links() -> None:
    from mlplatform.operators import (
        DriftMonitorOperator,
        LocalTrainingOperator,
        PromotionOperator,
        QualityGateOperator,
        training_pod_operator,
    )

    def names(op) -> set[str]:
        return {link.name for link in op.operator_extra_links}

    assert names(QualityGateOperator) == {"Data-quality report"}
    assert names(PromotionOperator) == {"Evaluation report", "MLflow run"}
    assert names(DriftMonitorOperator) == {"Drift report"}
    assert names(LocalTrainingOperator) == {"MLflow run"}
    pod = training_pod_operator(task_id="train", model="m", name="train-m", image="registry.example.org/t:1")
    assert "MLflow run" in names(pod)


def test_serialized_dags_carry_the_links_as_xcom_links() -> None:
    """What the API server sees: each platform task's links, read back from XCom (the plugin overrides none)."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.serialization.serialized_objects import DagSerialization

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    for (dag_id, task_id), expected in LINKED_TASKS.items():
        task = DagSerialization.from_dict(DagSerialization.to_dict(bag.dags[dag_id])).get_task(task_id)
        assert set(task.extra_links) == expected, f"{dag_id}.{task_id}"
        assert {type(link).__name__ for link in task.operator_extra_links} == {"XComOperatorLink"}


def test_plugin_registers_the_links() -> None:
    from airflow.plugins_manager import AirflowPlugin
    from mlplatform.links import LINKS
    from mlplatform.plugin import MLPlatformPlugin

    assert issubclass(MLPlatformPlugin, AirflowPlugin) and MLPlatformPlugin.name == "mlplatform"
    assert [type(link) for link in MLPlatformPlugin.operator_extra_links] == list(LINKS)
    # Naming operators would make the API server call get_link itself instead of reading the stored URL.
    assert all(link.operators == [] for link in MLPlatformPlugin.operator_extra_links)


def test_airflow_loads_the_plugin_from_the_plugins_folder() -> None:
    """A fresh interpreter, as a component starts: Airflow's plugin manager finds the plugin without import errors."""
    code = """
import json
from airflow import plugins_manager
plugins, errors = plugins_manager._get_plugins()
print(json.dumps({"names": [p.name for p in plugins], "errors": errors,
                  "links": sorted(type(link).__name__ for link in plugins_manager.get_operator_extra_links())}))
"""
    env = {**os.environ, "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300, env=env)
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["errors"] == {}
    assert found["names"].count("mlplatform") == 1
    assert {"MLflowRunLink", "DataQualityReportLink", "EvaluationReportLink", "DriftReportLink"} <= set(found["links"])


# --- end to end through Airflow's task runner (slow: a metadata database and two dag.test() runs) ---

PROBE_DAG = '''
"""Probe DAG for tests/dags/test_links.py: the real gate and local-training operators."""
from datetime import datetime

from airflow.sdk import DAG
from mlplatform.operators import LocalTrainingOperator, QualityGateOperator

from jobs.reports import summary_path
from jobs.settings import load

with DAG("links_probe", schedule=None, start_date=datetime(2024, 1, 1), tags=["test"]):
    gate = QualityGateOperator(
        task_id="quality_gate",
        model="m",
        summary_path=str(summary_path(load(), "quality", "m", "2024-01-01", "2024-01-01")),
        application="unused.py",
        conn_id="spark_default",
        retries=0,
    )
    train = LocalTrainingOperator(task_id="train", command=["python", "-c", "pass"], model="m", retries=0)
    gate >> train
'''


@pytest.fixture(scope="module")
def airflow_db() -> None:
    """A migrated metadata database in the session's isolated AIRFLOW_HOME."""
    Path(os.environ["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    cli = Path(sys.executable).parent / "airflow"
    subprocess.run([str(cli), "db", "migrate"], check=True, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_links_resolve_through_airflow_after_a_run(
    airflow_db, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, settings
):
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.taskinstance import TaskInstance
    from airflow.serialization.serialized_objects import DagSerialization
    from airflow.utils.session import create_session
    from mlplatform import links, operators

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "links_probe.py").write_text(PROBE_DAG)
    # dag.test() serializes the DAG from a bundle first: this folder, then the repository's DAGs as usual.
    local = "airflow.dag_processing.bundles.local.LocalDagBundle"
    monkeypatch.setenv(
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST",
        json.dumps(
            [
                {"name": "links-probe", "classpath": local, "kwargs": {"path": str(bundle)}},
                {"name": "dags-folder", "classpath": local, "kwargs": {}},
            ]
        ),
    )
    reports = settings.reports_root
    monkeypatch.setenv("MLP_REPORTS_URL", "http://127.0.0.1:8090")
    monkeypatch.setenv("MLP_MLFLOW_UI_URL", "http://127.0.0.1:5000")
    docs = reports / "quality" / "m" / "2024-01-01_2024-01-01" / "docs" / "index.html"
    verdict = {"passed": True}

    def job(self, context):  # what jobs.quality.gate writes; a failed gate also exits non-zero
        Path(self.summary_path).parent.mkdir(parents=True, exist_ok=True)
        summary = {"run_id": context["run_id"], "passed": verdict["passed"], "evaluated": 1, "warnings": []}
        summary |= {"report": docs.as_uri(), "start": "2024-01-01", "end": "2024-01-01"}
        failures = [] if verdict["passed"] else [{"dataset": "gold", "expectation": "e", "column": "c"}]
        summary["critical_failures"] = failures
        Path(self.summary_path).write_text(json.dumps(summary))
        if not verdict["passed"]:
            raise RuntimeError("the Spark job exited with 1")

    monkeypatch.setattr(operators.SparkJobOperator, "execute", job)  # the Spark job, in either Spark mode
    monkeypatch.setattr(operators, "_verify", lambda model, dag_run_id, log: {"run_id": "f00d", "version": 1})
    monkeypatch.setattr(links, "mlflow_experiment_id", lambda run_id: "3")

    dag = DagBag(dag_folder=str(bundle)).dags["links_probe"]
    served = DagSerialization.from_dict(DagSerialization.to_dict(dag))

    def link(run_id: str, task_id: str, name: str) -> str:
        with create_session() as session:
            ti = session.query(TaskInstance).filter_by(dag_id="links_probe", task_id=task_id, run_id=run_id).one()
            return served.get_task(task_id).get_extra_links(ti, name)

    passed = dag.test()
    assert passed.state == "success"
    expected_report = "http://127.0.0.1:8090/quality/m/2024-01-01_2024-01-01/docs/index.html"
    assert link(passed.run_id, "quality_gate", "Data-quality report") == expected_report
    assert link(passed.run_id, "train", "MLflow run") == "http://127.0.0.1:5000/#/experiments/3/runs/f00d"

    # A gate that found bad data fails the run, and its task still links the report that says why.
    verdict["passed"] = False
    failed = DagBag(dag_folder=str(bundle)).dags["links_probe"].test()
    assert failed.state == "failed"
    assert link(failed.run_id, "quality_gate", "Data-quality report") == expected_report
    assert not link(failed.run_id, "train", "MLflow run")
