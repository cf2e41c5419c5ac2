"""Integration fixtures: a migrated Airflow metadata database (SQLite) in the session's isolated AIRFLOW_HOME, and
Spark tasks as clients of the session's Spark Connect server (MLP_SPARK_MODE=connect, the provider's
``spark_connect_default`` connection) in every test that runs Airflow, unless it is marked ``spark_submit``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest


@pytest.fixture()
def spark_connect_mode(connect_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Spark tasks run as Spark Connect clients of the session's server, as ``make up`` and ``make demo`` run them."""
    url = urlparse(connect_url.replace("sc://", "http://"))
    monkeypatch.setenv("MLP_SPARK_MODE", "connect")
    monkeypatch.setenv(
        "AIRFLOW_CONN_SPARK_CONNECT_DEFAULT",
        json.dumps({"conn_type": "spark_connect", "host": url.hostname, "port": url.port}),
    )
    yield connect_url


@pytest.fixture(autouse=True)
def _dag_spark_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test that runs Airflow (``airflow_db``) runs its Spark tasks through the session's Connect server, the
    default mode; ``@pytest.mark.spark_submit`` runs them as spark-submits (a JVM per task) instead."""
    if request.node.get_closest_marker("spark_submit") is not None:
        monkeypatch.setenv("MLP_SPARK_MODE", "submit")
    elif "airflow_db" in request.fixturenames:
        request.getfixturevalue("spark_connect_mode")


@pytest.fixture(scope="session")
def airflow_db(platform_home: Path) -> Path:
    """Run ``airflow db migrate`` once for the test session."""
    home = Path(os.environ["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    airflow = Path(sys.executable).parent / "airflow"
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True, text=True, timeout=600)
    # Training tasks run in the `gpu` pool; one slot here, as many as GPUs in production.
    subprocess.run(
        [str(airflow), "pools", "set", "gpu", "1", "GPU training slots"], check=True, capture_output=True, timeout=300
    )
    return home
