"""The outbox backend: each message becomes a ``.eml`` file in a folder.

Used when no SMTP server is configured, so a fresh install can be tried without
one: open the files with any mail client. Files are written atomically (a
temporary name, then rename), so a reader never sees half a message.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from email.message import EmailMessage
from pathlib import Path

from sorawatch.workers.mail.base import RawMessage, SendResult, recipient_of


class OutboxMailer:
    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def _write(self, message: EmailMessage | RawMessage) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        data = message.data if isinstance(message, RawMessage) else message.as_bytes()
        stem = f"{time.time_ns()}-{hashlib.sha256(data).hexdigest()[:12]}"
        tmp = self.folder / f".{stem}.tmp"
        final = self.folder / f"{stem}.eml"
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        return final

    async def send(self, message: EmailMessage | RawMessage) -> SendResult:
        """Write ``message`` to the outbox; a disk error is a transient failure."""
        recipient = recipient_of(message)
        try:
            await asyncio.to_thread(self._write, message)
        except OSError as exc:
            return SendResult(recipient, False, error=f"outbox {self.folder}: {exc}")
        return SendResult(recipient, True, code=250)

    async def close(self) -> None:
        return None
