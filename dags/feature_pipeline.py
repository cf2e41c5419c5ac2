"""
### Feature pipeline (nightly)

`ingest` lands the night's files into **bronze**, `clean` types and deduplicates them into **silver** (bad lines
go to quarantine with a reason, counts reconcile in `ops/reconciliation`), `features` computes point-in-time
customer features into **gold** (incrementally from the previous night when it can), `labels` writes the
labels whose horizon has just matured, and `quality_gate` checks the window's bronze, volume, silver and gold
with Great Expectations (suites in `include/expectations/`).

Only a passing gate publishes the model's features Asset, which is what training and scoring are scheduled on:
a failed critical expectation stops them, fails the task without retries and mails the team the failing
expectations (observed vs expected) and the Data Docs report. Warnings are recorded and the run goes on.

Each run covers its data interval (the day that ended when it started); every write replaces exactly its
dates, so a re-run is safe.

**Manual backfill**: trigger with `start_date` and `end_date` to rebuild a whole range in one Spark job per stage.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG, Param
from airflow.timetables.interval import CronDataIntervalTimetable
from mlplatform.tasks import features_asset, quality_gate, spark_job

MODEL = "purchase_propensity"
# The day a run processes is its data interval's start: for a scheduled run that is ds, and a manual trigger
# without dates processes the last complete day before it.
START = "{{ params.start_date or (data_interval_start | ds) }}"
END = "{{ params.end_date or params.start_date or (data_interval_start | ds) }}"
WINDOW = ["--start", START, "--end", END, "--run-id", "{{ run_id }}"]

with DAG(
    dag_id=Path(__file__).stem,
    description="landing -> bronze -> silver -> gold features and labels, nightly or over a backfill range",
    doc_md=__doc__,
    # Data intervals: the run for day d starts once d is over, and ds = d is the day it processes.
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=datetime(1997, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["features", "spark", "delta"],
    default_args={"owner": "ml-platform", "retries": 2, "retry_delay": timedelta(minutes=2)},
    params={
        "start_date": Param(None, type=["null", "string"], format="date", description="backfill from (inclusive)"),
        "end_date": Param(None, type=["null", "string"], format="date", description="backfill to (inclusive)"),
    },
) as dag:
    ingest = spark_job("ingest", "jobs.lake.ingest", WINDOW)
    clean = spark_job("clean", "jobs.lake.clean", WINDOW)
    features = spark_job("features", "jobs.features.build", ["--model", MODEL, *WINDOW])
    labels = spark_job("labels", "jobs.features.labels", ["--model", MODEL, *WINDOW])
    gate = quality_gate(MODEL, START, END, "{{ run_id }}", outlets=[features_asset(MODEL)])
    ingest >> clean >> features >> labels >> gate
