"""Gate e-mails: what the team reads, the recipients, the summary-file checks, and the connection make exports."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

from jobs import reports
from jobs.notify import mails
from jobs.settings import load

REPO = Path(__file__).resolve().parents[3]
SUMMARY = {
    "model": "purchase_propensity",
    "start": "1997-02-05",
    "end": "1997-02-05",
    "run_id": "scheduled__1997-02-06",
    "passed": False,
    "evaluated": 83,
    "critical_failures": [
        {
            "dataset": "volume",
            "expectation": "expect_column_values_to_be_between",
            "column": "quarantine_share",
            "severity": "critical",
            "observed": "1 of 1 rows unexpected; e.g. [0.2]",
            "expected": "min_value=0, max_value=0.05",
            "notes": "share of landed rows sent to <quarantine>",
        }
    ],
    "warnings": [],
    "report": "file:///reports/quality/purchase_propensity/1997-02-05_1997-02-05/docs/index.html",
}
CONTEXT = {
    "model": "purchase_propensity",
    "dag_id": "feature_pipeline",
    "task_id": "quality_gate",
    "run_id": "scheduled__1997-02-06",
    "try_number": 1,
    "log_url": "http://localhost:8080/log",
    "summary_path": "/reports/summary.json",
}


def test_failure_mail_names_the_expectation_observed_expected_and_report() -> None:
    subject, html = mails.quality_gate_email(SUMMARY, **CONTEXT)
    assert subject == (
        "[ml-platform] data-quality gate FAILED for purchase_propensity 1997-02-05: 1 critical expectation failed"
    )
    for text in ("quarantine_share", "1 of 1 rows unexpected", "max_value=0.05", SUMMARY["report"], "quality_gate"):
        assert text in html
    assert "&lt;quarantine&gt;" in html  # values are escaped


def test_mail_when_the_gate_crashed_before_recording_results() -> None:
    subject, html = mails.quality_gate_email(None, **CONTEXT)
    assert "ERROR" in subject and "no results" in subject
    assert "before it recorded any results" in html and CONTEXT["log_url"] in html


def test_recipients_a_deployment_sets_reach_the_reference_model_and_a_model_file_can_route_its_own(
    monkeypatch, tmp_path: Path
) -> None:
    import shutil

    from jobs.settings import REPO_ROOT

    # The deployment's list (compose, Helm) applies to a model file that names nobody (the reference model's).
    monkeypatch.setenv("MLP_ALERT_RECIPIENTS", "ops@example.org,oncall@example.org")
    assert mails.recipients("purchase_propensity") == ["ops@example.org", "oncall@example.org"]
    # Unset: the laptop default.
    monkeypatch.delenv("MLP_ALERT_RECIPIENTS")
    assert mails.recipients("purchase_propensity") == ["ml-team@localhost"]
    # A model file that routes its model to its own team wins over the deployment's list.
    shutil.copy(REPO_ROOT / "include" / "models" / "purchase_propensity.yaml", tmp_path / "purchase_propensity.yaml")
    path = tmp_path / "purchase_propensity.yaml"
    path.write_text(path.read_text().replace("recipients: []", "recipients: [basket-team@example.org]"))
    monkeypatch.setenv("MLP_MODELS_DIR", str(tmp_path))
    monkeypatch.setenv("MLP_ALERT_RECIPIENTS", "ops@example.org")
    assert mails.recipients("purchase_propensity") == ["basket-team@example.org"]


def test_read_summary_ignores_other_runs_and_stale_files(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    assert reports.read_summary(path) is None
    path.write_text(json.dumps(SUMMARY))
    assert reports.read_summary(path, run_id=SUMMARY["run_id"])["passed"] is False
    assert reports.read_summary(path, run_id="another-run") is None
    old = time.time() - 3600
    os.utime(path, (old, old))
    assert reports.read_summary(path, run_id=SUMMARY["run_id"], newer_than=time.time()) is None
    path.write_text("{not json")
    assert reports.read_summary(path) is None


def test_makefile_smtp_connection_matches_the_settings(monkeypatch) -> None:
    for name in ("MLP_SMTP_HOST", "MLP_SMTP_PORT", "MLP_SMTP_SENDER"):
        monkeypatch.delenv(name, raising=False)
    line = next(x for x in (REPO / "Makefile").read_text().splitlines() if "AIRFLOW_CONN_SMTP_DEFAULT" in x)
    exported = json.loads(re.sub(r"^export AIRFLOW_CONN_SMTP_DEFAULT \?= ", "", line))
    assert exported == json.loads(load().smtp_connection_json())


DECISION = {
    "decision_id": "purchase_propensity/manual__1/promote",
    "model": "purchase_propensity",
    "kind": "promote",
    "action": "rejected",
    "mode": "enabled",
    "primary_metric": "roc_auc",
    "summary": "v4 was not promoted (roc_auc 0.7000 vs champion v3 0.7500): failed min_lift.",
    "candidate": {"version": 4, "family": "pytorch", "metrics": {"roc_auc": 0.7, "log_loss": 0.41, "rows": 9.0}},
    "champion": {"version": 3, "family": "xgboost", "metrics": {"roc_auc": 0.75, "log_loss": 0.39, "rows": 9.0}},
    "champion_before": 3,
    "champion_after": 3,
    "previous_champion_after": 2,
    "gates": [
        {"name": "min_lift", "passed": False, "observed": -0.05, "threshold": 0.002, "detail": "<b>x</b>"},
        {"name": "min_primary", "passed": True, "observed": 0.7, "threshold": 0.65, "detail": ""},
    ],
    "failed_gates": ["min_lift"],
    "evaluation_set": {"key": "ts-1", "holdout": ["1998-01-01", "1998-02-25"], "rows": 9},
    "triggered_by": "manual by alice",
    "reason": "try it",
    "report": "file:///reports/evaluation/purchase_propensity/manual__1/index.html",
    "evaluation_run_id": "abc123",
    "dag_run_id": "manual__1",
}
PROMOTION_CONTEXT = {
    "model": "purchase_propensity",
    "dag_id": "promote_model",
    "task_id": "promote",
    "run_id": "manual__1",
    "log_url": "http://localhost:8080/log",
}


def test_rejection_mail_has_both_sides_metrics_every_gate_and_the_report() -> None:
    subject, html = mails.promotion_email(DECISION, **PROMOTION_CONTEXT)
    assert subject == (
        "[ml-platform] purchase_propensity: v4 rejected, champion unchanged (roc_auc 0.7000): failed min_lift"
    )
    assert "<b>roc_auc</b> (primary)</td>\n      <td>0.70000</td><td>0.75000</td>" in html
    assert html.index("roc_auc") < html.index("log_loss"), "primary metric first"
    assert "-0.05000" in html and "FAIL" in html and "&lt;b&gt;x&lt;/b&gt;" in html  # gate details are escaped
    for text in (DECISION["report"], "abc123", "manual by alice", "try it", "1998-01-01 .. 1998-02-25"):
        assert text in html
    assert "rollback_model" in html, "the mail says how to undo"


def test_promotion_and_rollback_subjects() -> None:
    promoted = {**DECISION, "action": "promoted", "failed_gates": [], "champion_after": 4}
    assert mails.promotion_email(promoted, **PROMOTION_CONTEXT)[0] == (
        "[ml-platform] purchase_propensity: v4 promoted to champion (roc_auc 0.7000)"
    )
    # A rollback whose evaluation could not run still mails, without metrics.
    rolled = {**DECISION, "action": "rolled_back", "candidate": {"version": 2}, "champion": None, "gates": []}
    rolled.pop("evaluation_set")
    subject, html = mails.promotion_email({**rolled, "champion_after": 2}, **PROMOTION_CONTEXT)
    assert subject == "[ml-platform] purchase_propensity: rolled back to v2"
    assert "Metrics on the same evaluation set" not in html


def test_mail_when_the_promotion_task_failed_before_deciding() -> None:
    subject, html = mails.promotion_email(None, **PROMOTION_CONTEXT, error="Cannot execute: spark-submit")
    assert "promotion ERROR" in subject and "no alias moved" in html and "Cannot execute: spark-submit" in html
    refused = {"dag_run_id": "manual__1", "error": "purchase_propensity has no version 99"}
    assert "has no version 99" in mails.promotion_email(refused, **PROMOTION_CONTEXT)[1]


def test_a_promotion_mail_reads_the_audited_outcome_not_the_intent() -> None:
    failed = {
        **DECISION,
        "kind": "rollback",
        "action": "rolled_back",
        "phase": "failed",
        "applied": False,
        "error": "the champion was moved outside this decision (v7)",
        "champion_before": 1,
        "champion_after": 1,
        "summary": "rollback to v2 NOT applied",
    }
    subject, html = mails.promotion_email(failed, **PROMOTION_CONTEXT)
    assert "NOT applied" in subject and "rolled back to" not in subject and "v1 unchanged" in subject
    assert "recorded but not carried out" in html and "failed before it could decide" not in html
    applied = {**failed, "phase": "applied", "applied": True, "champion_after": 2, "error": None}
    subject, _ = mails.promotion_email(applied, **PROMOTION_CONTEXT)
    assert "rolled back to v2" in subject
