"""Mailbox sources behind one small interface: IMAP (imapclient) and Maildir.

A source yields `Incoming` messages not yet processed, and `mark_done` records one as processed
inside the caller's transaction. The received time is the server's: IMAP INTERNALDATE, or the
Maildir file's modification time — never the sender's Date header.
"""
from __future__ import annotations

import datetime as dt
import imaplib
import logging
import os
import socket
import ssl
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


@dataclass
class Incoming:
    raw: bytes
    received_at: dt.datetime      # aware
    folder: str
    uid: int | None = None        # IMAP
    uidvalidity: int | None = None
    key: str | None = None        # Maildir


class MaildirSource:
    """The embedded default: messages in new/ are unprocessed; processed ones move to cur/."""

    def __init__(self, path: Path):
        self.path = Path(path)

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
        new_dir = self.path / "new"
        entries = sorted(new_dir.iterdir(), key=lambda p: (p.stat().st_mtime, p.name)) if new_dir.exists() else []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                raw = entry.read_bytes()
                mtime = entry.stat().st_mtime
            except FileNotFoundError:  # taken by another reader meanwhile
                continue
            yield Incoming(raw=raw, received_at=dt.datetime.fromtimestamp(mtime, dt.timezone.utc),
                           folder=str(self.path), key=entry.name)

    def mark_done(self, incoming: Incoming, ledger) -> None:
        """Move the file to cur/ with the Seen flag (call after the transaction commits)."""
        src = self.path / "new" / incoming.key
        name = incoming.key if ":2," in incoming.key else incoming.key + ":2,S"
        try:
            os.replace(src, self.path / "cur" / name)
        except FileNotFoundError:
            pass

    commit_after = True   # Maildir marks a message done after the store commits

    def append_sent(self, raw: bytes, when: dt.datetime | None = None) -> bool:
        """No Sent folder to keep: the Maildir transport's folder is the record of what left."""
        return False


class ImapSource:
    """Reads one folder over IMAP without marking anything read (BODY.PEEK), tracking UIDs in the ledger.

    Relies on none of UIDNEXT, IDLE or MOVE: 163 offers none of them.
    """

    commit_after = False  # the ledger update is part of the message's transaction

    def __init__(self, settings):
        self.s = settings
        self.client: IMAPClient | None = None
        self.uidvalidity: int | None = None

    def __enter__(self) -> "ImapSource":
        self.client = self._connect()
        return self

    def __exit__(self, *exc) -> None:
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
        folder = self.s.folder
        try:
            # SELECT, not EXAMINE: 163 knows SELECT after ID; BODY.PEEK keeps messages unread.
            info = self.client.select_folder(folder)
            uidvalidity = int(info[b"UIDVALIDITY"])
            known_validity, last_uid = ledger.get(folder)
            if known_validity != uidvalidity:
                if known_validity is not None:
                    log.warning("folder %s was rebuilt (UIDVALIDITY %s -> %s): rescanning; "
                                "messages already processed are recognised by Message-ID",
                                folder, known_validity, uidvalidity)
                last_uid = 0
            uids = sorted(u for u in self.client.search(["UID", f"{last_uid + 1}:*"]) if u > last_uid)
            for start in range(0, len(uids), FETCH_BATCH):
                batch = uids[start:start + FETCH_BATCH]
                fetched = self.client.fetch(batch, [b"BODY.PEEK[]", b"INTERNALDATE"])
                for uid in batch:
                    data = fetched.get(uid)
                    if not data or b"BODY[]" not in data:
                        continue
                    yield Incoming(raw=data[b"BODY[]"], received_at=_aware(data[b"INTERNALDATE"]),
                                   folder=folder, uid=uid, uidvalidity=uidvalidity)
        except (IMAPClientError, imaplib.IMAP4.abort, OSError) as exc:
            raise MailboxError(f"reading {folder} on {self.s.host} failed: {exc}") from None

    def mark_done(self, incoming: Incoming, ledger) -> None:
        known_validity, last = ledger.get(incoming.folder)
        if known_validity != incoming.uidvalidity:
            last = 0
        ledger.set(incoming.folder, incoming.uidvalidity, max(last, incoming.uid))

    def append_sent(self, raw: bytes, when: dt.datetime | None = None) -> bool:
        """APPEND a sent reply, marked read, to the folder flagged SPECIAL-USE \\Sent (its name
        differs by server and language: Sent, 已发送, Sent Messages). Never raises: a missing
        copy is one log line, the reply itself is already out."""
        try:
            folder = self._sent_folder()
            if folder is None:
                log.warning("no copy kept of a sent reply: %s has no \\Sent folder", self.s.host)
                return False
            self.client.append(folder, raw, flags=(SEEN,), msg_time=when)
            return True
        except (IMAPClientError, imaplib.IMAP4.error, imaplib.IMAP4.abort, OSError) as exc:
            log.warning("no copy kept of a sent reply in the Sent folder on %s: %s", self.s.host, exc)
            return False

    def _sent_folder(self) -> str | None:
        if not hasattr(self, "_sent"):
            self._sent = self.client.find_special_folder(SENT)
        return self._sent


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def source_for(mailbox_settings) -> MaildirSource | ImapSource:
    if mailbox_settings.transport == "maildir":
        return MaildirSource(mailbox_settings.path)
    return ImapSource(mailbox_settings)
