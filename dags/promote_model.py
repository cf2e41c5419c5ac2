"""
### Promote a model version (manual)

Trigger with the **version** to promote and a **reason**. The version and the current champion are scored on the
same, most recent matured holdout and the model's promotion gates decide (`include/models/<model>.yaml`,
`promotion:`). A version that fails a gate is **not** promoted: the run fails at once (no retries), the decision is
audited and mailed. Tick **force** to promote anyway; a forced promotion needs a written reason and is audited as
`forced`, with every failed gate. **dry_run** decides and audits, and moves nothing.

The move is check-and-set: `champion` -> the version, `previous_champion` -> the old champion, refused if the
champion changed while this run was evaluating. Undo it with `rollback_model`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG, Param
from mlplatform.tasks import promotion_task

MODEL = "purchase_propensity"

with DAG(
    dag_id=Path(__file__).stem,
    description="promote a chosen model version to champion: gated, audited, mailed (force needs a reason)",
    doc_md=__doc__,
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["promotion", "mlflow", "manual"],
    default_args={"owner": "ml-platform", "retries": 2, "retry_delay": timedelta(minutes=1)},
    params={
        "version": Param(type="integer", minimum=1, description=f"the {MODEL} version to promote"),
        "reason": Param("", type="string", description="why (required, in words, when forcing)"),
        "force": Param(False, type="boolean", description="promote even if gates fail (audited as forced)"),
        "dry_run": Param(False, type="boolean", description="decide and audit only; move no alias"),
    },
) as dag:
    promotion_task(
        "promote",
        MODEL,
        "promote",
        [
            "--version",
            "{{ params.version }}",
            "--reason",
            "{{ params.reason }}",
            "--force",
            "{{ params.force }}",
            "--dry-run",
            "{{ params.dry_run }}",
        ],
    )
