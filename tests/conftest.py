"""Shared fixtures and the test tiers.

A test's tier is the folder it lives in (unit, spark, dags, integration, deploy, bench), and it gets that marker;
spark/ and integration/ are also ``slow``. Everything a test run writes is isolated from the developer's
.platform: a temp MLP_HOME for the session, and for each test that asks for ``settings`` a platform home of its own
(lake, landing zone, reports, mail, MLflow store) in one temp folder.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from jobs.settings import Settings

REPO = Path(__file__).resolve().parent.parent
TESTS = REPO / "tests"
TIERS = ("unit", "spark", "dags", "integration", "deploy", "bench")
SLOW_TIERS = {"spark", "integration"}  # a SparkSession or an Airflow run in every test

# Isolate everything a test run writes (lake, landing, Airflow home, MLflow) from the developer's .platform.
_SESSION_HOME = Path(tempfile.mkdtemp(prefix="mlp-test-"))
atexit.register(shutil.rmtree, _SESSION_HOME, ignore_errors=True)
os.environ["MLP_HOME"] = str(_SESSION_HOME)
for _name in (
    "MLP_LAKE_ROOT",
    "MLP_LANDING_ROOT",
    "MLP_REPORTS_ROOT",
    "MLP_MAIL_ROOT",
    "MLFLOW_TRACKING_URI",
    "MLP_MLFLOW_ARTIFACT_ROOT",
):
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


# The tests' Spark Connect servers: two cores, as the tests' own sessions.
CONNECT_TEST_ENV = {
    "MLP_SPARK_MASTER": "local[2]",
    "MLP_SPARK_DRIVER_MEMORY": "2g",
    "MLP_SPARK_SHUFFLE_PARTITIONS": "2",
}


@pytest.fixture(scope="session")
def connect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """The platform's Spark Connect server (``python -m jobs.spark --serve``) on a free loopback port, for the
    test session (one per xdist worker), stopped after: its ``url``, ``port`` and ``log``."""
    from tooling import connect

    port = connect.free_port()
    log = tmp_path_factory.mktemp("spark-connect") / "server.log"
    with connect.serve(port, log, CONNECT_TEST_ENV) as url:
        yield SimpleNamespace(url=url, port=port, log=log)


@pytest.fixture(scope="session")
def connect_url(connect_server: SimpleNamespace) -> str:
    """``sc://127.0.0.1:<port>`` of the session's Spark Connect server."""
    return connect_server.url


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Stop the warm job launcher that the Spark Connect tasks started (once, in the controller: xdist's workers
    share it), so no test process outlives the run."""
    if not hasattr(session.config, "workerinput"):
        from jobs import launcher

        launcher.stop()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with its tier (the folder under tests/ it lives in); spark/ and integration/ are slow."""
    for item in items:
        parts = item.path.relative_to(TESTS).parts if item.path.is_relative_to(TESTS) else ()
        tier = parts[0] if len(parts) > 1 and parts[0] in TIERS else None
        if tier is None:
            continue  # tests/unit/test_layout.py says every test file lives in a tier
        item.add_marker(getattr(pytest.mark, tier))
        if tier in SLOW_TIERS:
            item.add_marker(pytest.mark.slow)


def _platform_in(root: Path, env: pytest.MonkeyPatch) -> Settings:
    """Point the platform at ``root`` (lake, landing, reports, mail, outbox, MLflow store): the Settings, and the
    environment that the jobs, the spark-submit children and Airflow's tasks read."""
    from jobs.settings import load

    uri = f"sqlite:///{root / 'mlflow.db'}"
    env.setenv("MLP_HOME", str(root))
    env.setenv("MLP_LAKE_ROOT", str(root / "lake"))
    env.setenv("MLP_LANDING_ROOT", str(root / "landing"))
    env.setenv("MLP_REPORTS_ROOT", str(root / "reports"))
    env.setenv("MLP_MAIL_ROOT", str(root / "mail"))
    env.setenv("MLP_OUTBOX_ROOT", str(root / "outbox"))
    env.setenv("MLFLOW_TRACKING_URI", uri)
    env.setenv("MLP_MLFLOW_ARTIFACT_ROOT", str(root / "artifacts"))
    _mlflow_uri(uri)
    return load()


def _mlflow_uri(uri: str | None) -> None:
    """The MLflow client keeps the last URI it was given over the environment: give it this one (None: forget)."""
    if "mlflow" in sys.modules:
        sys.modules["mlflow"].set_tracking_uri(uri)


@pytest.fixture()
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """The shared lake: Settings whose lake, landing zone, reports, mail and MLflow store live in this test's
    temp folder (also in the environment, for subprocesses)."""
    yield _platform_in(tmp_path, monkeypatch)
    _mlflow_uri(None)  # before monkeypatch restores the environment


@pytest.fixture(scope="module")
def module_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """``settings`` shared by a module's tests, for a lake that is expensive to build (once per module)."""
    with pytest.MonkeyPatch.context() as env:
        yield _platform_in(tmp_path_factory.mktemp("platform"), env)
        _mlflow_uri(None)


class Inbox:
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
def smtp_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Inbox]:
    """An SMTP server (aiosmtpd) on 127.0.0.1 and a free port; ``smtp_default`` and the settings point at it."""
    import socket

    from aiosmtpd.controller import Controller

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    inbox = Inbox()
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
