"""`make up`'s services: everything on loopback, ports from the environment, Airflow pointed at the repo."""

from __future__ import annotations

import json

from jobs.settings import REPO_ROOT, load
from tooling import stack


def test_every_service_binds_loopback_only(monkeypatch) -> None:
    monkeypatch.setenv("MLP_AIRFLOW_PORT", "18080")
    ports = stack.Ports.from_env()
    assert ports == stack.Ports(airflow=18080, mlflow=5000, reports=8000)
    services = stack.services(load(), ports)
    assert set(services) == {"spark-connect", "airflow", "mlflow", "reports", "mail"}
    assert list(services).index("spark-connect") < list(services).index("airflow"), "the server first"
    for name, (command, _env, health) in services.items():
        assert "127.0.0.1" in health, name
        assert "0.0.0.0" not in " ".join(command), name
    assert services["mlflow"][0][services["mlflow"][0].index("--host") + 1] == "127.0.0.1"
    assert services["reports"][0][services["reports"][0].index("--bind") + 1] == "127.0.0.1"
    airflow_env = services["airflow"][1]
    assert airflow_env["AIRFLOW__API__HOST"] == "127.0.0.1" and airflow_env["AIRFLOW__API__PORT"] == "18080"
    assert airflow_env["AIRFLOW__CORE__DAGS_FOLDER"] == str(REPO_ROOT / "dags")
    assert airflow_env["MLP_MLFLOW_UI_URL"] == "http://127.0.0.1:5000", "task links open the MLflow UI make up serves"
    # Spark tasks are clients of the stack's own Connect server (the default mode).
    assert airflow_env["MLP_SPARK_MODE"] == "connect"
    connection = json.loads(airflow_env["AIRFLOW_CONN_SPARK_CONNECT_DEFAULT"])
    assert services["spark-connect"][2] == f"tcp://{connection['host']}:{connection['port']}" == "tcp://127.0.0.1:15002"


def test_submit_mode_starts_no_connect_server(monkeypatch) -> None:
    monkeypatch.setenv("MLP_SPARK_MODE", "submit")
    services = stack.services(load(), stack.Ports.from_env())
    assert "spark-connect" not in services and services["airflow"][1]["MLP_SPARK_MODE"] == "submit"


def test_down_with_nothing_running_stops_nothing_and_clears_stale_pid_files(settings) -> None:
    (settings.home / "run").mkdir()
    (settings.home / "run" / "mlflow.pid").write_text("999999999")  # no such process
    assert stack.down(settings) == []
    assert not (settings.home / "run" / "mlflow.pid").exists()
