"""An SMTP sink for tests: aiosmtpd's threaded ``Controller`` on a free loopback port.

    server = SmtpServer(auth=True, username="u", password="p", tls="starttls").start()
    ... send mail to server.host:server.port ...
    msgs = server.wait_for(1)          # accepted messages, ReceivedMessage objects
    server.respond_with(["421 4.7.0 try later", None])   # next DATA: 421, then accept
    server.stop(); server.start()     # same port

``tls``: ``"none"`` (plain), ``"starttls"`` (STARTTLS offered and required before
MAIL/AUTH), ``"ssl"`` (implicit TLS, like port 465).  Certificates come from a
trustme CA; trust ``ca_file`` (or use ``ssl_context()``) on the client side.
AUTH (LOGIN and PLAIN) is allowed on unencrypted connections
(``auth_require_tls=False``); with ``auth=True`` it is required before MAIL.
"""

from __future__ import annotations

import asyncio
import collections
import email.policy
import os
import shutil
import socket
import ssl
import tempfile
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Iterable

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

HOST = "127.0.0.1"


def free_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class ReceivedMessage:
    envelope_from: str
    rcpt_tos: list[str]
    raw: bytes  # exactly as received after DATA (CRLF line ends)
    _message: EmailMessage | None = None  # see `message`
    mail_options: list[str] = field(default_factory=list)
    rcpt_options: list[str] = field(default_factory=list)
    auth_login: str | None = None  # the AUTH username of the session, if any
    tls: bool = False  # the session was encrypted (STARTTLS or implicit TLS)
    reply: str = "250 OK"  # what the server answered to DATA

    @property
    def message(self) -> EmailMessage:
        """policy.default, parsed from raw with CRLF -> LF (so get_content() gives "\\n"), when
        first asked for: parsing every DATA would load the core a benchmark shares with intake."""
        if self._message is None:
            self._message = BytesParser(policy=email.policy.default).parsebytes(self.raw.replace(b"\r\n", b"\n"))
        return self._message


class _Handler:
    def __init__(self, owner: "SmtpServer") -> None:
        self.owner = owner

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or b""
        login = session.auth_data.login if isinstance(session.auth_data, LoginPassword) else None
        if isinstance(login, bytes):
            login = login.decode("utf-8", "replace")
        msg = ReceivedMessage(
            envelope_from=envelope.mail_from,
            rcpt_tos=list(envelope.rcpt_tos),
            raw=raw,
            mail_options=list(envelope.mail_options),
            rcpt_options=list(envelope.rcpt_options),
            auth_login=login,
            tls=session.ssl is not None
            or (server.transport is not None and server.transport.get_extra_info("ssl_object") is not None),
        )
        scripted = self.owner._next_response()
        if scripted is not None:
            msg.reply = scripted
        self.owner._record(msg)
        if scripted is None:
            return "250 OK"
        if scripted.startswith("421"):
            # 421 means "closing channel": hang up after the reply is written.
            transport = server.transport
            asyncio.get_running_loop().call_soon(transport.close)
        return scripted


class SmtpServer:
    host = HOST

    def __init__(
        self,
        *,
        auth: bool = False,
        username: str = "intake@example.cn",
        password: str = "smtp-secret",
        tls: str = "none",
        port: int | None = None,
        data_size_limit: int = 64 * 1024 * 1024,
    ) -> None:
        if tls not in ("none", "starttls", "ssl"):
            raise ValueError(f"tls must be 'none', 'starttls' or 'ssl', not {tls!r}")
        self.auth = auth
        self.username = username
        self.password = password
        self.tls = tls
        self.port = port or free_port()
        self.data_size_limit = data_size_limit
        self.messages: list[ReceivedMessage] = []  # accepted deliveries
        self.attempts: list[ReceivedMessage] = []  # every DATA, accepted or rejected
        self.auth_failures: list[str] = []
        self._responses: collections.deque[str | None] = collections.deque()
        self._lock = threading.Lock()
        self._controller: Controller | None = None

        self._dir = tempfile.mkdtemp(prefix="intake-smtp-")
        self.ca_file = os.path.join(self._dir, "ca.pem")
        import trustme

        ca = trustme.CA()
        cert = ca.issue_cert("localhost", "127.0.0.1")
        ca.cert_pem.write_to_path(self.ca_file)
        self._server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(self._server_ctx)

    # ------------------------------------------------------------- lifecycle
    def _authenticator(self, server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword):
            login = auth_data.login.decode("utf-8", "replace")
            pw = auth_data.password.decode("utf-8", "replace")
            if login == self.username and pw == self.password:
                return AuthResult(success=True, auth_data=auth_data)
            with self._lock:
                self.auth_failures.append(login)
        return AuthResult(success=False, handled=False)

    def start(self) -> "SmtpServer":
        if self._controller is not None:
            return self
        kwargs: dict = dict(
            hostname=HOST,
            port=self.port,
            server_hostname="smtp.intake.test",
            data_size_limit=self.data_size_limit,
            enable_SMTPUTF8=True,
            auth_require_tls=False,
            ready_timeout=10,
        )
        if self.auth:
            kwargs.update(authenticator=self._authenticator, auth_required=True)
        if self.tls == "starttls":
            kwargs.update(tls_context=self._server_ctx, require_starttls=True)
        elif self.tls == "ssl":
            kwargs.update(ssl_context=self._server_ctx)
        controller = self._new_controller(kwargs)
        # The port can sit in TIME_WAIT briefly after a stop(); retry the bind.
        deadline = time.monotonic() + 10
        while True:
            try:
                controller.start()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self._controller = controller
        return self

    def _new_controller(self, kwargs: dict) -> Controller:
        """The aiosmtpd controller; a server with other manners (tests/servers/like163.py)
        brings its own handler and protocol."""
        return Controller(_Handler(self), **kwargs)

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def is_running(self) -> bool:
        return self._controller is not None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> "SmtpServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # -------------------------------------------------------------- scripting
    def respond_with(self, responses: Iterable[str | None]) -> None:
        """Queue DATA replies: each delivery attempt pops one entry.

        A string is sent as the reply to DATA (e.g. "421 4.7.0 try later" or
        "550 5.7.1 spam"); a reply starting with "2" counts as accepted, any other
        rejects the message (it is kept in ``attempts`` only).  A 421 also closes
        the connection.  ``None`` (or an empty queue) accepts with "250 OK".
        """
        with self._lock:
            self._responses.extend(responses)

    def _next_response(self) -> str | None:
        with self._lock:
            return self._responses.popleft() if self._responses else None

    def _record(self, msg: ReceivedMessage) -> None:
        with self._lock:
            self.attempts.append(msg)
            if msg.reply.startswith("2"):
                self.messages.append(msg)

    def clear(self) -> None:
        """Forget received messages, attempts, auth failures and queued responses."""
        with self._lock:
            self.messages.clear()
            self.attempts.clear()
            self.auth_failures.clear()
            self._responses.clear()

    def wait_for(self, n: int, timeout: float = 10) -> list[ReceivedMessage]:
        """Wait until at least ``n`` messages were accepted; return them all."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if len(self.messages) >= n:
                    return list(self.messages)
                have = len(self.messages)
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"SMTP server got {have} message(s), expected {n} within {timeout}s "
                    f"(attempts: {[a.reply for a in self.attempts]})"
                )
            time.sleep(0.02)

    # ----------------------------------------------------------------- client
    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's CA."""
        return ssl.create_default_context(cafile=self.ca_file)

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"<SmtpServer {HOST}:{self.port} tls={self.tls} auth={self.auth} {state}>"
