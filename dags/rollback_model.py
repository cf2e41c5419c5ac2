"""
### Roll back the champion (manual)

One step back: `champion` returns to `previous_champion` (or to the **to_version** you name), and the version it
replaces becomes `previous_champion`, so a second rollback undoes the first. A **reason** is required. A
**to_version** must have been champion before (the model's `decisions` table knows); tick **force** to roll back to any
other version, audited as forced. Gates do not
apply (this is the emergency path), but both versions are still scored on the latest matured holdout when
possible, so the audit row and the e-mail show what the rollback traded. Batch inference picks up the new champion
on its next run (`models:/<model>@champion`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG, Param
from mlplatform.tasks import promotion_task

MODEL = "purchase_propensity"

with DAG(
    dag_id=Path(__file__).stem,
    description="roll the champion back to previous_champion (or a chosen version), with a reason; audited, mailed",
    doc_md=__doc__,
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["promotion", "mlflow", "manual"],
    default_args={"owner": "ml-platform", "retries": 2, "retry_delay": timedelta(minutes=1)},
    params={
        "reason": Param(
            "", type="string", minLength=10, description="why roll back (required, at least 10 characters)"
        ),
        "to_version": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            description="empty: previous_champion; or a version that was champion before (the audit knows)",
        ),
        "force": Param(
            False, type="boolean", description="allow a to_version that was never champion (audited as forced)"
        ),
    },
) as dag:
    promotion_task(
        "rollback",
        MODEL,
        "rollback",
        [
            "--reason",
            "{{ params.reason }}",
            "--version",
            "{{ params.to_version if params.to_version else '' }}",
            "--force",
            "{{ params.force }}",
        ],
    )
