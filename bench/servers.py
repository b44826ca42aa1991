"""The mail servers a benchmark runs intake against: the tests' private Dovecot (IMAPS) and
aiosmtpd (with AUTH), and the configuration pointing intake at them.

The outbox's caps are opened up so that they do not set the pace: one pass may send every
reply (batch_size) and a county may get every one of its receipts in the same hour
(per_sender_hourly_cap). Both are reported beside the figures (BENCH_SMTP).
"""
from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import warnings
from email import policy
from email.parser import BytesHeaderParser
from pathlib import Path

from tests.configs import MAILBOX, write_config
from tests.servers.dovecot import DovecotServer
from tests.servers.smtp import ReceivedMessage, SmtpServer

SMTP_USER, SMTP_PASSWORD = "intake@example.cn", "smtp-secret"
# aiosmtpd's warnings about AUTH without TLS on loopback are not the benchmark's business.
warnings.filterwarnings("ignore", module="aiosmtpd")
logging.getLogger("mail.log").setLevel(logging.ERROR)
HEADERS = BytesHeaderParser(policy=policy.compat32)
BENCH_SMTP = {"batch_size": 1000, "per_sender_hourly_cap": 100000}


class TimedSmtpServer(SmtpServer):
    """aiosmtpd that notes when each reply arrived, by the Message-ID it answers."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.arrived: dict[str, float] = {}   # In-Reply-To → time.monotonic() at DATA
        self.changed = threading.Condition()

    def _record(self, msg: ReceivedMessage) -> None:
        super()._record(msg)
        # The headers alone: the whole reply is parsed only when a figure asks for it.
        headers = HEADERS.parsebytes(msg.raw)
        with self.changed:
            self.arrived[str(headers["In-Reply-To"] or "").strip()] = time.monotonic()
            self.changed.notify_all()

    def wait_for_reply_to(self, message_id: str, timeout: float) -> float:
        """The monotonic time the reply to `message_id` arrived."""
        with self.changed:
            if not self.changed.wait_for(lambda: message_id in self.arrived, timeout):
                raise TimeoutError(f"no reply to {message_id} within {timeout} s")
            return self.arrived[message_id]

    def wait_for_count(self, n: int, timeout: float) -> float:
        with self.changed:
            if not self.changed.wait_for(lambda: len(self.messages) >= n, timeout):
                raise TimeoutError(f"{len(self.messages)} replies of {n} within {timeout} s")
            return time.monotonic()


class MailServers:
    """Dovecot with one mailbox user and aiosmtpd; `config(directory)` writes intake's config."""

    def __enter__(self) -> "MailServers":
        self.dovecot = DovecotServer()
        self.dovecot.start()
        self.user, self.password = self.dovecot.add_user(MAILBOX, "imap-secret")
        self.smtp = TimedSmtpServer(auth=True, username=SMTP_USER, password=SMTP_PASSWORD).start()
        return self

    def __exit__(self, *exc) -> None:
        self.smtp.close()
        self.dovecot.close()

    def config(self, directory: Path, poll_seconds: int = 60) -> Path:
        return write_config(
            directory,
            mailbox={"transport": "imap", "host": self.dovecot.host, "port": self.dovecot.tls_port,
                     "security": "ssl", "username": self.user, "password_env": "INTAKE_IMAP_PASSWORD",
                     "folder": "INBOX", "ca_file": str(self.dovecot.ca_file), "poll_seconds": poll_seconds},
            smtp={"transport": "smtp", "host": self.smtp.host, "port": self.smtp.port, "security": "none",
                  "username": SMTP_USER, "password_env": "INTAKE_SMTP_PASSWORD", "from_address": MAILBOX,
                  **BENCH_SMTP},
            replace={'at = "08:30"': 'at = "23:59:59"'})   # no digest in the middle of a figure

    def env(self) -> dict:
        return {**os.environ, "INTAKE_IMAP_PASSWORD": self.password, "INTAKE_SMTP_PASSWORD": SMTP_PASSWORD}

    @contextlib.contextmanager
    def imap(self):
        """An imapclient session over IMAPS, as intake's own."""
        client = self.dovecot.client(self.user, self.password, tls=True, timeout=60)
        try:
            yield client
        finally:
            client.logout()
