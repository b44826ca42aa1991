"""Mailbox sources behind one small interface: IMAP (imapclient) and Maildir.

A source yields `Incoming` messages not yet processed, and `mark_done` records one as processed
inside the caller's transaction. The received time is the server's: IMAP INTERNALDATE, or the
Maildir file's modification time — never the sender's Date header.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import imaplib
import logging
import os
import queue
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from imapclient import SEEN, IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError
from imapclient.imapclient import SENT

from outbox.transports import ssl_context
from pipeline.errors import MailboxError

log = logging.getLogger("intake.sources")

FETCH_BATCH = 25
# Sent after LOGIN: 163 refuses SELECT from clients that do not identify themselves.
CLIENT_ID = {"name": "intake", "version": "0.1", "vendor": "Zhuzhou MIIT intake"}


HEADER_LIMIT = 256 * 1024     # what is read of an oversized message: its headers
IDLE_RENEW = 120              # seconds in one IDLE command before a NOOP checks the line
KEEPALIVE = (60, 10, 3)       # TCP keep-alive: idle seconds, interval, probes (~90 s to notice)
AHEAD_BYTES = 32 << 20        # a batch in hand larger than this: the next is not fetched ahead


@dataclass
class Incoming:
    raw: bytes
    received_at: dt.datetime      # aware
    folder: str
    uid: int | None = None        # IMAP
    uidvalidity: int | None = None
    key: str | None = None        # Maildir
    oversize: int | None = None   # the full size, when only the headers were read

    @property
    def ref(self) -> str:
        """Where the message lives, stable across passes: for failures and reprocessing."""
        if self.key is not None:
            return f"maildir:{self.key}"
        return f"imap:{self.folder}:{self.uidvalidity}:{self.uid}"


class MaildirSource:
    """The embedded default: messages in new/ are unprocessed; processed ones move to cur/."""

    commit_after = True   # a message is moved to cur/ once the store has committed it
    keeps_sent_copies = False   # no Sent folder: the outbox records copies as "none", unread

    def __init__(self, path: Path, max_bytes: int):
        self.path = Path(path)
        self.max_bytes = max_bytes

    def __enter__(self) -> "MaildirSource":
        try:
            # An operator may have made only new/: processed messages need cur/ too.
            for sub in ("tmp", "new", "cur"):
                (self.path / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise MailboxError(f"cannot open the Maildir {self.path}: {exc.strerror or exc}") from None
        return self

    def __exit__(self, *exc) -> None:
        pass

    def new_messages(self, ledger) -> Iterator[Incoming]:
        for _, name in sorted(self._waiting()):
            incoming = self._read(self.path / "new" / name)
            if incoming is not None:
                yield incoming

    def fetch_ref(self, ref: str) -> Incoming | None:
        key = ref.removeprefix("maildir:")
        for sub in ("new", "cur"):
            for path in (self.path / sub).glob(f"{key}*"):
                return self._read(path, key)
        return None

    def _waiting(self) -> list[tuple[float, str]]:
        out = []
        for entry in os.scandir(self.path / "new"):
            if entry.name.startswith("."):
                continue
            try:
                out.append((entry.stat().st_mtime, entry.name))
            except FileNotFoundError:  # taken by another reader meanwhile
                continue
        return out

    def _read(self, path: Path, key: str | None = None) -> Incoming | None:
        try:
            size = path.stat().st_size
            mtime = path.stat().st_mtime
            with open(path, "rb") as fh:
                raw = fh.read(HEADER_LIMIT if size > self.max_bytes else -1)
        except FileNotFoundError:
            return None
        if size > self.max_bytes:
            raw = _headers_only(raw)
        return Incoming(raw=raw, received_at=dt.datetime.fromtimestamp(mtime, dt.timezone.utc),
                        folder=str(self.path), key=key or path.name.split(":2,")[0],
                        oversize=size if size > self.max_bytes else None)

    def mark_done(self, incoming: Incoming, ledger) -> None:
        """Move the file to cur/ with the Seen flag (call after the transaction commits)."""
        src = self.path / "new" / incoming.key
        try:
            os.replace(src, self.path / "cur" / (incoming.key + ":2,S"))
        except FileNotFoundError:
            pass

    def append_sent(self, raw: bytes, when: dt.datetime | None = None) -> bool:
        """No Sent folder to keep: the Maildir transport's folder is the record of what left."""
        return False

    def wait_for_mail(self, seconds: float, stop) -> None:
        """Sleep up to `seconds`, waking early for a stop request or a new file in new/."""
        before = {name for _, name in self._waiting()}
        deadline = time.monotonic() + seconds
        while not stop.wait(min(1.0, max(0.0, deadline - time.monotonic()))):
            if time.monotonic() >= deadline or {n for _, n in self._waiting()} - before:
                return


def _headers_only(raw: bytes) -> bytes:
    for sep in (b"\r\n\r\n", b"\n\n"):
        head, found, _ = raw.partition(sep)
        if found:
            return head + sep
    return raw


class ImapSource:
    """Reads one folder over IMAP without marking anything read (BODY.PEEK), tracking UIDs in the ledger.

    Relies on none of UIDNEXT, IDLE or MOVE: 163 offers none of them.
    """

    commit_after = False  # the ledger update is part of the message's transaction
    keeps_sent_copies = True    # in the folder flagged \Sent, where the server has one

    def __init__(self, settings):
        self.s = settings
        self.client: IMAPClient | None = None
        self._ahead: _FetchAhead | None = None   # the thread fetching the next batch, if any

    def __enter__(self) -> "ImapSource":
        self.client = self._connect()
        return self

    def __exit__(self, *exc) -> None:
        self._settle()
        if self.client is not None:
            try:
                self.client.logout()
            except (IMAPClientError, OSError):
                pass
            self.client = None

    def _connect(self) -> IMAPClient:
        s = self.s
        where = f"IMAP server {s.host}:{s.port}"
        password = s.password()
        try:
            client = IMAPClient(s.host, port=s.port, ssl=s.security == "ssl",
                                ssl_context=ssl_context(s.ca_file), timeout=30)
            if s.security == "starttls":
                client.starttls(ssl_context(s.ca_file))
            client.login(s.username, password)
        except LoginError:
            raise MailboxError(f"{where} refused the login for {s.username}: check the user name "
                               f"and the password in ${s.password_env}") from None
        except ssl.SSLCertVerificationError as exc:
            raise MailboxError(f"{where}: its TLS certificate cannot be verified "
                               f"({exc.verify_message}); set mailbox.ca_file to trust a private CA") from None
        except ssl.SSLError as exc:
            raise MailboxError(f"{where}: TLS failed: {exc.reason or exc}") from None
        except (IMAPClientError, imaplib.IMAP4.abort) as exc:
            raise MailboxError(f"{where}: {exc}") from None
        except (OSError, socket.timeout) as exc:
            raise MailboxError(f"{where} is unreachable: {exc.strerror or exc}") from None
        client.normalise_times = False
        _keep_alive(client.socket())
        self._identify(client)
        return client

    @staticmethod
    def _identify(client: IMAPClient) -> None:
        try:
            if client.has_capability("ID"):
                client.id_(CLIENT_ID)
        except (IMAPClientError, imaplib.IMAP4.abort) as exc:
            log.warning("the IMAP server did not accept the ID command: %s", exc)

    def new_messages(self, ledger) -> Iterator[Incoming]:
        """New messages in UID order, fetched FETCH_BATCH at a time, the next batch on a thread
        while the caller works on the one in hand (see _FetchAhead)."""
        self._settle()
        folder = self.s.folder
        with self._errors(f"reading {folder}"):
            uidvalidity = self._select()
            known_validity, last_uid = ledger.get(folder)
            if known_validity != uidvalidity:
                if known_validity is not None:
                    log.warning("folder %s was rebuilt (UIDVALIDITY %s -> %s): rescanning; "
                                "messages already processed are recognised by Message-ID",
                                folder, known_validity, uidvalidity)
                last_uid = 0
            uids = sorted(u for u in self.client.search(["UID", f"{last_uid + 1}:*"]) if u > last_uid)
            batches = [uids[start:start + FETCH_BATCH] for start in range(0, len(uids), FETCH_BATCH)]
            if len(batches) <= 1:   # nothing to overlap: no thread
                for batch in batches:
                    yield from self._fetch(batch, uidvalidity)
                return
            self._ahead = _FetchAhead(lambda batch: list(self._fetch(batch, uidvalidity)), batches)
            try:
                yield from self._ahead
            finally:   # read to the end, or the caller stopped early: the thread is done with
                self._settle()

    def fetch_ref(self, ref: str) -> Incoming | None:
        """The message a failure record names, if the folder still holds it unchanged."""
        _, folder, uidvalidity, uid = ref.rsplit(":", 3)
        self._settle()
        with self._errors(f"reading {folder}"):
            if folder != self.s.folder or self._select() != int(uidvalidity):
                return None
            return next(iter(self._fetch([int(uid)], int(uidvalidity))), None)

    def _select(self) -> int:
        # SELECT, not EXAMINE: 163 knows SELECT after ID; BODY.PEEK keeps messages unread.
        return int(self.client.select_folder(self.s.folder)[b"UIDVALIDITY"])

    def _fetch(self, uids: list[int], uidvalidity: int) -> Iterator[Incoming]:
        """Whole messages; of one over the size limit, only its headers."""
        sizes = self.client.fetch(uids, [b"RFC822.SIZE", b"INTERNALDATE"])
        small = [u for u in uids if u in sizes and sizes[u].get(b"RFC822.SIZE", 0) <= self.s.max_bytes]
        bodies = self.client.fetch(small, [b"BODY.PEEK[]"]) if small else {}
        for uid in uids:
            if uid not in sizes:
                continue
            size = sizes[uid].get(b"RFC822.SIZE", 0)
            if uid in bodies:
                raw, oversize = bodies[uid].get(b"BODY[]"), None
            else:
                head = self.client.fetch([uid], [b"BODY.PEEK[HEADER]"]).get(uid, {})
                raw, oversize = head.get(b"BODY[HEADER]"), size
            if raw is None:
                continue
            yield Incoming(raw=raw, received_at=_aware(sizes[uid][b"INTERNALDATE"]),
                           folder=self.s.folder, uid=uid, uidvalidity=uidvalidity, oversize=oversize)

    def wait_for_mail(self, seconds: float, stop) -> None:
        """IDLE until the server announces new mail, a stop request or `seconds` pass; where
        IDLE is not offered (163), just wait. A connection that ends is noticed at once (a
        MailboxError), not spun on: imapclient's idle_check returns early and empty when the
        socket is readable but holds no line — the server closed it — so the worker leaves
        IDLE and asks with NOOP. IDLE is renewed every IDLE_RENEW seconds with a NOOP between,
        and TCP keep-alives find a connection whose far end vanished without closing it."""
        self._settle()
        if not self.client.has_capability("IDLE"):
            stop.wait(seconds)
            return
        deadline = time.monotonic() + seconds
        with self._errors("waiting for new mail"):
            while not stop.is_set() and time.monotonic() < deadline:
                if self._idle_once(min(deadline, time.monotonic() + IDLE_RENEW), stop):
                    return
                self.client.noop()   # raises on a connection that is gone

    def _idle_once(self, until: float, stop) -> bool:
        """One IDLE command until `until`: True when new mail was announced; False when it
        ended for a check (renewal, or idle_check returning early with nothing)."""
        self.client.idle()
        try:
            while not stop.is_set() and time.monotonic() < until:
                slice_ = min(1.0, until - time.monotonic())
                started = time.monotonic()
                responses = self.client.idle_check(timeout=slice_)
                if any(len(r) > 1 and r[1] in (b"EXISTS", b"RECENT") for r in responses):
                    return True
                if not responses and time.monotonic() - started < slice_ / 2:
                    return False   # readable, yet no line: most likely closed; NOOP will tell
            return False
        finally:
            self.client.idle_done()

    @contextlib.contextmanager
    def _errors(self, doing: str):
        """Any connection or protocol failure becomes one MailboxError line."""
        try:
            yield
        except MailboxError:
            raise
        except (IMAPClientError, imaplib.IMAP4.error, imaplib.IMAP4.abort, OSError, socket.timeout) as exc:
            raise MailboxError(f"{doing} on {self.s.host} failed: {exc or type(exc).__name__}") from None

    def mark_done(self, incoming: Incoming, ledger) -> None:
        known_validity, last = ledger.get(incoming.folder)
        if known_validity != incoming.uidvalidity:
            last = 0
        ledger.set(incoming.folder, incoming.uidvalidity, max(last, incoming.uid))

    def append_sent(self, raw: bytes, when: dt.datetime | None = None) -> bool:
        """APPEND a sent reply, marked read, to the folder flagged SPECIAL-USE \\Sent (its name
        differs by server and language: Sent, 已发送, Sent Messages). False when the server has
        no such folder (one log line); a failed APPEND raises MailboxError, and the outbox keeps
        the copy due for the next pass."""
        self._settle()
        with self._errors("keeping a copy in the Sent folder"):
            folder = self._sent_folder()
            if folder is None:
                log.warning("no copy kept of a sent reply: %s has no \\Sent folder", self.s.host)
                return False
            self.client.append(folder, raw, flags=(SEEN,), msg_time=when)
            return True

    def append_sent_all(self, raws: list[bytes]) -> bool | None:
        """APPEND many sent replies in one command (MULTIAPPEND, RFC 3502: all are kept or
        none), marked read, to the \\Sent folder. None when the server does not offer it (163):
        append_sent then does them one by one; False when there is no \\Sent folder."""
        self._settle()
        with self._errors("keeping copies in the Sent folder"):
            if not self.client.has_capability("MULTIAPPEND"):
                return None
            folder = self._sent_folder()
            if folder is None:
                log.warning("no copy kept of %d sent replies: %s has no \\Sent folder", len(raws), self.s.host)
                return False
            self.client.multiappend(folder, [{"msg": raw, "flags": (SEEN,)} for raw in raws])
            return True

    def _settle(self) -> None:
        """The connection is the caller's again: a fetch still running ahead is waited for and
        what it fetched let go (those messages stay new in the mailbox for the next pass)."""
        if self._ahead is not None:
            self._ahead.close()
            self._ahead = None

    def _sent_folder(self) -> str | None:
        if not hasattr(self, "_sent"):
            self._sent = self.client.find_special_folder(SENT)
        return self._sent


class _FetchAhead:
    """Batches of messages fetched by a thread one batch ahead of the caller, over the same
    connection: the wait for the server's next batch overlaps the work on the one in hand
    without a second login, which 163 and QQ limit. On loopback that wait is ~10% of the pass's
    thread and the total hardly moves (the fetch's parsing shares the GIL); across a 30 ms,
    48 Mbit/s link a 500-email backlog went from ~32 to ~50 emails/s (bench/backlog.py).
    The connection is the thread's until `close` or the last batch. A fetch that fails is raised
    in the caller, after the messages before it. Memory: the next batch is fetched ahead only
    while the one in hand holds at most AHEAD_BYTES (county emails: ~1.5 MB a batch); after a
    larger one (25 scans of 50 MB are 1.25 GB) it is fetched once that one is worked through, so
    one large batch at a time is held, as before."""

    def __init__(self, fetch, batches: list[list[int]], size=lambda incoming: len(incoming.raw)):
        self._fetch, self._batches, self._size = fetch, batches, size
        self._fetched: queue.Queue = queue.Queue()
        self._slot = threading.Semaphore(1)   # taken for each batch; given back as one is taken in
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="intake-fetch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for batch in self._batches:
                self._slot.acquire()
                if self._closed.is_set():
                    return
                self._fetched.put((True, self._fetch(batch)))
        except BaseException as exc:  # noqa: BLE001 — raised again in the caller's thread
            self._fetched.put((False, exc))

    def __iter__(self) -> Iterator[Incoming]:
        for _ in self._batches:
            ok, value = self._fetched.get()
            if not ok:
                raise value
            small = sum(self._size(incoming) for incoming in value) <= AHEAD_BYTES
            if small:
                self._slot.release()   # the next batch is fetched while this one is worked on
            if self._closed.is_set():
                return
            yield from value
            if not small:
                value = None   # worked through: let go before the next is fetched
                self._slot.release()

    def close(self) -> None:
        self._closed.set()
        self._slot.release()   # a thread waiting for its turn sees it is closed
        self._thread.join()


def _keep_alive(sock: socket.socket) -> None:
    """Probes on an idle connection, so one whose server vanished (no FIN) errors instead of
    idling forever."""
    idle, interval, count = KEEPALIVE
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, interval)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, count)
    except (OSError, AttributeError):   # not Linux: the IDLE renewal still notices in time
        pass


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def source_for(mailbox_settings) -> MaildirSource | ImapSource:
    if mailbox_settings.transport == "maildir":
        return MaildirSource(mailbox_settings.path, mailbox_settings.max_bytes)
    return ImapSource(mailbox_settings)
