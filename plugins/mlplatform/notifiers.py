"""Notifiers: e-mails to the model's team through the `smtp_default` connection (Airflow's SMTP provider)."""

from __future__ import annotations

from typing import Any

from airflow.providers.smtp.notifications.smtp import SmtpNotifier

from jobs.notify.mails import quality_gate_email, recipients
from jobs.reports import read_summary
from jobs.settings import load


class _TeamNotifier(SmtpNotifier):
    """An e-mail to a model's team through the platform's SMTP connection and sender.

    The recipients come from the model config (``alerts.recipients``), else from MLP_ALERT_RECIPIENTS; they are
    resolved when the mail is sent, not when the DAG file is parsed.
    """

    def __init__(self, *, model: str, **kwargs: Any) -> None:
        settings = load()
        kwargs.setdefault("smtp_conn_id", settings.smtp_conn_id)
        kwargs.setdefault("from_email", settings.smtp_sender)
        super().__init__(to=list(settings.alert_recipients), **kwargs)
        self.model = model


class QualityGateNotifier(_TeamNotifier):
    """On a failed gate task: mail which expectations failed, observed vs expected, and where the report is."""

    template_fields = (*SmtpNotifier.template_fields, "summary_path")

    def __init__(self, *, model: str, summary_path: str, **kwargs: Any) -> None:
        super().__init__(model=model, **kwargs)
        self.summary_path = summary_path

    def notify(self, context: Any) -> None:
        ti = context["ti"]
        summary = read_summary(self.summary_path, run_id=context["run_id"])
        self.to = recipients(self.model)
        self.subject, self.html_content = quality_gate_email(
            summary,
            model=self.model,
            dag_id=ti.dag_id,
            task_id=ti.task_id,
            run_id=context["run_id"],
            try_number=ti.try_number,
            log_url=getattr(ti, "log_url", ""),
            summary_path=self.summary_path,
        )
        super().notify(context)


class PromotionNotifier(_TeamNotifier):
    """After a promotion task: mail the decision (promoted, forced, rejected, rolled back, dry run) with the metrics
    of both sides and every gate, or the error when the task failed before deciding. Nothing to decide: no mail."""

    template_fields = (*SmtpNotifier.template_fields, "decision_path")

    def __init__(self, *, model: str, decision_path: str, **kwargs: Any) -> None:
        super().__init__(model=model, **kwargs)
        self.decision_path = decision_path

    def notify(self, context: Any) -> None:
        from jobs.notify.mails import promotion_email

        ti = context["ti"]
        decision = read_summary(self.decision_path, dag_run_id=context["run_id"])
        if decision is not None and decision.get("action") == "skipped":
            self.log.info("no promotion e-mail: %s", decision.get("summary"))
            return
        self.to = recipients(self.model)
        self.subject, self.html_content = promotion_email(
            decision,
            model=self.model,
            dag_id=ti.dag_id,
            task_id=ti.task_id,
            run_id=context["run_id"],
            log_url=getattr(ti, "log_url", ""),
            error=str(context.get("exception") or ""),
        )
        super().notify(context)


class DriftAlertNotifier(_TeamNotifier):
    """A drift episode: what drifted and by how much, the report, and whether retraining was started."""

    template_fields = (*SmtpNotifier.template_fields, "summary_path", "retrain_run_id")

    def __init__(self, *, model: str, summary_path: str, retrain_run_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(model=model, **kwargs)
        self.summary_path = summary_path
        self.retrain_run_id = retrain_run_id

    def notify(self, context: Any) -> None:
        from jobs.notify.mails import drift_email

        summary = read_summary(self.summary_path)
        if summary is None:
            raise FileNotFoundError(f"no drift summary at {self.summary_path}; nothing to mail")
        ti = context["ti"]
        self.to = recipients(self.model)
        self.subject, self.html_content = drift_email(
            summary,
            self.retrain_run_id,
            dag_id=ti.dag_id,
            run_id=context["run_id"],
            log_url=getattr(ti, "log_url", ""),
        )
        super().notify(context)
