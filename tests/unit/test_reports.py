"""Reports: each kind's folder and summary file, the summary reader's filters, and the HTML templates under include/
(escaped, strict) that the evaluation and drift reports render."""

from __future__ import annotations

import json
import os
import time
from datetime import date
from pathlib import Path

import jinja2
import pytest

from jobs import reports
from jobs.config import load_model_config
from jobs.ml import evaluation
from jobs.monitoring import drift
from jobs.monitoring.statistics import ColumnDrift


def test_each_kind_keeps_its_folder(settings) -> None:
    root = settings.reports_root
    assert reports.report_dir(settings, "quality", "m", date(2024, 1, 1), "2024-01-05") == (
        root / "quality" / "m" / "2024-01-01_2024-01-05"
    )
    assert reports.report_dir(settings, "evaluation", "m", "manual__1") == root / "evaluation" / "m" / "manual__1"
    assert reports.report_dir(settings, "drift", "m", date(2024, 1, 1)) == root / "drift" / "m" / "2024-01-01"
    assert reports.summary_path(settings, "evaluation", "m", "r").name == "decision.json"
    assert reports.summary_path(settings, "drift", "m", "2024-01-01").name == "summary.json"
    # Airflow templates go in as they are: the operator renders the path at run time.
    assert str(reports.summary_path(settings, "evaluation", "m", "{{ run_id }}")).endswith(
        "/{{ run_id }}/decision.json"
    )
    with pytest.raises(ValueError, match="keyed by start, end"):
        reports.report_dir(settings, "quality", "m", "2024-01-01")
    with pytest.raises(ValueError, match="report kind"):
        reports.report_dir(settings, "training", "m", "x")  # type: ignore[arg-type]


def test_summary_reader_filters(tmp_path: Path) -> None:
    path = tmp_path / "night" / "summary.json"
    assert reports.read_summary(path) is None
    reports.write_summary(
        path, {"run_id": "r1", "dag_run_id": "d1", "as_of_date": "2024-01-01", "when": date(2024, 1, 1)}
    )
    assert reports.read_summary(path)["when"] == "2024-01-01"  # written with default=str
    assert reports.read_summary(path, run_id="r1", as_of_date="2024-01-01", dag_run_id=None) is not None
    assert reports.read_summary(path, as_of_date="2024-01-02") is None
    assert reports.read_summary(path, dag_run_id="d2") is None
    assert reports.read_summary(path, newer_than=time.time()) is not None, "written just now"
    old = time.time() - 3600
    os.utime(path, (old, old))
    assert reports.read_summary(path, newer_than=time.time()) is None, "a previous try's file"
    assert [p.name for p in path.parent.iterdir()] == ["summary.json"], "no temporary file left behind"
    path.write_text(json.dumps(["not", "a", "summary"]))
    assert reports.read_summary(path) is None


def test_templates_escape_and_refuse_undefined_names() -> None:
    html = reports.render(
        "email/quality_gate.html",
        summary=None,
        model="<m>",
        dag_id="d",
        task_id="t",
        run_id="r",
        try_number=1,
        log_url="u",
        summary_path="s",
    )
    assert "&lt;m&gt;" in html and "<m>" not in html
    with pytest.raises(jinja2.UndefinedError):
        reports.render("reports/evidently_error.html")


DECISION = {
    "decision_id": "m/run/auto",
    "model": "m",
    "action": "rejected",
    "mode": "enabled",
    "summary": "v3 was not promoted: failed <min_lift>.",
    "primary_metric": "roc_auc",
    "triggered_by": "manual by alice",
    "reason": "",
    "dag_run_id": "run",
    "evaluation_set": {"key": "ts1", "holdout": ["1998-01-01", "1998-02-25"], "rows": 1234},
    "gates": [{"name": "min_lift", "passed": False, "observed": -0.01, "threshold": 0.0, "detail": "a < b"}],
    "candidate": {
        "version": 3,
        "metrics": {"roc_auc": 0.7},
        "slices": {"tenure_days>=365": {"roc_auc": 0.66, "rows": 30}},
    },
    "champion": {"version": 2, "metrics": {"roc_auc": 0.71}, "slices": {}},
}


def test_evaluation_report_renders_every_section(tmp_path: Path) -> None:
    path = evaluation.write_report(tmp_path / "index.html", DECISION, [("ROC", "iVBORw0KGgo=")])
    html = path.read_text()
    for text in (
        "m: rejected",
        "failed &lt;min_lift&gt;.",
        "1998-01-01 .. 1998-02-25, 1234 rows",
        "<td>min_lift</td><td>FAIL</td>",
        "<td>-0.01000</td><td>0.0</td><td>a &lt; b</td>",
        "<th>candidate (v3)</th><th>champion (v2)</th>",
        "<td>roc_auc</td><td>0.70000</td><td>0.71000</td>",
        "<td>tenure_days&gt;=365</td><td>0.66000 (30 rows)</td><td>nan (0 rows)</td>",
        '<h3>ROC</h3><img src="data:image/png;base64,iVBORw0KGgo=">',
        "reason: -.",
    ):
        assert text in html, text


def test_drift_report_lists_drifted_columns_first() -> None:
    config = load_model_config("purchase_propensity")
    results = [
        ColumnDrift("tenure_days", "wasserstein", 0.01, 0.1, False, 300, 300),
        ColumnDrift("recency<days>", "wasserstein", 0.52345, 0.1, True, 300, 300),
        ColumnDrift("score", "wasserstein", 0.03, 0.1, False, 300, 300),
    ]
    perf = {
        "as_of_date": "1998-03-01",
        "rows": 200,
        "metrics": {"roc_auc": 0.81234},
        "primary": "roc_auc",
        "at_promotion": 0.85,
        "drop": 0.0377,
    }
    values = drift.report_values(
        config, {"version": 7, "trainset": "ts1"}, results, 0.4567, perf, date(1998, 3, 4), 500, ["big"]
    )
    html = reports.render("reports/drift.html", **values)
    assert (
        html.index("<td>recency&lt;days&gt;</td>") < html.index("<td>score</td>") < html.index("<td>tenure_days</td>")
    )
    for text in (
        "Drift: purchase_propensity v7, window ending 1998-03-04",
        "46% of feature weight drifted",
        "sample of 500 rows per side (not drawn, values cannot be binned: big).",
        "roc_auc 0.8123 vs 0.85 at promotion",
        "<td>0.5234</td>",
        'src="evidently.html"',
    ):
        assert text in html, text
    quiet = reports.render("reports/drift.html", **{**values, "performance": None, "not_plotted": []})
    assert "labels for this window have not matured yet" in quiet and "not drawn" not in quiet
