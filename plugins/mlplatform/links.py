"""Operator extra links: a task instance links to its MLflow run and to the HTML report it wrote.

Airflow 3 resolves an operator's links on the worker when the task ends (``get_link`` at finalize) and keeps each URL
in XCom under the link's ``xcom_key``; the UI reads that back. While they run, the platform's operators push the raw
facts (a report's location, an MLflow run id) under the ``source_key`` of the link that shows them, even when the task
then fails (a failed data-quality gate links its report). The URLs a browser opens come from the settings:
``MLP_MLFLOW_UI_URL`` for MLflow, and ``MLP_REPORTS_URL`` when something serves ``MLP_REPORTS_ROOT`` over HTTP
(otherwise a report is linked as its ``file://`` URI).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote, unquote, urlparse

from airflow.sdk import BaseOperatorLink
from airflow.sdk.execution_time.xcom import XCom

from jobs.settings import Settings, load

log = logging.getLogger(__name__)


def mlflow_run_url(run: dict[str, Any] | None, ui_url: str) -> str:
    """The MLflow UI page of ``run`` (``{"run_id": ..., "experiment_id": ...}``), or "" when there is no run."""
    if not run or not run.get("run_id"):
        return ""
    base = ui_url.rstrip("/")
    if run.get("experiment_id"):
        return f"{base}/#/experiments/{quote(str(run['experiment_id']))}/runs/{quote(str(run['run_id']))}"
    # MLflow's direct run page looks the experiment up itself.
    return f"{base}/#/runs/{quote(str(run['run_id']))}"


def report_url(report: str | None, reports_root: Path, reports_url: str = "") -> str:
    """Where a browser opens ``report`` (a ``file://`` URI or a path): under ``reports_url`` when that serves
    ``reports_root``, else its ``file://`` URI; other URLs (s3://, http://) are returned unchanged."""
    if not report:
        return ""
    if "://" in report and not report.startswith("file:"):
        return report
    path = Path(unquote(urlparse(report).path)) if report.startswith("file:") else Path(report)
    if not path.is_absolute():
        path = path.resolve()
    if reports_url:
        try:
            relative = path.relative_to(reports_root)
        except ValueError:
            log.warning("report %s is outside MLP_REPORTS_ROOT %s; linking the file itself", path, reports_root)
        else:
            return f"{reports_url.rstrip('/')}/{quote(relative.as_posix())}"
    return path.as_uri()


class _PushedLink(BaseOperatorLink):
    """A link built from what the operator pushed to XCom under ``source_key`` while it ran ("" when nothing)."""

    source_key: ClassVar[str]

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        value = XCom.get_value(ti_key=ti_key, key=self.source_key)
        return self.url(value, load()) if value else ""

    def url(self, value: Any, settings: Settings) -> str:
        """The URL for the pushed ``value``."""
        raise NotImplementedError


class MLflowRunLink(_PushedLink):
    """The task's MLflow run (training: the parent run; promotion: the evaluation run)."""

    name = "MLflow run"
    source_key = "mlp_mlflow_run"

    def url(self, value: Any, settings: Settings) -> str:
        return mlflow_run_url(value, settings.mlflow_ui_url)


class _ReportLink(_PushedLink):
    """An HTML report the task's job wrote under MLP_REPORTS_ROOT."""

    def url(self, value: Any, settings: Settings) -> str:
        return report_url(str(value), settings.reports_root, settings.reports_url)


class DataQualityReportLink(_ReportLink):
    """The data-quality gate's Data Docs (Great Expectations)."""

    name = "Data-quality report"
    source_key = "mlp_report_quality"


class EvaluationReportLink(_ReportLink):
    """The champion/challenger evaluation report of a promotion decision."""

    name = "Evaluation report"
    source_key = "mlp_report_evaluation"


class DriftReportLink(_ReportLink):
    """The night's drift report (decisions on all rows, Evidently on a sample)."""

    name = "Drift report"
    source_key = "mlp_report_drift"


LINKS: tuple[type[_PushedLink], ...] = (MLflowRunLink, DataQualityReportLink, EvaluationReportLink, DriftReportLink)


def push(context: Any, link: type[_PushedLink], value: Any) -> None:
    """Record ``value`` for ``link`` on this task instance; never fails the task (a missing link is only a nuisance)."""
    if not value:
        return
    try:
        context["ti"].xcom_push(key=link.source_key, value=value)
    except Exception:
        log.warning("could not record the %r link", link.name, exc_info=True)


def push_mlflow_run(context: Any, run_id: str | None, experiment_id: str | None = None) -> None:
    """Record the task's MLflow run for its link; the experiment is looked up when not given (best effort)."""
    if not run_id:
        return
    if experiment_id is None:
        experiment_id = mlflow_experiment_id(run_id)
    push(context, MLflowRunLink, {"run_id": run_id, "experiment_id": experiment_id})


def mlflow_experiment_id(run_id: str) -> str | None:
    """The experiment of MLflow run ``run_id``, or None when MLflow cannot say (the link then opens the run alone)."""
    try:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=load().mlflow_tracking_uri).get_run(run_id).info.experiment_id
    except Exception:
        log.warning("no MLflow experiment found for run %s; its link opens the run page directly", run_id)
        return None
