"""Spark tasks as Spark Connect clients (``SparkJobOperator`` with ``spark_mode="connect"``), against the platform's
own server: what a team relies on when one server runs every night's tasks.

- A task killed mid-job (Airflow's kill on a timeout or mark-failed: ``on_kill``) interrupts its own operations on
  the server, so the server's cores are free again at once and the next task runs.
- A server that dies and comes back while a task runs fails that task with a clear error; the retry succeeds.
"""

from __future__ import annotations

import json
import os
import re
import signal
import textwrap
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CONNECT_TEST_ENV

JOB = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    from jobs.spark import run_job


    def work(spark, settings):
        mode, out = sys.argv[1], Path(sys.argv[2])
        if mode == "slow" or (mode == "slow-once" and not Path(f"{out}.tried").exists()):
            Path(f"{out}.tried").write_text("")
            Path(f"{out}.started").write_text("")
            spark.range(10**12).selectExpr("sum(id % 7)").collect()  # hours on two cores
        spark.range(100).selectExpr("id", "id % 7 AS bucket").write.format("delta").mode("overwrite").save(str(out))


    if __name__ == "__main__":
        run_job("probe", work)
    """
)


def _task(tmp_path: Path, mode: str, out: Path, conn_id: str = "spark_connect_default") -> Any:
    from mlplatform.operators import SparkJobOperator

    script = tmp_path / "probe_job.py"
    script.write_text(JOB)
    return SparkJobOperator(
        task_id=f"probe_{mode.replace('-', '_')}",
        application=str(script),
        application_args=[mode, str(out)],
        conn_id="spark_default",
        spark_mode="connect",
        connect_conn_id=conn_id,
    )


def _run_in_thread(task: Any) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            task.execute({})
        except BaseException as exc:  # what the task's try ends with, for the test to read
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, errors


def _wait_for(path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear in {timeout_s:.0f} s"
        time.sleep(0.5)


def _running_jobs(ui: str) -> list[dict]:
    """Spark jobs running on the server now (its UI's REST API)."""
    with urllib.request.urlopen(f"{ui}/api/v1/applications", timeout=10) as response:
        app = json.loads(response.read())[0]["id"]
    with urllib.request.urlopen(f"{ui}/api/v1/applications/{app}/jobs?status=running", timeout=10) as response:
        return json.loads(response.read())


def _ui(log: Path) -> str:
    found = re.search(r"Successfully started service 'SparkUI' on port (\d+)", log.read_text())
    assert found, "the server's log names its UI's port"
    return f"http://127.0.0.1:{found.group(1)}"


def _delta_rows(spark, path: Path) -> int:
    return spark.read.format("delta").load(str(path)).count()


def test_a_killed_task_interrupts_its_own_operations_and_the_server_runs_the_next(
    connect_server, spark_connect_mode, spark, settings, tmp_path: Path
) -> None:
    ui = _ui(connect_server.log)
    slow_out = tmp_path / "slow"
    slow = _task(tmp_path, "slow", slow_out)
    thread, errors = _run_in_thread(slow)
    _wait_for(Path(f"{slow_out}.started"), 180)
    deadline = time.monotonic() + 60
    while not _running_jobs(ui):
        assert time.monotonic() < deadline, "the slow job never showed up as running on the server"
        time.sleep(0.5)

    slow.on_kill()  # what Airflow calls on a timeout or a mark-failed
    thread.join(timeout=60)
    assert not thread.is_alive(), "the killed client did not exit"
    assert errors and "exited with 143" in str(errors[0]), errors  # SIGTERM, through the job's own handler

    # Interrupted by the client on its way out, not left to the server's 30 s detached-operation timeout.
    deadline = time.monotonic() + 20
    while _running_jobs(ui):
        assert time.monotonic() < deadline, "the killed task's Spark job still runs on the server"
        time.sleep(0.5)

    out = tmp_path / "next"
    _task(tmp_path, "write", out).execute({})
    assert _delta_rows(spark, out) == 100


def test_a_server_restart_fails_the_running_task_clearly_and_its_retry_succeeds(
    spark, settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.sdk.exceptions import AirflowException

    from tooling import connect

    port, log = connect.free_port(), tmp_path / "server.log"
    monkeypatch.setenv(
        "AIRFLOW_CONN_SPARK_CONNECT_PROBE",
        json.dumps({"conn_type": "spark_connect", "host": "127.0.0.1", "port": port}),
    )
    server = connect.start(port, log, CONNECT_TEST_ENV)
    try:
        connect.wait_ready(server, log)
        out = tmp_path / "table"
        task = _task(tmp_path, "slow-once", out, conn_id="spark_connect_probe")
        thread, errors = _run_in_thread(task)
        _wait_for(Path(f"{out}.started"), 180)
        time.sleep(2)  # the query is on the server now

        os.killpg(server.pid, signal.SIGKILL)  # the server dies in the middle of the night (OOM killer, a node)
        server.wait(timeout=60)
        restarted_log = tmp_path / "server-restarted.log"
        server = connect.start(port, restarted_log, CONNECT_TEST_ENV)
        connect.wait_ready(server, restarted_log)

        thread.join(timeout=300)
        assert not thread.is_alive(), "the task whose server died never finished"
        assert errors and isinstance(errors[0], AirflowException), errors
        assert "Spark Connect" in str(errors[0])
        assert not out.exists() or _delta_rows(spark, out) == 0, "the failed try wrote nothing"

        task.execute({})  # Airflow's retry of the same task
        assert _delta_rows(spark, out) == 100
    finally:
        connect.stop(server)
