"""Spark Connect: the platform's own server (``python -m jobs.spark --serve``: Spark's Connect server with the jobs'
Delta packages and configuration) on a free loopback port, and jobs' code as its thin clients.

What a user relies on: a Delta window written through Connect is the same table a classic session writes, with the
same row count from the write's own commit; a client killed in the middle of a job leaves the server serving the
next one.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest


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


def _checksum(frame) -> tuple[int, int]:
    """(rows, order-free checksum of every value) of a table, leaving out what differs between two runs of the same
    data by design: run ids and timestamps of when a row was written."""
    from pyspark.sql import functions as F

    kept = [f.name for f in frame.schema.fields if f.name != "run_id" and f.dataType.typeName() != "timestamp"]
    row = (
        frame.select(F.xxhash64(*kept).alias("h"))
        .agg(F.count("*").alias("n"), F.sum(F.col("h").cast("decimal(38,0)")).alias("s"))
        .first()
    )
    return int(row["n"]), int(row["s"] or 0)


def test_a_cdnow_backfill_and_night_through_connect_give_the_lake_a_classic_session_gives(
    spark, connect_url, settings
) -> None:
    """CDNOW's first three weeks, then one nightly increment: the jobs' own entry points as Spark Connect client
    processes (as the DAGs' tasks run them in connect mode) and the same functions on a classic session give bronze,
    silver and gold features equal in rows and checksums (no label has matured by then)."""
    import os
    from dataclasses import replace
    from datetime import date

    from jobs.config import load_model_config
    from jobs.features import build
    from jobs.lake import clean, ingest
    from jobs.settings import REPO_ROOT
    from jobs.sources import cdnow

    model = "purchase_propensity"
    config = load_model_config(model)
    runs = ((date(1997, 1, 1), date(1997, 1, 20), "backfill"), (date(1997, 1, 21), date(1997, 1, 21), "nightly"))
    cdnow.replay(settings.landing_root, runs[0][0], runs[-1][1])
    lakes = {name: replace(settings, lake_root=f"{settings.lake_root}/{name}") for name in ("classic", "connect")}

    classic = lakes["classic"]
    for first, last, run in runs:
        ingest.ingest(spark, classic, first, last, run)
        clean.clean(spark, classic, first, last, run)
        build.build_features(spark, classic, config, first, last, run)

    env = {**os.environ, "MLP_SPARK_REMOTE": connect_url, "MLP_LAKE_ROOT": lakes["connect"].lake_root}
    for first, last, run in runs:
        window = ["--start", str(first), "--end", str(last), "--run-id", run]
        for module, extra in (
            ("jobs.lake.ingest", []),
            ("jobs.lake.clean", []),
            ("jobs.features.build", ["--model", model]),
        ):
            done = subprocess.run(
                [sys.executable, str(REPO_ROOT / "include" / "spark_entry.py"), module, *extra, *window],
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert done.returncode == 0, f"{module} over Connect failed:\n{done.stderr[-3000:]}"

    sums = {}
    for name, lake in lakes.items():
        paths = {"/".join(t): lake.table_path(*t) for t in (ingest.BRONZE_TABLE, clean.SILVER_TABLE)}
        paths[build.FEATURES_TABLE] = lake.model_table_path(model, build.FEATURES_TABLE)
        sums[name] = {table: _checksum(spark.read.format("delta").load(path)) for table, path in paths.items()}
    assert sums["connect"] == sums["classic"]
    assert all(rows > 0 for rows, _ in sums["classic"].values())
