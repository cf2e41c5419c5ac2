"""The manual promotion DAGs as the Airflow UI shows them: typed Params forms, the promotion job, e-mail callbacks."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _dag(dag_id: str):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags" / f"{dag_id}.py"))
    assert bag.import_errors == {}
    return bag.dags[dag_id]


@pytest.mark.parametrize(("dag_id", "kind"), [("promote_model", "promote"), ("rollback_model", "rollback")])
def test_manual_dags_run_the_promotion_job_and_mail_either_way(dag_id: str, kind: str) -> None:
    dag = _dag(dag_id)
    assert dag.schedule is None, "manual only"
    (task,) = dag.tasks
    assert type(task).__name__ == "PromotionOperator"
    assert task.application_args[:2] == ["jobs.ml.promotion", kind]
    args = task.application_args
    assert args[args.index("--dag-run-id") + 1] == "{{ run_id }}"
    assert "triggering_user_name" in args[args.index("--triggered-by") + 1]
    assert task.decision_path.endswith("{{ run_id }}/decision.json")
    # The task mails its audited outcome itself, through the outbox: no callback that could swallow a lost mail.
    assert not task.on_success_callback and not task.on_failure_callback and task.model == "purchase_propensity"


def test_promote_form_requires_a_version_and_rollback_form_a_reason() -> None:
    from airflow.sdk.exceptions import ParamValidationError

    promote = _dag("promote_model").params
    assert set(promote.keys()) == {"version", "reason", "force", "dry_run"}
    schema = promote.get_param("version").schema
    assert schema["type"] == "integer" and schema["minimum"] == 1
    with pytest.raises(ParamValidationError):
        promote.get_param("version").resolve(None)  # no default: the trigger form will not submit without one
    assert promote.get_param("force").resolve() is False

    rollback = _dag("rollback_model").params
    with pytest.raises(ParamValidationError):
        rollback.get_param("reason").resolve("oops")
    assert rollback.get_param("reason").resolve("the new model mis-scores loyal customers")
    assert rollback.get_param("to_version").resolve(None) is None
    assert rollback.get_param("to_version").resolve(3) == 3
    assert rollback.get_param("force").resolve() is False, "a never-champion target needs an explicit force"
    args = _dag("rollback_model").tasks[0].application_args
    assert args[args.index("--force") + 1] == "{{ params.force }}"
