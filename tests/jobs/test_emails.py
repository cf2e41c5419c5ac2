"""Gate e-mails: what the team reads, the recipients, the summary-file checks, and the connection make exports."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

from jobs import emails, quality
from jobs.settings import load

REPO = Path(__file__).resolve().parents[2]
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
    subject, html = emails.quality_gate_email(SUMMARY, **CONTEXT)
    assert subject == (
        "[ml-platform] data-quality gate FAILED for purchase_propensity 1997-02-05: 1 critical expectation failed"
    )
    for text in ("quarantine_share", "1 of 1 rows unexpected", "max_value=0.05", SUMMARY["report"], "quality_gate"):
        assert text in html
    assert "&lt;quarantine&gt;" in html  # values are escaped


def test_mail_when_the_gate_crashed_before_recording_results() -> None:
    subject, html = emails.quality_gate_email(None, **CONTEXT)
    assert "ERROR" in subject and "no results" in subject
    assert "before it recorded any results" in html and CONTEXT["log_url"] in html


def test_recipients_come_from_the_model_config_first(monkeypatch) -> None:
    monkeypatch.setenv("MLP_ALERT_RECIPIENTS", "ops@example.org")
    assert emails.recipients("purchase_propensity") == ["ml-team@localhost"]


def test_read_summary_ignores_other_runs_and_stale_files(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    assert quality.read_summary(path) is None
    path.write_text(json.dumps(SUMMARY))
    assert quality.read_summary(path, run_id=SUMMARY["run_id"])["passed"] is False
    assert quality.read_summary(path, run_id="another-run") is None
    old = time.time() - 3600
    os.utime(path, (old, old))
    assert quality.read_summary(path, run_id=SUMMARY["run_id"], newer_than=time.time()) is None
    path.write_text("{not json")
    assert quality.read_summary(path) is None


def test_makefile_smtp_connection_matches_the_settings(monkeypatch) -> None:
    for name in ("MLP_SMTP_HOST", "MLP_SMTP_PORT", "MLP_SMTP_SENDER"):
        monkeypatch.delenv(name, raising=False)
    line = next(x for x in (REPO / "Makefile").read_text().splitlines() if "AIRFLOW_CONN_SMTP_DEFAULT" in x)
    exported = json.loads(re.sub(r"^export AIRFLOW_CONN_SMTP_DEFAULT \?= ", "", line))
    assert exported == json.loads(load().smtp_connection_json())
