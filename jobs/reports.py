"""Reports: where each kind goes under MLP_REPORTS_ROOT, its JSON summary, and HTML rendered from include/ templates.

Three jobs write reports, one folder per (kind, model, key), which a re-run of the same key replaces:

* ``quality``: ``reports/quality/<model>/<start>_<end>/`` (GX Data Docs under ``docs/``, ``summary.json``);
* ``evaluation``: ``reports/evaluation/<model>/<dag_run_id>/`` (``index.html``, ``decision.json``);
* ``drift``: ``reports/drift/<model>/<as_of_date>/`` (``index.html``, ``evidently.html``, ``summary.json``).

The summary beside a report is what the Airflow operators and notifiers read back once the job has exited. Every
template (the reports under ``include/reports/``, the e-mails under ``include/email/``) renders through one Jinja2
environment that escapes every value and refuses undefined names.
"""

from __future__ import annotations

import json
import os
from datetime import date
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from jobs.settings import REPO_ROOT, Settings

if TYPE_CHECKING:
    from jinja2 import Environment

Kind = Literal["quality", "evaluation", "drift"]
TEMPLATES = REPO_ROOT / "include"
# The parts of each kind's folder name, in order (joined with "_").
KEYS: dict[str, tuple[str, ...]] = {"quality": ("start", "end"), "evaluation": ("dag_run_id",), "drift": ("as_of",)}
SUMMARY_FILES: dict[str, str] = {"quality": "summary.json", "evaluation": "decision.json", "drift": "summary.json"}
# mtime slack for filesystems that keep whole seconds (a summary written in the same second as the start counts).
_MTIME_SLACK_S = 1.0


def report_dir(settings: Settings, kind: Kind, model: str, *key: date | str) -> Path:
    """The folder of one report: ``<reports_root>/<kind>/<model>/<key parts joined by _>`` (see ``KEYS``)."""
    if kind not in KEYS:
        raise ValueError(f"report kind must be one of {sorted(KEYS)}, not {kind!r}")
    if len(key) != len(KEYS[kind]):
        raise ValueError(f"a {kind} report is keyed by {', '.join(KEYS[kind])}; got {key!r}")
    return settings.reports_root / kind / model / "_".join(str(part) for part in key)


def summary_path(settings: Settings, kind: Kind, model: str, *key: date | str) -> Path:
    """The JSON summary beside one report (``decision.json`` for an evaluation, else ``summary.json``)."""
    return report_dir(settings, kind, model, *key) / SUMMARY_FILES[kind]


def file_uri(path: Path) -> str:
    """The ``file://`` URI a report records for itself (``mlplatform.links`` maps it to a served URL)."""
    return path.resolve().as_uri()


def write_summary(path: Path, summary: dict[str, Any]) -> Path:
    """Write ``summary`` as JSON, atomically: a reader sees the previous file or this one, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not mkstemp: its 0600 would hide the file from a reader running as another user; write_text keeps the umask.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(summary, indent=2, default=str))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def read_summary(path: str | Path, *, newer_than: float | None = None, **fields: str | None) -> dict | None:
    """A summary file, or None when missing, unreadable, older than ``newer_than`` (a time.time()), or when one of
    ``fields`` (e.g. ``run_id=``, ``dag_run_id=``, ``as_of_date=``; None: any) differs from the file's value."""
    path = Path(path)
    try:
        # A retry must not take the previous try's file for its own.
        if newer_than is not None and path.stat().st_mtime < newer_than - _MTIME_SLACK_S:
            return None
        summary = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(summary, dict):
        return None
    if any(value is not None and summary.get(name) != value for name, value in fields.items()):
        return None
    return summary


@cache
def _environment() -> Environment:
    """The one Jinja2 environment for include/ templates: every value escaped, an undefined name an error."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    # Every template under include/ is HTML, so escaping is on for all of them, whatever the file name.
    return Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=True, undefined=StrictUndefined)


def render(template: str, **values: Any) -> str:
    """Render ``include/<template>`` (e.g. ``reports/drift.html``, ``email/promotion.html``) with ``values``."""
    return _environment().get_template(template).render(**values)


def write_html(path: Path, template: str, **values: Any) -> Path:
    """Render ``include/<template>`` into ``path`` (its folder created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(template, **values))
    return path
