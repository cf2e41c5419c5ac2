"""The embedded SMTP server keeps every message as a file, and send reaches it through smtp_default."""

from __future__ import annotations

import socket

from tooling.mailsink import MailSink, send


def test_a_mail_sent_through_smtp_default_is_kept_as_a_file(tmp_path, monkeypatch) -> None:
    from jobs.settings import load

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("MLP_SMTP_PORT", str(port))
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", load().smtp_connection_json())
    with MailSink(folder=tmp_path / "mail") as sink:
        to = send("purchase_propensity", "[ml-platform] hello", "<p>drift &amp; more</p>")
        (message,) = sink.messages()
    assert to == ["ml-team@localhost"]
    assert message["Subject"] == "[ml-platform] hello" and message["To"] == "ml-team@localhost"
    assert "drift &amp; more" in message.get_body(preferencelist=("html",)).get_content()
    assert [p.suffix for p in (tmp_path / "mail").iterdir()] == [".eml"], "no temp files left behind"
