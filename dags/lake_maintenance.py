"""
### Lake maintenance (weekly)

Compacts every Delta table of the lake (`OPTIMIZE`) and removes files no reader needs any more (`VACUUM`) with a
retention of at least 7 days, so time travel within that week and readers of older snapshots keep working.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG, Param
from mlplatform.tasks import spark_job

with DAG(
    dag_id=Path(__file__).stem,
    description="OPTIMIZE and VACUUM every Delta table with a safe retention",
    doc_md=__doc__,
    schedule="0 3 * * 0",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["maintenance", "delta"],
    default_args={"owner": "ml-platform", "retries": 2, "retry_delay": timedelta(minutes=10)},
    params={"retention_hours": Param(168, type="integer", minimum=168, description="VACUUM retention (>= 7 days)")},
) as dag:
    spark_job("optimize_and_vacuum", "jobs.lake.maintenance", ["--retention-hours", "{{ params.retention_hours }}"])
