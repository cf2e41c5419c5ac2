"""Shared fixtures: an isolated platform home per test session and one local Spark session with Delta."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Isolate everything a test run writes (lake, landing, Airflow home, MLflow) from the developer's .platform.
_SESSION_HOME = Path(tempfile.mkdtemp(prefix="mlp-test-"))
atexit.register(shutil.rmtree, _SESSION_HOME, ignore_errors=True)
os.environ["MLP_HOME"] = str(_SESSION_HOME)
for _name in ("MLP_LAKE_ROOT", "MLP_LANDING_ROOT", "MLP_REPORTS_ROOT", "MLP_MAIL_ROOT", "MLFLOW_TRACKING_URI"):
    os.environ.pop(_name, None)
os.environ["AIRFLOW_HOME"] = str(_SESSION_HOME / "airflow")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(REPO / "plugins")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
# As in the Makefile: the venv's tools (spark-submit, airflow) first on the PATH, for tasks that launch them.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
os.environ.setdefault("AIRFLOW_CONN_SPARK_DEFAULT", '{"conn_type": "spark", "host": "local[2]"}')
# Airflow puts its plugins folder on sys.path when it starts; tests import `mlplatform` without starting it first.
sys.path.insert(0, str(REPO / "plugins"))


@pytest.fixture(scope="session")
def platform_home() -> Path:
    """The session's isolated MLP_HOME."""
    return _SESSION_HOME


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    """One local Spark session with Delta for the whole test run (UI off, few shuffle partitions)."""
    from jobs.spark import get_spark

    session = get_spark(
        "tests",
        master="local[2]",
        overrides={
            "spark.ui.enabled": "false",
            "spark.sql.shuffle.partitions": "2",
            "spark.default.parallelism": "2",
            "spark.driver.memory": "2g",
            # Test tables are tiny: rebuilding a Delta snapshot in 2 tasks instead of 50 saves most of their CPU.
            "spark.databricks.delta.snapshotPartitions": "2",
            # Tests vacuum freshly written tables; production keeps the safe retention check on.
            "spark.databricks.delta.retentionDurationCheck.enabled": "false",
        },
    )
    yield session
    session.stop()


@pytest.fixture()
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Settings whose lake and landing zone live in this test's own temp folder."""
    from jobs.settings import load

    monkeypatch.setenv("MLP_LAKE_ROOT", str(tmp_path / "lake"))
    monkeypatch.setenv("MLP_LANDING_ROOT", str(tmp_path / "landing"))
    monkeypatch.setenv("MLP_REPORTS_ROOT", str(tmp_path / "reports"))
    monkeypatch.setenv("MLP_MAIL_ROOT", str(tmp_path / "mail"))
    return load()


class _Inbox:
    """Messages a real SMTP server on loopback received, parsed."""

    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope) -> str:  # aiosmtpd calls handle_<SMTP verb>
        from email import message_from_bytes, policy

        message = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        self.messages.append(message)
        return "250 Message accepted for delivery"

    @staticmethod
    def html(message) -> str:
        """The HTML body of a message."""
        part = message.get_body(preferencelist=("html", "plain"))
        return part.get_content() if part is not None else ""


@pytest.fixture()
def smtp_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Inbox]:
    """An SMTP server (aiosmtpd) on 127.0.0.1 and a free port; ``smtp_default`` and the settings point at it."""
    import socket

    from aiosmtpd.controller import Controller

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("MLP_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("MLP_SMTP_PORT", str(port))
    from jobs.settings import load

    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", load().smtp_connection_json())
    try:
        yield inbox
    finally:
        controller.stop()
