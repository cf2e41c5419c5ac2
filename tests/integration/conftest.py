"""Integration fixtures: a migrated Airflow metadata database (SQLite) in the session's isolated AIRFLOW_HOME."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


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
