"""E-mail content for the team: rendered from templates under include/email/ (HTML, escaped)."""

from __future__ import annotations

from functools import cache
from typing import Any

from jobs.settings import REPO_ROOT, load

TEMPLATES = REPO_ROOT / "include" / "email"


@cache
def _environment() -> Any:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    return Environment(
        loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html"]), undefined=StrictUndefined
    )


def render(template: str, **values: Any) -> str:
    """Render ``include/email/<template>`` with ``values``."""
    return _environment().get_template(template).render(**values)


def recipients(model: str) -> list[str]:
    """The model's alert recipients from its config, else MLP_ALERT_RECIPIENTS."""
    from jobs.config import load_model_config

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
    return subject, render("quality_gate.html", summary=summary, **context)
