"""
### Feature pipeline (nightly)

Lands the night's transaction files into the **bronze** Delta table (raw lines with lineage). Each run covers its
data interval (`ds`); re-running a date replaces that date only.

Manual backfill: trigger with `start_date` and `end_date` to ingest a whole range in one Spark job.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG, Param
from airflow.timetables.interval import CronDataIntervalTimetable

from jobs.tasks import spark_job

START = "{{ params.start_date or ds }}"
END = "{{ params.end_date or params.start_date or ds }}"

with DAG(
    dag_id=Path(__file__).stem,
    description="landing -> bronze, nightly or over a backfill range",
    doc_md=__doc__,
    # Data intervals: the run for day d starts after d ends, and ds = d is the day it processes.
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
    ingest = spark_job("ingest", "jobs.ingest", ["--start", START, "--end", END, "--run-id", "{{ run_id }}"])
