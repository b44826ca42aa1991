"""Where replies leave: an SMTP server, or a Maildir folder (the embedded default).

Nothing else in intake opens an SMTP socket.
"""
from __future__ import annotations

import hashlib
import os
import re
import smtplib
import socket
import ssl
import time
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses
from pathlib import Path
from typing import Callable
from outbox.errors import TransportUnavailable  # noqa: F401  (raised here; defined apart for the CLI)


class DeliveryError(Exception):
    """A message could not be handed over. `permanent` failures are never retried; `throttled`
    means the server wants fewer messages from us for a while (pause all sending to it); `spam`
    means 163 refused it under its spam or rate rules (a 5xx that a long wait cures)."""

    def __init__(self, message: str, permanent: bool, throttled: bool = False, spam: bool = False):
        super().__init__(message)
        self.permanent = permanent
        self.throttled = throttled
        self.spam = spam


# 163's rate limits: 421 HL:ICC / HL:IFC / HL:MEP, 450 MI:DMC / MI:CEL, 451 MI:SFQ / RP:QRC ...
_THROTTLE_MARK = re.compile(r"\b(HL|MI|RP):[A-Z]{3}\b")
# 163's 5xx that are not final: DT:SPM / DT:SUM (content taken for spam), MI:xxx (the account's
# sending rate). They pass once the rate falls or the message differs; a wrong address does not.
_SPAM_MARK = re.compile(r"\b(DT:(SPM|SUM)|MI:[A-Z]{3})\b")


def is_throttling(code: int, text: str) -> bool:
    return code == 421 or (400 <= code < 500 and bool(_THROTTLE_MARK.search(text)))


def classify(code: int, text: str) -> DeliveryError:
    """What a refusal means for the outbox (see the README's table of 163's codes)."""
    if code >= 500:
        spam = bool(_SPAM_MARK.search(text))
        # MI: is the account's rate, not this message: every reply waits as long.
        return DeliveryError(text, permanent=not spam, spam=spam, throttled="MI:" in text and spam)
    return DeliveryError(text, permanent=False, throttled=code in (421, 450, 451) or is_throttling(code, text))


def ssl_context(ca_file: Path | None) -> ssl.SSLContext:
    """Certificate verification is always on; `ca_file` adds a private CA to trust."""
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=str(ca_file))
    return context


# What a transport sends: a composed message, or the bytes of one as it was composed and
# stored (the outbox's replies): those are sent as they are, never parsed and generated again.
Sendable = EmailMessage | bytes
_LINE_END = re.compile(rb"\r?\n")


def _headers(msg: Sendable) -> Message:
    """The message's headers; of stored bytes, the headers alone are parsed."""
    return BytesHeaderParser(policy=compat32).parsebytes(msg) if isinstance(msg, bytes) else msg


def _wire(msg: Sendable) -> bytes:
    """The message with CRLF line ends, for SMTP."""
    if isinstance(msg, bytes):
        return _LINE_END.sub(b"\r\n", msg)
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


def recipients(msg: EmailMessage | Message) -> list[str]:
    # Only the headers present: the getaddresses of Debian 12's Python (3.11.2 with the strict
    # parsing of CVE-2023-27043) returns nothing at all for ["a@b.cn", "", ""].
    fields = [str(value) for h in ("To", "Cc", "Bcc") for value in msg.get_all(h, [])]
    return [addr for _, addr in getaddresses(fields) if "@" in addr]


class SmtpTransport:
    """One connection per batch; the envelope sender is the login address (163 refuses others)."""

    def __init__(self, host: str, port: int, security: str, username: str, password: str,
                 from_address: str, ca_file: Path | None = None, timeout: float = 30.0):
        self.host, self.port, self.security = host, port, security
        self.username, self._password = username, password
        self.envelope_from = username if "@" in username else from_address
        self.ca_file, self.timeout = ca_file, timeout
        self.server = f"{host}:{port}"   # what a pause asked by the server applies to
        self._conn: smtplib.SMTP | None = None

    def __enter__(self) -> "SmtpTransport":
        self._conn = self._connect()
        return self

    def __exit__(self, *exc) -> None:
        if self._conn is not None:
            try:
                self._conn.quit()
            except (smtplib.SMTPException, OSError):
                self._conn.close()
            self._conn = None

    def _connect(self) -> smtplib.SMTP:
        where = f"SMTP server {self.host}:{self.port}"
        try:
            if self.security == "ssl":
                conn = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout,
                                        context=ssl_context(self.ca_file))
            else:
                conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
                if self.security == "starttls":
                    conn.starttls(context=ssl_context(self.ca_file))
            # The final "." is a write of its own (_transaction): with Nagle on it waits for the
            # server's ACK of the body, ~40 ms a reply, all of it with the handover marker up.
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.username and self._password:
                conn.login(self.username, self._password)
            return conn
        except smtplib.SMTPResponseException as exc:
            text = f"{exc.smtp_code} {_text(exc.smtp_error)}"
            if 400 <= exc.smtp_code < 500:  # 421 HL:ICC as the greeting: too many connections
                raise TransportUnavailable(text, throttled=True) from None
            if isinstance(exc, smtplib.SMTPAuthenticationError):
                raise TransportUnavailable(f"{where} refused the login for {self.username} "
                                           f"({text})", needs_operator=True) from None
            raise TransportUnavailable(f"{where} refused the connection: {text}") from None
        except ssl.SSLCertVerificationError as exc:
            raise TransportUnavailable(f"{where}: its TLS certificate cannot be verified "
                                       f"({exc.verify_message}); set smtp.ca_file to trust a "
                                       f"private CA", needs_operator=True) from None
        except ssl.SSLError as exc:
            raise TransportUnavailable(f"{where}: TLS failed: {exc.reason or exc}") from None
        except (smtplib.SMTPException, OSError, socket.timeout) as exc:
            raise TransportUnavailable(f"{where} is unreachable: {_describe(exc)}") from None

    def send(self, msg: Sendable, handing_over: Callable[[], None] = lambda: None) -> None:
        """Hand one message to the server. `handing_over()` is called just before the final
        "." of DATA: from then until the server's answer is recorded, a crash leaves it
        unknown whether the server took the message; before it, the server surely did not."""
        if self._conn is None:
            raise TransportUnavailable("SMTP transport used outside its connection")
        try:
            refused = self._transaction(msg, handing_over)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            text = _answer(exc.recipients)
            spam = bool(_SPAM_MARK.search(text)) and all(c >= 500 for c in codes)
            raise DeliveryError(text, permanent=all(c >= 500 for c in codes) and not spam, spam=spam,
                                throttled=any(is_throttling(c, text) for c in codes)) from None
        except smtplib.SMTPResponseException as exc:
            text = f"{exc.smtp_code} {_text(exc.smtp_error)}"
            if exc.smtp_code >= 500:
                self._reset()
                raise classify(exc.smtp_code, text) from None
            self._drop()  # a 4xx may leave the session unusable: reconnect next time
            # A 4xx to MAIL or DATA is the server's, not one recipient's: pause the sending.
            raise DeliveryError(text, permanent=False, throttled=True) from None
        except (smtplib.SMTPException, OSError) as exc:
            self._drop()
            raise TransportUnavailable(f"connection to {self.host}:{self.port} lost: {_describe(exc)}") from None
        if refused:
            raise DeliveryError(_answer(refused), permanent=True)

    def _transaction(self, msg: Sendable, handing_over: Callable[[], None]) -> dict:
        """MAIL, RCPT, DATA as smtplib.sendmail does them, with a hook before the final dot."""
        conn = self._conn
        data = _wire(msg)
        conn.ehlo_or_helo_if_needed()
        options = ["BODY=8BITMIME"] if conn.has_extn("8bitmime") and not data.isascii() else []
        code, answer = conn.mail(self.envelope_from, options)
        if code != 250:
            raise smtplib.SMTPSenderRefused(code, answer, self.envelope_from)
        refused = {}
        to_addrs = recipients(_headers(msg))
        for addr in to_addrs:
            code, answer = conn.rcpt(addr)
            if code not in (250, 251):
                refused[addr] = (code, answer)
        if len(refused) == len(to_addrs):
            self._reset()
            raise smtplib.SMTPRecipientsRefused(refused)
        code, answer = conn.docmd("data")
        if code != 354:
            raise smtplib.SMTPDataError(code, answer)
        body = smtplib._quote_periods(data)
        if not body.endswith(b"\r\n"):
            body += b"\r\n"
        conn.send(body)
        handing_over()
        conn.send(b".\r\n")
        code, answer = conn.getreply()
        if code != 250:
            raise smtplib.SMTPDataError(code, answer)
        return refused

    def _reset(self) -> None:
        try:
            self._conn.rset()
        except (smtplib.SMTPException, OSError):
            self._drop()

    def reconnect_if_needed(self) -> None:
        if self._conn is None:
            self._conn = self._connect()

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class MaildirTransport:
    """Writes each message into a Maildir's new/ as NAME.eml: a mail client reads the folder,
    and a person can open any reply by double-clicking it."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def __enter__(self) -> "MaildirTransport":
        for sub in ("tmp", "new", "cur"):
            (self.path / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
        self._clean_tmp()
        return self

    def _clean_tmp(self) -> None:
        """Remove the replies a killed intake left half-handed-over in tmp/: ours by their
        name, written by a process that is gone. (The reply itself is still in the outbox and
        is written again.)"""
        for path in (self.path / "tmp").glob("*.eml"):
            match = _OWN_NAME.fullmatch(path.name)
            if match and not _alive(int(match.group(1))):
                path.unlink(missing_ok=True)

    def __exit__(self, *exc) -> None:
        pass

    def reconnect_if_needed(self) -> None:
        pass

    def send(self, msg: Sendable, handing_over: Callable[[], None] = lambda: None) -> None:
        name = f"{time.time_ns()}.{_tag(_headers(msg))}.P{os.getpid()}.{socket.gethostname().replace('/', '_')}.eml"
        tmp = self.path / "tmp" / name
        data = msg if isinstance(msg, bytes) else msg.as_bytes()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        handing_over()
        os.replace(tmp, self.path / "new" / name)

    def delivered(self, message_id: str) -> bool:
        """Whether a message with this Message-ID is in the folder: after a crash in the middle
        of a handover, the Maildir can say what an SMTP server cannot."""
        tag = hashlib.sha1(message_id.encode()).hexdigest()[:16]
        return any((self.path / sub).glob(f"*.{tag}.*") for sub in ("new", "cur"))


_OWN_NAME = re.compile(r"\d+\.[0-9a-f]{16}\.P(\d+)\..*\.eml")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # someone else's process: not ours to judge
        return True
    return True


def _tag(msg: EmailMessage | Message) -> str:
    return hashlib.sha1(str(msg["Message-ID"]).encode()).hexdigest()[:16]


def transport_for(smtp) -> SmtpTransport | MaildirTransport:
    """Build the transport the [smtp] settings describe."""
    if smtp.transport == "maildir":
        return MaildirTransport(smtp.path)
    return SmtpTransport(smtp.host, smtp.port, smtp.security, smtp.username, smtp.password(),
                         smtp.from_address, smtp.ca_file, smtp.timeout)


def _answer(refused: dict) -> str:
    return "; ".join(f"{addr}: {code} {_text(text)}" for addr, (code, text) in refused.items())


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
