"""Test servers that behave like 163.com's, for the suite to meet 163's quirks before 163 does.

``Imap163Proxy``: a small IMAP proxy (asyncio in one thread, loopback only, implicit TLS from a
trustme CA) in front of the test Dovecot's plain port. Like imap.163.com it advertises
``IMAP4rev1 XLIST SPECIAL-USE ID LITERAL+ STARTTLS XAPPLEPUSHSERVICE UIDPLUS X-CM-EXT-1`` (no
IDLE, no MOVE: both are refused), answers SELECT or EXAMINE before ID with
``NO SELECT Unsafe Login. Please contact kefu@188.com for help`` and strips UIDNEXT from what
Dovecot says. Start the Dovecot behind it with ``DovecotServer(sent_folder="已发送")`` for 163's
Sent folder (``&XfJT0ZAB-`` on the wire, flagged \\Sent).

``Smtp163Server``: the aiosmtpd sink of tests/servers/smtp.py (implicit TLS, AUTH required) with
163's manners: ``553 Mail from must equal authorized user`` for any other MAIL FROM,
``554 DT:SPM`` once a subject has been accepted ``subject_repeats`` times, ``451 MI:DMC`` after
``per_connection`` messages on one connection, ``421 HL:ICC`` as the greeting of a connection
beyond ``max_connections`` open at once.
"""
from __future__ import annotations

import asyncio
import collections
import re
import ssl
import threading
from email.parser import BytesHeaderParser
from email import policy as email_policy

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, LoginPassword

from tests.servers.smtp import HOST, ReceivedMessage, SmtpServer, _Handler, free_port

CAPABILITY = b"IMAP4rev1 XLIST SPECIAL-USE ID LITERAL+ STARTTLS XAPPLEPUSHSERVICE UIDPLUS X-CM-EXT-1"
UNSAFE_LOGIN = b"NO SELECT Unsafe Login. Please contact kefu@188.com for help"
_LITERAL = re.compile(rb"\{(\d+)\+?\}\r?\n$")
_CAPABILITY_CODE = re.compile(rb"\[CAPABILITY [^\]]*\] ?")
_UIDNEXT = re.compile(rb" ?UIDNEXT \d+")
MAX_LINE = 1 << 20          # an IMAP line longer than this ends the connection
MAX_LITERAL = 64 << 20      # so does a literal larger than this


class Imap163Proxy:
    """``Imap163Proxy(dovecot).start()``; trust ``ca_file``; connect to ``host:port`` (IMAPS).
    ``commands`` lists (connection number, command word) as clients sent them."""

    host = HOST

    def __init__(self, dovecot, max_connections: int = 16, idle_seconds: float = 120.0):
        import trustme

        self.upstream = (dovecot.host, dovecot.port)
        self.port = free_port()
        self.max_connections, self.idle_seconds = max_connections, idle_seconds
        self.commands: list[tuple[int, str]] = []
        self._open = 0
        self._numbers = iter(range(1, 1 << 30))
        ca = trustme.CA()
        self._dir = dovecot.root  # the CA goes beside the Dovecot it fronts, removed with it
        self.ca_file = str(self._dir / "imap163-ca.pem")
        ca.cert_pem.write_to_path(self.ca_file)
        self._ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("localhost", "127.0.0.1").configure_cert(self._ctx)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None

    def start(self) -> "Imap163Proxy":
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._server = self._loop.run_until_complete(asyncio.start_server(
                self._serve, HOST, self.port, ssl=self._ctx, limit=MAX_LINE))
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

        self._thread = threading.Thread(target=run, name="imap163-proxy", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the 163-like IMAP proxy did not start")
        return self

    def stop(self) -> None:
        if self._loop is None:
            return

        async def shut() -> None:
            self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()
            self._loop.stop()

        asyncio.run_coroutine_threadsafe(shut(), self._loop)
        self._thread.join(10)
        self._loop = None

    def __enter__(self) -> "Imap163Proxy":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ one connection
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._open >= self.max_connections:
            writer.write(b"* BYE Too many connections\r\n")
            writer.close()
            return
        self._open += 1
        number = next(self._numbers)
        up_writer = None
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream, limit=MAX_LINE)
            await up_reader.readline()   # Dovecot's greeting, with its capabilities: not ours
            writer.write(b"* OK Coremail System IMap Server Ready(163com[test])\r\n")
            session = {"identified": False, "xlist": None}
            tasks = [asyncio.create_task(self._from_client(number, reader, writer, up_writer, session)),
                     asyncio.create_task(self._from_server(up_reader, writer, session))]
            _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError,
                asyncio.TimeoutError, asyncio.CancelledError):
            pass   # the connection ends; the proxy goes on
        finally:
            self._open -= 1
            for w in (writer, up_writer):
                if w is not None:
                    w.close()

    async def _from_client(self, number, reader, writer, upstream, session) -> None:
        continuing = False   # the line after a literal belongs to the same command
        while True:
            line = await asyncio.wait_for(reader.readline(), self.idle_seconds)
            if not line:
                return
            if not continuing:
                answer, line = self._command(number, line, session)
                if answer is not None:
                    writer.write(answer)
                    continue
            upstream.write(line)
            continuing = await _relay_literal(line, reader, upstream)

    def _command(self, number: int, line: bytes, session: dict) -> tuple[bytes | None, bytes]:
        """(our own answer, or None and the line to pass on)."""
        parts = line.rstrip(b"\r\n").split(b" ", 3)
        tag = parts[0]
        word = (parts[1] if len(parts) > 1 else b"").upper()
        if word == b"UID" and len(parts) > 2:
            word = b"UID " + parts[2].upper()
        self.commands.append((number, word.decode("ascii", "replace")))
        if word == b"CAPABILITY":
            return b"* CAPABILITY " + CAPABILITY + b"\r\n" + tag + b" OK CAPABILITY completed\r\n", line
        if word == b"ID":
            session["identified"] = True
        if word in (b"SELECT", b"EXAMINE") and not session["identified"]:
            return tag + b" " + UNSAFE_LOGIN + b"\r\n", line
        if word in (b"IDLE", b"MOVE", b"UID MOVE", b"STARTTLS", b"COMPRESS", b"ENABLE"):
            return tag + b" BAD Unsupported command\r\n", line
        if word == b"XLIST":
            session["xlist"] = tag
            return None, tag + b" LIST " + line.split(b" ", 2)[2]
        return None, line

    async def _from_server(self, upstream, writer, session) -> None:
        continuing = False
        while True:
            line = await upstream.readline()
            if not line:
                return
            if not continuing:
                line = _as_163(line, session)
            if line:
                writer.write(line)
            continuing = await _relay_literal(line, upstream, writer)
            await writer.drain()


def _as_163(line: bytes, session: dict) -> bytes:
    """Dovecot's answer as 163 would give it: our capabilities, no UIDNEXT, XLIST as asked."""
    if line.startswith(b"* CAPABILITY "):
        return b"* CAPABILITY " + CAPABILITY + b"\r\n"
    line = _CAPABILITY_CODE.sub(b"", line)
    if line.startswith(b"* OK [UIDNEXT "):
        return b""
    if line.startswith(b"* STATUS "):
        line = _UIDNEXT.sub(b"", line).replace(b"( ", b"(")
    tag = session.get("xlist")
    if tag is not None:
        if line.startswith(b"* LIST "):
            line = b"* XLIST " + line[len(b"* LIST "):]
        elif line.startswith(tag + b" "):
            session["xlist"] = None
    return line


async def _relay_literal(line: bytes, reader: asyncio.StreamReader, writer) -> bool:
    """When `line` announces a literal ({n} or {n+}), pass its n bytes on as they are."""
    found = _LITERAL.search(line)
    if not found:
        return False
    size = int(found.group(1))
    if size > MAX_LITERAL:
        raise ValueError("literal over the proxy's limit")
    while size:
        chunk = await reader.read(min(size, 1 << 16))
        if not chunk:
            raise asyncio.IncompleteReadError(b"", size)
        writer.write(chunk)
        size -= len(chunk)
    return True


# ---------------------------------------------------------------------- SMTP

class _Handler163(_Handler):
    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        login = session.auth_data.login if isinstance(session.auth_data, LoginPassword) else b""
        login = login.decode("utf-8", "replace") if isinstance(login, bytes) else str(login)
        if address.lower() != login.lower():
            return self.owner.refused_mail("553 Mail from must equal authorized user")
        if getattr(session, "accepted_here", 0) >= self.owner.per_connection:
            return self.owner.refused_mail("451 MI:DMC 163 smtp10,test Current connection sent too many mails")
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 Mail OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or b""
        subject = str(BytesHeaderParser(policy=email_policy.default).parsebytes(raw)["Subject"] or "")
        if self.owner.subject_count(subject) >= self.owner.subject_repeats:
            self.owner.refuse(envelope, raw, "554 DT:SPM")
            return ("554 DT:SPM 163 smtp10,test Mail rejected as spam, please see "
                    "http://mail.163.com/help/help_spam_16.htm?ip=127.0.0.1")
        answer = await super().handle_DATA(server, session, envelope)
        if answer.startswith("2"):
            self.owner.count_subject(subject)
            session.accepted_here = getattr(session, "accepted_here", 0) + 1
        return answer


class _SMTP163(SMTP):
    """Counts the connections open at once; one too many is greeted with 421 HL:ICC."""

    def __init__(self, owner: "Smtp163Server", *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.owner, self._too_many, self._counted = owner, False, False

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        if not self._counted:
            self._counted = True
            self._too_many = self.owner.opened() > self.owner.max_connections

    def connection_lost(self, error) -> None:
        if self._counted:
            self._counted = False
            self.owner.closed()
        super().connection_lost(error)

    async def _handle_client(self) -> None:
        if self._too_many:
            self.owner.turned_away += 1
            await self.push("421 HL:ICC 163 smtp10,test Too many connections from the same IP")
            self.transport.close()
            return
        await super()._handle_client()


class _Controller163(Controller):
    def __init__(self, owner: "Smtp163Server", handler, **kwargs):
        self.owner = owner
        super().__init__(handler, **kwargs)

    def factory(self):
        return _SMTP163(self.owner, self.handler, **self.SMTP_kwargs)


class Smtp163Server(SmtpServer):
    """``Smtp163Server(username=..., password=...).start()``: implicit TLS and AUTH like
    smtp.163.com:465. ``turned_away`` counts connections greeted with 421 HL:ICC,
    ``mail_refusals`` the 553 and 451 answers to MAIL FROM."""

    def __init__(self, *, subject_repeats: int = 3, per_connection: int = 10,
                 max_connections: int = 2, **kwargs):
        kwargs.setdefault("tls", "ssl")
        super().__init__(auth=True, **kwargs)
        self.subject_repeats, self.per_connection = subject_repeats, per_connection
        self.max_connections = max_connections
        self.turned_away = 0
        self.mail_refusals: list[str] = []   # MAIL FROM answered 553 or 451
        self._subjects: collections.Counter[str] = collections.Counter()
        self._open = 0

    def _new_controller(self, kwargs: dict) -> Controller:
        return _Controller163(self, _Handler163(self), **kwargs)

    def opened(self) -> int:
        with self._lock:
            self._open += 1
            return self._open

    def closed(self) -> None:
        with self._lock:
            self._open -= 1

    def refused_mail(self, answer: str) -> str:
        with self._lock:
            self.mail_refusals.append(answer)
        return answer

    def subject_count(self, subject: str) -> int:
        with self._lock:
            return self._subjects[subject]

    def count_subject(self, subject: str) -> None:
        with self._lock:
            self._subjects[subject] += 1

    def refuse(self, envelope, raw: bytes, reply: str) -> None:
        """Keep a refused DATA in ``attempts``, as the base server does for scripted refusals."""
        message = BytesHeaderParser(policy=email_policy.default).parsebytes(raw.replace(b"\r\n", b"\n"))
        with self._lock:
            self.attempts.append(ReceivedMessage(envelope.mail_from, list(envelope.rcpt_tos), raw,
                                                 message, reply=reply))
