"""The mail outbox against a real SMTP server on loopback (aiosmtpd), stopped and restarted for the outage cases:
a mail is pending until the server accepted it, an outage delays it and never loses it, a retry never sends it twice.
The tasks' context is a plain dict (what the mail functions read of it); the delivery is Airflow's SMTP provider
through the `smtp_default` connection, as in production."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from jobs.notify import outbox
from jobs.settings import load
from tests.unit.notify.test_mails import DECISION, SUMMARY

MODEL = "purchase_propensity"


class _Server:
    """An aiosmtpd server on a fixed loopback port that a test can stop and start again."""

    def __init__(self, port: int) -> None:
        from tests.conftest import Inbox

        self.port = port
        self.inbox = Inbox()
        self.controller = None

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()
        self.controller = None


@pytest.fixture()
def smtp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[_Server]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("MLP_OUTBOX_ROOT", str(tmp_path / "outbox"))
    monkeypatch.setenv("MLP_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("MLP_SMTP_PORT", str(port))
    monkeypatch.setenv("MLP_ALERT_RECIPIENTS", "ops@example.org")
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", load().smtp_connection_json())
    server = _Server(port)
    server.start()
    try:
        yield server
    finally:
        if server.controller is not None:
            server.stop()


def _context(run_id: str, try_number: int = 1) -> dict:
    ti = SimpleNamespace(dag_id="dag", task_id="task", try_number=try_number, log_url="http://airflow/log")
    return {"ti": ti, "run_id": run_id}


def _drift_summary(tmp_path: Path, as_of: str) -> str:
    import json

    columns = [
        {"column": "recency_days", "drifted": True, "score": 0.4, "method": "wasserstein", "threshold": 0.1},
        {"column": "score", "drifted": True, "score": 0.2, "method": "wasserstein", "threshold": 0.1},
    ]
    episode = {"alert": True, "retrain": True, "episode_id": f"{MODEL}/{as_of}", "reason": "drift in 3 of 3 windows"}
    summary = {
        "model": MODEL,
        "as_of_date": as_of,
        "model_version": 1,
        "run_id": f"scheduled__{as_of}",
        "window_days": 1,
        "drifted_share": 1.0,
        "max_drifted_share": 0.3,
        "columns": columns,
        "prediction": {**columns[1], "reference_rows": 10, "current_rows": 10},
        "performance": None,
        "decision": episode,
        "report": "file:///tmp/report.html",
    }
    path = tmp_path / f"summary-{as_of}.json"
    path.write_text(json.dumps(summary))
    return str(path)


def test_smtp_down_on_the_episodes_night_means_exactly_one_mail_the_next_day(smtp: _Server, tmp_path: Path) -> None:
    from mlplatform import notifiers

    settings = load()
    night = _drift_summary(tmp_path, "1998-05-27")
    smtp.stop()  # the SMTP server is down the whole night: the task and both its retries
    for try_number in (1, 2, 3):
        notifiers.queue_drift_alert(_context("n1", try_number), MODEL, night, f"{MODEL}/1998-05-27", "drift__x")
        with pytest.raises(notifiers.MailNotSentError, match="kept pending in the outbox"):
            notifiers.deliver(MODEL)
    (waiting,) = outbox.pending(settings, MODEL)
    assert waiting.key == f"drift/{MODEL}/1998-05-27" and waiting.attempts == 3 and "Error" in waiting.last_error
    assert smtp.inbox.messages == []

    smtp.start()  # back the next day: the next night (no new episode, inside the cooldown) delivers it
    done = notifiers.deliver(MODEL)
    assert done.sent == [waiting.key] and not done.failed
    (mail,) = smtp.inbox.messages
    assert mail["Subject"].startswith(f"[ml-platform] DRIFT {MODEL} 1998-05-27") and mail["To"] == "ops@example.org"
    assert mail["Message-ID"] == waiting.message_id
    assert outbox.pending(settings, MODEL) == [] and outbox.get(settings, waiting.key).status == outbox.SENT

    # A retried or re-run alert task queues the same episode again: nothing new is sent.
    notifiers.queue_drift_alert(_context("n1", 4), MODEL, night, f"{MODEL}/1998-05-27", "drift__x")
    assert notifiers.deliver(MODEL).sent == []
    assert len(smtp.inbox.messages) == 1


def test_a_promotion_mail_is_sent_once_per_decision_and_waits_out_an_outage(smtp: _Server) -> None:
    from mlplatform import notifiers

    decision = {
        **DECISION,
        "decision_id": f"{MODEL}/manual__1/promote",
        "action": "promoted",
        "phase": "applied",
        "failed_gates": [],
        "champion_after": 4,
    }
    smtp.stop()
    with pytest.raises(notifiers.MailNotSentError):
        notifiers.mail_decision(_context("manual__1"), MODEL, decision)  # the task fails: visible, retried
    smtp.start()
    notifiers.mail_decision(_context("manual__1", 2), MODEL, decision)  # the retry resumes the same decision
    notifiers.mail_decision(_context("manual__1", 3), MODEL, decision)  # and once more: still one mail
    (mail,) = smtp.inbox.messages
    assert mail["Subject"] == f"[ml-platform] {MODEL}: v4 promoted to champion (roc_auc 0.7000)"

    # A decision with nothing to decide mails nobody.
    notifiers.mail_decision(_context("scheduled__2"), MODEL, {**decision, "action": "skipped", "decision_id": "x"})
    assert len(smtp.inbox.messages) == 1


def test_a_failed_gate_is_mailed_from_the_task_and_an_outage_leaves_it_pending_not_lost(smtp: _Server) -> None:
    from mlplatform import notifiers

    summary = {**SUMMARY, "run_id": "scheduled__3"}
    smtp.stop()
    with pytest.raises(notifiers.MailNotSentError):
        notifiers.mail_gate_failure(_context("scheduled__3"), MODEL, summary)
    assert [m.kind for m in outbox.pending(load(), MODEL)] == ["gate"]
    smtp.start()
    # Whatever task delivers next for the model (a retry, the next night's alert task) sends it.
    assert len(notifiers.deliver(MODEL).sent) == 1
    (mail,) = smtp.inbox.messages
    assert "data-quality gate FAILED" in mail["Subject"]


def test_two_deliverers_at_once_send_one_mail(smtp: _Server, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from mlplatform import notifiers

    settings = load()
    notifiers.queue(MODEL, "drift/m/1", "drift", "subject", "<p>x</p>")
    gate = threading.Barrier(2)
    real = notifiers.smtp_send

    def slow_send(message):
        real(message)

    results = []

    def run():
        gate.wait()
        results.append(outbox.deliver(settings, slow_send, model=MODEL))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(len(r.sent) for r in results) == [0, 1]
    assert len(smtp.inbox.messages) == 1
