"""The mail servers a benchmark runs intake against: the tests' private Dovecot (IMAPS) and
aiosmtpd (with AUTH), and the configuration pointing intake at them.

The outbox's caps are opened up so that they do not set the pace: one pass may send every
reply (batch_size) and a county may get every one of its receipts in the same hour
(per_sender_hourly_cap). Both are reported beside the figures (BENCH_SMTP).
"""
from __future__ import annotations

import asyncio
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

    def config(self, directory: Path, poll_seconds: int = 60, imap_port: int | None = None) -> Path:
        """`imap_port`: another way to Dovecot's IMAPS port (a SlowLink's)."""
        return write_config(
            directory,
            mailbox={"transport": "imap", "host": self.dovecot.host, "port": imap_port or self.dovecot.tls_port,
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


class SlowLink:
    """A TCP relay to 127.0.0.1:`port` that delays every chunk by `delay` seconds each way and
    passes at most `rate` bytes a second each way: a mail server across the internet (163 from
    a county's or the bureau's line) instead of one on loopback. In a thread of its own."""

    def __init__(self, port: int, delay: float = 0.015, rate: float = 6e6):
        self.target, self.delay, self.rate = port, delay, rate
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()

    def __enter__(self) -> "SlowLink":
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._serve(),), daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the slow link did not start")
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        await self._stop.wait()
        server.close()

    async def _relay(self, reader, writer) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        await asyncio.gather(self._one_way(reader, up_writer), self._one_way(up_reader, writer),
                             return_exceptions=True)

    async def _one_way(self, reader, writer) -> None:
        chunks: asyncio.Queue = asyncio.Queue()
        line_free = time.monotonic()   # when the link has passed what it was given so far

        async def deliver() -> None:
            while True:
                due, data = await chunks.get()
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                if not data:
                    writer.close()
                    return
                writer.write(data)
                await writer.drain()

        delivering = asyncio.ensure_future(deliver())
        while True:
            data = await reader.read(65536)
            line_free = max(line_free, time.monotonic()) + len(data) / self.rate
            await chunks.put((line_free + self.delay, data))
            if not data:
                break
        await delivering
