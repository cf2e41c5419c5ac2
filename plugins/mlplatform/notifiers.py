"""Notifiers: e-mails to the model's team through the `smtp_default` connection (Airflow's SMTP provider)."""

from __future__ import annotations

from typing import Any

from airflow.providers.smtp.notifications.smtp import SmtpNotifier

from jobs.emails import quality_gate_email, recipients
from jobs.quality import read_summary
from jobs.settings import load


class QualityGateNotifier(SmtpNotifier):
    """On a failed gate task: mail which expectations failed, observed vs expected, and where the report is.

    The recipients come from the model config (``alerts.recipients``), else from MLP_ALERT_RECIPIENTS; they are
    resolved when the mail is sent, not when the DAG file is parsed.
    """

    template_fields = (*SmtpNotifier.template_fields, "summary_path")

    def __init__(self, *, model: str, summary_path: str, **kwargs: Any) -> None:
        settings = load()
        kwargs.setdefault("smtp_conn_id", settings.smtp_conn_id)
        kwargs.setdefault("from_email", settings.smtp_sender)
        super().__init__(to=list(settings.alert_recipients), **kwargs)
        self.model = model
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


class PromotionNotifier(SmtpNotifier):
    """After a promotion task: mail the decision (promoted, forced, rejected, rolled back, dry run) with the metrics
    of both sides and every gate, or the error when the task failed before deciding. Nothing to decide: no mail."""

    template_fields = (*SmtpNotifier.template_fields, "decision_path")

    def __init__(self, *, model: str, decision_path: str, **kwargs: Any) -> None:
        settings = load()
        kwargs.setdefault("smtp_conn_id", settings.smtp_conn_id)
        kwargs.setdefault("from_email", settings.smtp_sender)
        super().__init__(to=list(settings.alert_recipients), **kwargs)
        self.model = model
        self.decision_path = decision_path

    def notify(self, context: Any) -> None:
        from jobs.emails import promotion_email
        from jobs.promotion import read_decision

        ti = context["ti"]
        decision = read_decision(self.decision_path, dag_run_id=context["run_id"])
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
