"""Team e-mails through the outbox (``jobs.notify.outbox``) and the `smtp_default` connection (Airflow's SMTP
provider).

No mail is sent from a callback: a task queues its mail under an idempotency key (the drift episode, the promotion
decision, the gate run) and delivers it in the task itself, so an SMTP outage is visible (the task fails and is
retried; the mail stays pending) and a retry never sends a second mail for the same key. Whatever stays pending is
delivered by the next delivery for the model: the next try, or the scoring DAG's ``send_alert`` the next night.
"""

from __future__ import annotations

import logging
from typing import Any

from jobs.notify import mails, outbox
from jobs.reports import read_summary
from jobs.settings import load

log = logging.getLogger(__name__)


class MailNotSentError(RuntimeError):
    """The SMTP server did not accept a mail; it stays pending in the outbox and is delivered by a later try."""


def smtp_send(message: outbox.Message) -> None:
    """Send one outbox message through the platform's SMTP connection, its key as the Message-ID."""
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    settings = load()
    with SmtpHook(smtp_conn_id=settings.smtp_conn_id) as hook:
        hook.send_email_smtp(
            to=message.to,
            subject=message.subject,
            html_content=message.html,
            from_email=settings.smtp_sender,
            custom_headers={"Message-ID": message.message_id, "X-MLP-Key": message.key},
        )


def deliver(model: str, *, raise_on_failure: bool = True) -> outbox.Delivery:
    """Deliver every pending mail of ``model`` (tonight's and any an earlier outage left); raise MailNotSentError
    if any stays pending."""
    done = outbox.deliver(load(), smtp_send, model=model)
    if done.failed and raise_on_failure:
        raise MailNotSentError(
            f"{len(done.failed)} e-mail(s) not accepted by the SMTP server, kept pending in the outbox and retried: "
            + "; ".join(f"{k}: {e}" for k, e in done.failed.items())
        )
    return done


def queue(model: str, key: str, kind: str, subject: str, html: str, **extra: Any) -> outbox.Message:
    """Queue one team mail for ``model`` under ``key`` (a no-op when that key is already pending or sent)."""
    return outbox.enqueue(
        load(),
        outbox.Message(
            key=key, kind=kind, model=model, to=mails.recipients(model), subject=subject, html=html, extra=extra
        ),
    )


def _task_context(context: Any) -> dict[str, Any]:
    ti = context["ti"]
    return {
        "dag_id": ti.dag_id,
        "task_id": ti.task_id,
        "run_id": context["run_id"],
        "try_number": ti.try_number,
        "log_url": getattr(ti, "log_url", ""),
    }


def gate_key(model: str, run_id: str, summary: dict | None) -> str:
    """One gate mail per model, run and window."""
    window = f"{summary['start']}_{summary['end']}" if summary else "no-results"
    return f"gate/{model}/{run_id}/{window}"


def mail_gate_failure(context: Any, model: str, summary: dict | None) -> outbox.Delivery:
    """Queue and deliver the mail for a failed gate (``summary`` None: it failed before recording results)."""
    subject, html = mails.quality_gate_email(summary, model=model, summary_path="", **_task_context(context))
    queue(model, gate_key(model, context["run_id"], summary), "gate", subject, html, run_id=context["run_id"])
    return deliver(model)


def promotion_key(decision: dict | None, model: str, run_id: str) -> str:
    """One mail per promotion decision; a task that failed before deciding mails once per run."""
    if decision and decision.get("decision_id") and "action" in decision:
        return f"promotion/{decision['decision_id']}"
    return f"promotion/{model}/{run_id}/error"


def mail_decision(context: Any, model: str, decision: dict | None, error: str = "") -> outbox.Delivery:
    """Queue and deliver the mail for a promotion task: the audited outcome (``phase`` applied or failed) or the
    error when it failed before deciding. A decision with nothing to decide (skipped) mails nobody."""
    if decision is not None and decision.get("action") == "skipped":
        log.info("no promotion e-mail: %s", decision.get("summary"))
        return outbox.Delivery()
    subject, html = mails.promotion_email(decision, model=model, error=error, **_task_context(context))
    key = promotion_key(decision, model, context["run_id"])
    queue(model, key, "promotion", subject, html, run_id=context["run_id"])
    return deliver(model)


def queue_drift_alert(context: Any, model: str, summary_path: str, episode_id: str, retrain_run_id: str | None):
    """Queue the drift episode's mail (once per episode, whatever the retries)."""
    summary = read_summary(summary_path)
    if summary is None:
        raise FileNotFoundError(f"no drift summary at {summary_path}; nothing to mail")
    subject, html = mails.drift_email(
        summary, retrain_run_id, dag_id=context["ti"].dag_id, run_id=context["run_id"], log_url=""
    )
    return queue(model, f"drift/{episode_id}", "drift", subject, html, run_id=context["run_id"])
