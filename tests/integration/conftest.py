"""Integration fixtures: a migrated Airflow metadata database (SQLite) in the session's isolated AIRFLOW_HOME, and,
for a test that asks, Spark tasks as clients of the session's Spark Connect server (MLP_SPARK_MODE=connect, the
provider's ``spark_connect_default`` connection)."""

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
    """Spark tasks run as Spark Connect clients of the session's server (a test asks for it; the DAG tests still
    spark-submit until the DAGs' jobs are verified over Connect)."""
    url = urlparse(connect_url.replace("sc://", "http://"))
    monkeypatch.setenv("MLP_SPARK_MODE", "connect")
    monkeypatch.setenv(
        "AIRFLOW_CONN_SPARK_CONNECT_DEFAULT",
        json.dumps({"conn_type": "spark_connect", "host": url.hostname, "port": url.port}),
    )
    yield connect_url


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
