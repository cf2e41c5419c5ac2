"""E-mail content for the team: rendered from templates under include/email/ (HTML, escaped) by jobs.reports."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from jobs import reports
from jobs.config import load_model_config
from jobs.settings import load


def recipients(model: str) -> list[str]:
    """Who gets ``model``'s mails. Precedence: the model file's ``alerts.recipients`` (a team routing its own model),
    else the deployment's MLP_ALERT_RECIPIENTS (compose, Helm), else ``ml-team@localhost`` on a laptop. The
    reference model files leave ``alerts.recipients`` empty, so a deployment's list applies to them."""
    configured = load_model_config(model).alerts.recipients
    return list(configured or load().alert_recipients)


def quality_gate_email(summary: dict | None, **context: Any) -> tuple[str, str]:
    """(subject, html) for a failed gate task; ``summary`` None means it failed before recording results."""
    model = context["model"]
    if summary is None:
        subject = f"[ml-platform] data-quality gate ERROR for {model}: no results ({context['run_id']})"
    else:
        window = summary["start"] if summary["start"] == summary["end"] else f"{summary['start']}..{summary['end']}"
        failures = len(summary["critical_failures"])
        subject = (
            f"[ml-platform] data-quality gate FAILED for {model} {window}: "
            f"{failures} critical expectation{'s' if failures != 1 else ''} failed"
        )
    return subject, reports.render("email/quality_gate.html", summary=summary, **context)


SUBJECTS = {
    "promoted": "v{version} promoted to champion",
    "forced": "v{version} FORCED to champion",
    "rejected": "v{version} rejected, champion unchanged",
    "rolled_back": "rolled back to v{champion_after}",
    "dry_run": "dry run for v{version}",
}


def promotion_email(decision: dict | None, **context: Any) -> tuple[str, str]:
    """(subject, html) for a promotion decision; ``decision`` None or with an ``error`` means none was made."""
    model = context["model"]
    if decision is None or "action" not in decision:
        subject = f"[ml-platform] {model}: promotion ERROR, no decision ({context['run_id']})"
        decision = {"error": (decision or {}).get("error") or context.get("error") or "see the task log"}
    elif decision.get("phase") not in (None, "applied"):
        # The audited outcome, not the intent: a recorded move that could not be carried out says so.
        version = (decision.get("candidate") or {}).get("version")
        subject = (
            f"[ml-platform] {model}: {decision['action']} of v{version} NOT applied, champion "
            f"v{decision.get('champion_before')} unchanged: {decision.get('error') or decision.get('phase')}"
        )
    else:
        what = SUBJECTS[decision["action"]].format(
            version=(decision.get("candidate") or {}).get("version"), champion_after=decision["champion_after"]
        )
        primary = decision["primary_metric"]
        score = (decision.get("candidate") or {}).get("metrics", {}).get(primary)
        subject = f"[ml-platform] {model}: {what}" + (f" ({primary} {score:.4f})" if score is not None else "")
        failed = decision.get("failed_gates") or []
        if decision["action"] == "rejected" and failed:
            subject += f": failed {', '.join(failed)}"
    return subject, reports.render("email/promotion.html", decision=decision, metrics=_metric_rows(decision), **context)


def _metric_rows(decision: dict) -> list[tuple[str, float | None, float | None]]:
    """(metric, candidate, champion) rows, primary metric first."""
    candidate = ((decision.get("candidate") or {}).get("metrics")) or {}
    champion = ((decision.get("champion") or {}).get("metrics")) or {}
    primary = decision.get("primary_metric")
    names = sorted(set(candidate) | set(champion), key=lambda m: (m != primary, m))
    return [(m, candidate.get(m), champion.get(m)) for m in names if m != "rows"]


def drift_email(summary: dict, retrain_run_id: str | None, **context: Any) -> tuple[str, str]:
    """(subject, html) for a drift episode: what drifted and by how much, the report, whether retraining started."""
    drifted = sorted((c for c in summary["columns"] if c["drifted"]), key=lambda c: -c["score"])
    features = [c for c in summary["columns"] if c["column"] != "score"]
    cooldown = load_model_config(summary["model"]).drift.cooldown_days
    quiet_until = date.fromisoformat(summary["as_of_date"]) + timedelta(days=cooldown)
    subject = (
        f"[ml-platform] DRIFT {summary['model']} {summary['as_of_date']}: "
        f"{sum(c['drifted'] for c in features)} of {len(features)} features drifted"
        + (", predictions drifted" if summary["prediction"]["drifted"] else "")
        + (", retraining started" if retrain_run_id else ", no retraining")
    )
    html = reports.render(
        "email/drift_alert.html",
        s=summary,
        drifted=drifted[:15],
        more=max(len(drifted) - 15, 0),
        retrain_run_id=retrain_run_id,
        quiet_until=quiet_until,
        cooldown_days=cooldown,
        **context,
    )
    return subject, html
