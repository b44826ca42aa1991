"""The store: the only code that knows TinyDB exists.

The rest of intake sees small repositories (`store.submissions.add`, `store.candidates.current`)
and one unit of work: changes made inside `with store.transaction():` reach the disk together
or not at all, so a submission, its candidates, its reply and the mailbox ledger never disagree.
"""
from __future__ import annotations

import contextlib
import copy
import fcntl
import hashlib
import os
from pathlib import Path

from tinydb import Query, TinyDB

from store.storage import AtomicJSONStorage


class StoreError(Exception):
    """The store cannot be opened or written; the message is one line for the operator."""


class Store:
    def __init__(self, path: str | os.PathLike, files_dir: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._storage: AtomicJSONStorage | None = None
        try:
            self.db = TinyDB(self.path, storage=self._make_storage)
            self.db.tables()  # read now, so a damaged file is reported at open
        except ValueError as exc:
            raise StoreError(f"the store {self.path} is not valid JSON: {exc}") from None
        self.submissions = Submissions(self.db.table("submissions"))
        self.candidates = Candidates(self.db.table("candidates"))
        self.ledger = Ledger(self.db.table("ledger"))
        self.outbox = Outbox(self.db.table("outbox"))
        self.digests = Digests(self.db.table("digests"))
        self.files = FileStore(Path(files_dir))
        self._lock_fh = None

    def _make_storage(self, path):
        self._storage = AtomicJSONStorage(path)
        return self._storage

    @contextlib.contextmanager
    def transaction(self):
        """Commit everything done inside at once; on an exception, keep nothing of it."""
        try:
            yield self
        except BaseException:
            self._rollback()
            raise
        self._storage.commit()

    def _rollback(self) -> None:
        self._storage.rollback()
        for table in (self.submissions, self.candidates, self.ledger, self.outbox, self.digests):
            table.table.clear_cache()

    def lock(self) -> None:
        """Take the single-writer lock, or raise StoreError when another intake holds it."""
        lock_path = self.path.with_name(self.path.name + ".lock")
        self._lock_fh = open(lock_path, "a+")
        try:
            fcntl.flock(self._lock_fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_fh.close()
            self._lock_fh = None
            raise StoreError(f"another intake process is already writing {self.path}") from None

    def close(self) -> None:
        self.db.close()
        if self._lock_fh:
            self._lock_fh.close()
            self._lock_fh = None


def _plain(doc) -> dict:
    """A detached copy, so callers cannot change stored data behind the store's back."""
    return copy.deepcopy(dict(doc))


class _Repository:
    def __init__(self, table):
        self.table = table

    def all(self) -> list[dict]:
        return [_plain(d) for d in self.table.all()]


class Submissions(_Repository):
    """One document per email read, keyed by its Message-ID."""

    def get(self, message_id: str) -> dict | None:
        doc = self.table.get(Query().message_id == message_id)
        return _plain(doc) if doc else None

    def add(self, submission: dict) -> None:
        self.table.insert(submission)

    def update(self, message_id: str, **fields) -> None:
        self.table.update(fields, Query().message_id == message_id)


class Candidates(_Repository):
    """One document per (county, name), holding the current version and all earlier ones."""

    def get(self, county: str, name: str) -> dict | None:
        q = Query()
        doc = self.table.get((q.county == county) & (q.name == name))
        return _plain(doc) if doc else None

    def current(self, county: str) -> list[dict]:
        return [_plain(d) for d in self.table.search(Query().county == county)]

    def put(self, candidate: dict) -> None:
        q = Query()
        self.table.upsert(candidate, (q.county == candidate["county"]) & (q.name == candidate["name"]))


class Ledger(_Repository):
    """Per mailbox folder: its UIDVALIDITY and the last UID fully processed."""

    def get(self, folder: str) -> tuple[int | None, int]:
        doc = self.table.get(Query().folder == folder)
        return (doc["uidvalidity"], doc["last_uid"]) if doc else (None, 0)

    def set(self, folder: str, uidvalidity: int, last_uid: int) -> None:
        self.table.upsert({"folder": folder, "uidvalidity": uidvalidity, "last_uid": last_uid},
                          Query().folder == folder)


class Outbox(_Repository):
    """Replies written with the outcome they report, sent afterwards from here."""

    def add(self, reply: dict) -> None:
        if not self.table.contains(Query().reply_id == reply["reply_id"]):
            self.table.insert(reply)

    def get(self, reply_id: str) -> dict | None:
        doc = self.table.get(Query().reply_id == reply_id)
        return _plain(doc) if doc else None

    def with_status(self, *statuses: str) -> list[dict]:
        return [_plain(d) for d in self.table.search(Query().status.one_of(list(statuses)))]

    def update(self, reply_id: str, **fields) -> None:
        self.table.update(fields, Query().reply_id == reply_id)

    def undeliverable(self) -> list[dict]:
        """Replies that bounced; `flagged_address` is the county address that could not be reached."""
        return self.with_status("undeliverable")


class Digests(_Repository):
    """The daily digest ledger: one document per date, so a date's digest goes out once."""

    def get(self, date: str) -> dict | None:
        doc = self.table.get(Query().date == date)
        return _plain(doc) if doc else None

    def record(self, date: str, message_id: str, cutoff: str, sent_at: str) -> None:
        """Note the digest queued for `date`; a forced resend keeps the earlier Message-IDs."""
        earlier = self.get(date) or {}
        self.table.upsert({"date": date, "message_id": message_id, "cutoff": cutoff,
                           "sent_at": sent_at,
                           "message_ids": [*earlier.get("message_ids", []), message_id]},
                          Query().date == date)

    def latest_before(self, date: str) -> dict | None:
        """The digest of the closest earlier date: what "new since the previous digest" is
        measured from."""
        earlier = [d for d in self.table.all() if d["date"] < date]
        return _plain(max(earlier, key=lambda d: d["date"])) if earlier else None


class FileStore:
    """Attachment bytes by sha256, readable by the service user only."""

    def __init__(self, root: Path):
        self.root = root

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        target = self.path_of(digest)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = target.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        return digest

    def path_of(self, digest: str) -> Path:
        return self.root / digest[:2] / digest

    def read(self, digest: str) -> bytes:
        return self.path_of(digest).read_bytes()
