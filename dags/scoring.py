"""
### Scoring and drift monitoring (nightly, after the features)

Runs when the feature pipeline publishes the model's features Asset (only after its data-quality gate passed), for
the as-of date that run produced; or from the **Trigger** form with `as_of_date` (re-scoring a date replaces that
date only).

1. `score` resolves `models:/<model>@champion` to a concrete version and scores every customer with Spark into
   gold `predictions` (replaceWhere on the date).
2. `monitor_drift` compares the window's features and scores with the champion's training data (the test
   Evidently would pick per column, computed in Spark from bounded profiles), checks performance on the date whose
   labels just matured, writes the model's `drift_metrics` and `drift_windows` tables, the HTML report (also in
   MLflow), and applies the alert policy (`drift:` in the model config: drifted share, k of n windows, cooldown).
3. `start_retraining` triggers the `training` DAG with the reason and `as_of_end` (the last label matured by that
   night) in its conf when a drift episode (or a performance drop) opens and the policy asks for it; the cooldown
   stops retrain loops. The promotion decision of that training run is audited in the model's `decisions` table
   with this reason.
4. `send_alert` mails the team once per episode: what drifted, by how much, the report, and whether retraining
   started. The mail goes through the outbox (pending until the SMTP server accepted it, keyed by the episode), so
   an SMTP outage fails this task and delays the mail, and any mail still pending is delivered the next night.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG, Param, task
from mlplatform.tasks import drift_task, features_asset, spark_job

MODEL = "purchase_propensity"
AS_OF = "{{ ti.xcom_pull(task_ids='as_of_date') }}"

with DAG(
    dag_id=Path(__file__).stem,
    description="champion scores every customer nightly -> drift monitor (Evidently tests in Spark) -> alert, retrain",
    doc_md=__doc__,
    schedule=[features_asset(MODEL)],
    start_date=datetime(1997, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["inference", "drift", "evidently", "alerts"],
    default_args={"owner": "ml-platform", "retries": 2, "retry_delay": timedelta(minutes=2)},
    params={
        "as_of_date": Param(
            None, type=["null", "string"], format="date", description="date to score (default: the new features')"
        ),
    },
) as dag:

    @task
    def as_of_date(**context) -> str:
        """The as-of date: the form's, else the one the triggering features Asset event carries."""
        if context["params"].get("as_of_date"):
            return context["params"]["as_of_date"]
        for events in context["triggering_asset_events"].values():
            for event in reversed(events):
                if (event.extra or {}).get("end"):
                    return event.extra["end"]
        raise ValueError("no as_of_date: trigger with the as_of_date Param, or let the feature pipeline trigger this")

    @task.short_circuit(ignore_downstream_trigger_rules=False)
    def retrain_needed(decision: dict) -> bool:
        """Only a new episode whose policy asks for retraining starts the training DAG."""
        return bool(decision["retrain"])

    @task(trigger_rule="none_failed")
    def send_alert(decision: dict, **context) -> str:
        """One e-mail per drift episode, queued in the outbox (keyed by the episode, so retries and re-runs never
        mail twice) and delivered through smtp_default with any mail an earlier SMTP outage left pending. SMTP down:
        this task fails and retries; the mail stays pending until a later try or night delivers it."""
        from airflow.sdk.exceptions import AirflowSkipException
        from mlplatform import notifiers

        if decision["alert"]:
            retrain_run_id = context["ti"].xcom_pull(task_ids="start_retraining", key="trigger_run_id")
            notifiers.queue_drift_alert(
                context, MODEL, decision["summary"], decision["episode_id"], retrain_run_id or None
            )
        done = notifiers.deliver(MODEL)
        if not done.sent and not decision["alert"]:
            raise AirflowSkipException(decision["reason"])
        return f"sent {done.sent or 'nothing new'} ({decision['reason']})"

    day = as_of_date()
    score = spark_job("score", "jobs.serving.batch", ["--model", MODEL, "--date", AS_OF, "--run-id", "{{ run_id }}"])
    drift = drift_task(MODEL, AS_OF)
    start_retraining = TriggerDagRunOperator(
        task_id="start_retraining",
        trigger_dag_id="training",
        trigger_run_id="drift__" + AS_OF,
        conf={
            "reason": "{{ ti.xcom_pull(task_ids='monitor_drift')['retrain_reason'] }}",
            "as_of_end": "{{ ti.xcom_pull(task_ids='monitor_drift')['retrain_as_of_end'] }}",
        },
        skip_when_already_exists=True,
        wait_for_completion=False,
    )
    decision = drift.output
    day >> score >> drift
    retrain_needed(decision) >> start_retraining >> send_alert(decision)
