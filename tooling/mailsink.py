"""The embedded default's SMTP server: listens on loopback and keeps every message as a file (``.eml``).

``python -m tooling.mailsink`` runs it in the foreground (``make up`` starts it); ``MailSink`` runs it inside another
process (``make demo``). Laptop only: no TLS, no login, loopback only. Anything bigger uses a real SMTP server
through the ``smtp_default`` connection.
"""

from __future__ import annotations

import argparse
import logging
import time
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

from jobs.notify.mails import recipients
from jobs.settings import load

log = logging.getLogger(__name__)


class _Keeper:
    """aiosmtpd handler: one ``<time>-<n>.eml`` file per message, written atomically."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # aiosmtpd's hook name
        self.count += 1
        raw = envelope.original_content or envelope.content
        name = f"{time.strftime('%Y%m%dT%H%M%S')}-{self.count:04d}.eml"
        tmp = self.folder / f".{name}.tmp"
        tmp.write_bytes(raw)
        tmp.rename(self.folder / name)
        subject = message_from_bytes(raw, policy=policy.default)["Subject"]
        log.info("kept mail to %s: %s (%s)", ", ".join(envelope.rcpt_tos), subject, name)
        return "250 Message accepted for delivery"


class MailSink:
    """Context manager: the loopback SMTP server for the duration of a block."""

    def __init__(self, folder: Path | None = None, host: str | None = None, port: int | None = None) -> None:
        settings = load()
        self.folder = Path(folder or settings.mail_root)
        self.host = host or settings.smtp_host
        self.port = port or settings.smtp_port
        self._controller: Any = None

    def __enter__(self) -> MailSink:
        from aiosmtpd.controller import Controller

        if self.host not in {"127.0.0.1", "localhost", "::1"}:
            raise ValueError(f"the mail sink only listens on loopback, not {self.host}")
        self.folder.mkdir(parents=True, exist_ok=True)
        self._controller = Controller(_Keeper(self.folder), hostname=self.host, port=self.port)
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()

    def messages(self) -> list[Any]:
        """Every kept message, oldest first, parsed."""
        return [message_from_bytes(p.read_bytes(), policy=policy.default) for p in sorted(self.folder.glob("*.eml"))]


def send(model: str, subject: str, html: str) -> list[str]:
    """Send to ``model``'s team through ``smtp_default`` with Airflow's SMTP provider, as a task's notifier would."""
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    settings = load()
    to = recipients(model)
    with SmtpHook(smtp_conn_id=settings.smtp_conn_id) as hook:
        hook.send_email_smtp(to=to, subject=subject, html_content=html, from_email=settings.smtp_sender)
    return to


def main(argv: list[str] | None = None) -> int:
    """CLI: serve until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m tooling.mailsink", description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with MailSink() as sink:
        log.info("SMTP on %s:%d, keeping messages in %s", sink.host, sink.port, sink.folder)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return 0


if __name__ == "__main__":
    raise SystemExit(main())
