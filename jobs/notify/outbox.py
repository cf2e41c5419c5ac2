"""The mail outbox: every team e-mail is written here first (``pending``), and marked ``sent`` only after the SMTP
server accepted it. Nothing is mailed straight from a job or a callback, so an SMTP outage delays a mail, never
loses it, and a retry never sends a second one.

One JSON file per message under ``MLP_OUTBOX_ROOT`` (``pending/`` or ``sent/``), named by its idempotency key (a
drift episode, a promotion decision, a gate run): enqueueing a key that is already pending or sent is a no-op, so a
retried job that enqueues again changes nothing. The key is also the mail's ``Message-ID``, so a receiver can drop
the one duplicate an SMTP server could still produce (accepted, then the process died before marking it sent).

Delivery (``deliver``) takes the transport as an argument: the Airflow tasks send through the ``smtp_default``
connection (``mlplatform.notifiers``); this module never opens a socket itself. A message being delivered is
claimed with an exclusive lock file, so two deliverers never send the same message at the same time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jobs.settings import Settings

log = logging.getLogger(__name__)

PENDING = "pending"
SENT = "sent"
CLAIM_STALE_S = 600  # a claim older than this belongs to a deliverer that died


@dataclass
class Message:
    """One e-mail in the outbox."""

    key: str  # idempotency key: "drift/<episode>", "promotion/<decision id>", "gate/<model>/<run>/<window>"
    kind: str  # drift | promotion | gate
    model: str
    to: list[str]
    subject: str
    html: str
    created_at: str = ""
    status: str = PENDING
    attempts: int = 0
    last_error: str | None = None
    sent_at: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def message_id(self) -> str:
        """The RFC 5322 Message-ID: the same for every attempt at this key."""
        return f"<{digest(self.key)}@ml-platform>"


def digest(key: str) -> str:
    """A file-name-safe stable id for a key."""
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _path(settings: Settings, status: str, key: str) -> Path:
    return settings.outbox_root / status / f"{digest(key)}.json"


def _write(path: Path, message: Message) -> None:
    """Atomic write (temp file + rename), so a reader never sees half a message."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(asdict(message), indent=1))
    os.replace(tmp, path)


def _read(path: Path) -> Message | None:
    try:
        return Message(**json.loads(path.read_text()))
    except FileNotFoundError:
        return None


def get(settings: Settings, key: str) -> Message | None:
    """The message with ``key``: sent if it was sent, else pending, else None."""
    return _read(_path(settings, SENT, key)) or _read(_path(settings, PENDING, key))


def enqueue(settings: Settings, message: Message) -> Message:
    """Put ``message`` in the outbox unless its key is already there (pending or sent); return what is there."""
    existing = get(settings, message.key)
    if existing is not None:
        log.info("outbox: %s already %s; not queued again", message.key, existing.status)
        return existing
    if not message.to:
        raise ValueError(f"outbox: no recipients for {message.key}; set alerts.recipients or MLP_ALERT_RECIPIENTS")
    message.created_at = message.created_at or datetime.now(UTC).isoformat(timespec="seconds")
    message.status = PENDING
    _write(_path(settings, PENDING, message.key), message)
    log.info("outbox: queued %s to %s: %s", message.key, ", ".join(message.to), message.subject)
    return message


def pending(settings: Settings, model: str | None = None) -> list[Message]:
    """Pending messages, oldest first; only ``model``'s when given."""
    folder = settings.outbox_root / PENDING
    found = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        message = _read(path)
        if message is not None and (model is None or message.model == model):
            found.append(message)
    return sorted(found, key=lambda m: m.created_at)


def _claim(settings: Settings, key: str) -> Path | None:
    """An exclusive claim on delivering ``key`` (None: another deliverer holds a live one)."""
    lock = settings.outbox_root / "claims" / f"{digest(key)}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    try:
        if time.time() - lock.stat().st_mtime > CLAIM_STALE_S:
            lock.unlink(missing_ok=True)
    except FileNotFoundError:
        pass
    try:
        os.close(os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return None
    return lock


@dataclass
class Delivery:
    """What one ``deliver`` call did."""

    sent: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def deliver(settings: Settings, send: Callable[[Message], None], model: str | None = None) -> Delivery:
    """Send every pending message (of ``model``) through ``send``; mark each sent once ``send``
    returned. A failure is recorded on the message (attempts, last error) and it stays pending for the next call."""
    done = Delivery()
    for message in pending(settings, model):
        lock = _claim(settings, message.key)
        if lock is None:
            log.info("outbox: %s is being delivered by another task right now", message.key)
            continue
        try:
            if _read(_path(settings, SENT, message.key)) is not None:  # sent by another deliverer meanwhile
                _path(settings, PENDING, message.key).unlink(missing_ok=True)
                continue
            message.attempts += 1
            try:
                send(message)
            except Exception as exc:  # recorded on the message, reported to the caller
                message.last_error = f"{type(exc).__name__}: {exc}"
                _write(_path(settings, PENDING, message.key), message)
                done.failed[message.key] = message.last_error
                log.warning("outbox: %s not sent (attempt %d): %s", message.key, message.attempts, message.last_error)
                continue
            message.status, message.sent_at = SENT, datetime.now(UTC).isoformat(timespec="seconds")
            _write(_path(settings, SENT, message.key), message)
            _path(settings, PENDING, message.key).unlink(missing_ok=True)
            done.sent.append(message.key)
            log.info("outbox: sent %s (attempt %d) to %s", message.key, message.attempts, ", ".join(message.to))
        finally:
            lock.unlink(missing_ok=True)
    return done
