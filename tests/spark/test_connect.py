"""Spark Connect: the platform's own server (``python -m jobs.spark --serve``: Spark's Connect server with the jobs'
Delta packages and configuration) on a free loopback port, and jobs' code as its thin clients.

What a user relies on: a Delta window written through Connect is the same table a classic session writes, with the
same row count from the write's own commit; a client killed in the middle of a job leaves the server serving the
next one.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobs.settings import REPO_ROOT


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def connect_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Spark Connect server started the way the platform starts it, stopped after the module."""
    port = _free_port()
    log = tmp_path_factory.mktemp("connect") / "server.log"
    env = {
        **os.environ,
        "MLP_SPARK_MASTER": "local[2]",
        "MLP_SPARK_DRIVER_MEMORY": "1g",
        "MLP_SPARK_SHUFFLE_PARTITIONS": "2",
    }
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "jobs.spark", "--serve", "--port", str(port)],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 240
        while "Spark Connect server started" not in log.read_text():
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the Spark Connect server did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield f"sc://127.0.0.1:{port}"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)


@pytest.fixture()
def remote(connect_url: str, settings, monkeypatch: pytest.MonkeyPatch):
    """A Spark Connect client session built by jobs.spark.get_spark from MLP_SPARK_REMOTE."""
    from jobs.settings import load
    from jobs.spark import get_spark

    monkeypatch.setenv("MLP_SPARK_REMOTE", connect_url)
    session = get_spark("tests-connect", settings=load())
    assert type(session).__module__.startswith("pyspark.sql.connect")  # a client, not a second JVM here
    yield session
    session.stop()


def _window(spark, rows: int):
    return spark.range(rows).selectExpr(
        "id AS customer_id", "date_add(DATE'1997-03-01', CAST(id % 3 AS INT)) AS as_of_date", "id * 2.5 AS amount"
    )


def _table(spark, path: str) -> list[tuple]:
    return sorted(tuple(r) for r in spark.read.format("delta").load(path).collect())


def test_a_window_replaced_through_connect_is_the_table_a_classic_session_writes(spark, remote, settings) -> None:
    from jobs.spark import delta_history, replace_window

    classic_path = f"{settings.lake_root}/classic"
    connect_path = f"{settings.lake_root}/connect"
    assert delta_history(remote, connect_path) == []  # no table yet
    counts = {}
    for session, path in ((spark, classic_path), (remote, connect_path)):
        replace_window(_window(session, 30), path, "as_of_date >= '1997-03-01'", "as_of_date")
        # A re-run of one day replaces that day only, and counts the rows of its own commit.
        counts[path] = replace_window(
            _window(session, 30).where("as_of_date = '1997-03-02'"), path, "as_of_date = '1997-03-02'", "as_of_date"
        )
    assert counts == {classic_path: 10, connect_path: 10}
    assert _table(remote, connect_path) == _table(spark, classic_path)
    assert len(_table(spark, connect_path)) == 30  # the classic session reads what the Connect client wrote
    assert [r["version"] for r in delta_history(remote, connect_path, 5)] == [1, 0]


def test_a_client_killed_mid_job_leaves_the_server_serving_the_next(remote, connect_url, tmp_path: Path) -> None:
    job = textwrap.dedent(
        f"""
        from pyspark.sql import SparkSession
        spark = SparkSession.builder.remote("{connect_url}").getOrCreate()
        print("started", flush=True)
        spark.range(10**12).selectExpr("sum(id % 7)").collect()  # minutes of work: killed before it ends
        """
    )
    client = subprocess.Popen([sys.executable, "-c", job], stdout=subprocess.PIPE, text=True)
    try:
        assert client.stdout.readline().strip() == "started"
        time.sleep(3)  # the query is running on the server
        assert client.poll() is None
    finally:
        client.kill()  # what an Airflow kill or a task timeout does to the job's process
        client.wait(timeout=30)
    # The next task's session gets its answer from the same server.
    assert remote.range(1000).selectExpr("sum(id) AS s").first()["s"] == 499500
    assert remote.sql("SELECT 1 AS one").first()["one"] == 1
