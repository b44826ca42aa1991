"""The store: the only code that knows TinyDB exists.

The rest of intake sees small repositories (`store.submissions.add`, `store.candidates.current`)
and one unit of work: changes made inside `with store.transaction():` reach the disk together
or not at all, so a submission, its candidates, its reply and the mailbox ledger never disagree.
"""
from __future__ import annotations

import contextlib
import copy
import datetime as dt
import fcntl
import hashlib
import os
from collections.abc import MutableMapping
from pathlib import Path

from tinydb import Query, TinyDB
from tinydb.table import Table

from store.storage import JournaledStorage


class _IdKeyed(MutableMapping):
    """The table as TinyDB's updaters see it (int ids) over the stored dict (str ids), without
    copying it: TinyDB's own Table rebuilds the whole table twice on every write."""

    def __init__(self, raw: dict):
        self.raw = raw

    def __getitem__(self, doc_id):
        return self.raw[str(doc_id)]

    def __setitem__(self, doc_id, doc) -> None:
        self.raw[str(doc_id)] = doc

    def __delitem__(self, doc_id) -> None:
        del self.raw[str(doc_id)]

    def __contains__(self, doc_id) -> bool:
        return str(doc_id) in self.raw

    def __iter__(self):
        return (int(k) for k in self.raw)

    def __len__(self) -> int:
        return len(self.raw)


class _InPlaceTable(Table):
    """A TinyDB table whose writes change only the documents they touch."""

    def _update_table(self, updater) -> None:
        tables = self._storage.read()
        updater(_IdKeyed(tables.setdefault(self.name, {})))
        self._storage.write(tables)
        self.clear_cache()


class _TinyDB(TinyDB):
    table_class = _InPlaceTable


class StoreError(Exception):
    """The store cannot be opened or written; the message is one line for the operator."""


class Store:
    def __init__(self, path: str | os.PathLike, files_dir: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._storage: JournaledStorage | None = None
        self._changes: list[tuple[str, str]] = []
        try:
            self.db = _TinyDB(self.path, storage=self._make_storage)
            self.db.tables()  # read now, so a damaged file is reported at open
        except ValueError as exc:
            raise StoreError(f"the store {self.path} is not valid JSON: {exc}") from None
        self.submissions = Submissions(self.db.table("submissions"), self._changed)
        self.candidates = Candidates(self.db.table("candidates"), self._changed)
        self.ledger = Ledger(self.db.table("ledger"), self._changed)
        self.outbox = Outbox(self.db.table("outbox"), self._changed)
        self.digests = Digests(self.db.table("digests"), self._changed)
        self.failures = Failures(self.db.table("failures"), self._changed)
        self.reminders = Reminders(self.db.table("reminders"), self._changed)
        self.counters = Counters(self.db.table("counters"), self._changed)
        self.pauses = ServerPauses(self.db.table("server_pauses"), self._changed)
        self.files = FileStore(Path(files_dir))
        self._lock_fh = None

    def _make_storage(self, path):
        self._storage = JournaledStorage(path)
        return self._storage

    def _repositories(self):
        return (self.submissions, self.candidates, self.ledger, self.outbox, self.digests, self.failures,
                self.counters, self.pauses, self.reminders)

    def _changed(self, table: str, doc_ids) -> None:
        self._changes += [(table, str(i)) for i in doc_ids]

    @contextlib.contextmanager
    def transaction(self):
        """Commit everything done inside at once; on an exception, keep nothing of it.
        The first transaction takes the single-writer lock."""
        if self._lock_fh is None:
            self.lock()
        self._changes = []
        try:
            yield self
        except BaseException:
            self._rollback()
            raise
        changes, self._changes = list(dict.fromkeys(self._changes)), []
        self._storage.commit(changes)

    def _rollback(self) -> None:
        self._changes = []
        self._storage.rollback()
        self._forget_caches()

    def _forget_caches(self) -> None:
        for repo in self._repositories():
            repo.forget()

    def lock(self) -> None:
        """Take the single-writer lock, or raise StoreError when another intake holds it.
        Read-only commands never take it and may run beside a writer."""
        if self._lock_fh is not None:
            return
        lock_path = self.path.with_name(self.path.name + ".lock")
        self._lock_fh = open(lock_path, "a+")
        try:
            fcntl.flock(self._lock_fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_fh.close()
            self._lock_fh = None
            raise StoreError(f"another intake process is already writing {self.path}") from None
        # What we read before holding the lock may be stale: start again from the disk.
        self._storage.rollback()
        self._forget_caches()
        self._storage.repair()

    def compact(self) -> None:
        """Fold the journal into the snapshot (also done by itself every so often)."""
        self._storage.compact()

    def close(self) -> None:
        self.db.close()
        if self._lock_fh:
            self._lock_fh.close()
            self._lock_fh = None


def _moment(iso: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(iso)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def _plain(doc) -> dict:
    """A detached copy, so callers cannot change stored data behind the store's back."""
    return copy.deepcopy(dict(doc))


class _Repository:
    def __init__(self, table, changed):
        self.table = table
        self._changed = changed

    def all(self) -> list[dict]:
        return [_plain(d) for d in self.table.all()]

    def forget(self) -> None:
        """Drop cached query results after a rollback."""
        self.table.clear_cache()

    # Every write goes through these, so a commit knows which documents it must make durable.
    def _insert(self, doc: dict) -> int:
        doc_id = self.table.insert(doc)
        self._changed(self.table.name, [doc_id])
        return doc_id

    def _update(self, fields: dict, cond) -> list[int]:
        ids = self.table.update(fields, cond)
        self._changed(self.table.name, ids)
        return ids

    def _upsert(self, doc: dict, cond) -> list[int]:
        ids = self.table.upsert(doc, cond)
        self._changed(self.table.name, ids)
        return ids

    def _remove(self, cond) -> list[int]:
        ids = self.table.remove(cond)
        self._changed(self.table.name, ids)
        return ids


class _Keyed(_Repository):
    """A table with one document per key, found through an in-memory index (key → doc id)
    rather than a scan: lookups cost the same with 100 documents or 10,000."""

    key = ""

    def __init__(self, table, changed):
        super().__init__(table, changed)
        self._ids: dict[str, int] | None = None

    def forget(self) -> None:
        super().forget()
        self._ids = None

    @property
    def ids(self) -> dict[str, int]:
        if self._ids is None:
            self._ids = {doc[self.key]: doc.doc_id for doc in self.table}
        return self._ids

    def __contains__(self, key: str) -> bool:
        return key in self.ids

    def get(self, key: str) -> dict | None:
        doc_id = self.ids.get(key)
        doc = self.table.get(doc_id=doc_id) if doc_id is not None else None
        return _plain(doc) if doc else None

    def add(self, doc: dict) -> None:
        if doc[self.key] not in self.ids:
            self.ids[doc[self.key]] = self._insert(doc)

    def update(self, key: str, **fields) -> None:
        doc_id = self.ids.get(key)
        if doc_id is not None:
            self._update_ids(fields, [doc_id])

    def remove(self, key: str) -> None:
        doc_id = self.ids.pop(key, None)
        if doc_id is not None:
            self._changed(self.table.name, self.table.remove(doc_ids=[doc_id]))

    def _update_ids(self, fields: dict, doc_ids: list[int]) -> None:
        self._changed(self.table.name, self.table.update(fields, doc_ids=doc_ids))


class Submissions(_Keyed):
    """One document per email read, keyed by its Message-ID."""

    key = "message_id"


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
        self._upsert(candidate, (q.county == candidate["county"]) & (q.name == candidate["name"]))


class Ledger(_Repository):
    """Per mailbox folder: its UIDVALIDITY and the last UID fully processed."""

    def get(self, folder: str) -> tuple[int | None, int]:
        doc = self.table.get(Query().folder == folder)
        return (doc["uidvalidity"], doc["last_uid"]) if doc else (None, 0)

    def set(self, folder: str, uidvalidity: int, last_uid: int) -> None:
        self._upsert({"folder": folder, "uidvalidity": uidvalidity, "last_uid": last_uid},
                          Query().folder == folder)


class Outbox(_Keyed):
    """Replies written with the outcome they report, sent afterwards from here."""

    key = "reply_id"

    def forget(self) -> None:
        super().forget()
        self._statuses = None
        self._copies = None

    @property
    def copies(self) -> dict[str, str]:
        """reply id → the state of its copy in the Sent folder (`due`, `kept`, `none`, `failed`),
        for replies that were sent: the copies still due are looked for every pass."""
        if getattr(self, "_copies", None) is None:
            self._copies = {doc[self.key]: doc["copy"] for doc in self.table if doc.get("copy")}
        return self._copies

    def copies_due(self) -> list[dict]:
        """Sent replies whose copy in the Sent folder is still to be made, oldest first."""
        due = [self.get(key) for key, state in self.copies.items() if state == "due"]
        return sorted(due, key=lambda r: r.get("sent_at") or "")

    @property
    def statuses(self) -> dict[str, str]:
        """reply id → status, kept beside the index: the pending replies are found every pass."""
        if getattr(self, "_statuses", None) is None:
            self._statuses = {doc[self.key]: doc.get("status", "") for doc in self.table}
        return self._statuses

    def add(self, doc: dict) -> None:
        super().add(doc)
        self.statuses.setdefault(doc[self.key], doc.get("status", ""))

    def update(self, key: str, **fields) -> None:
        super().update(key, **fields)
        if "status" in fields and key in self.statuses:
            self.statuses[key] = fields["status"]
        if fields.get("copy") and key in self.ids:
            self.copies[key] = fields["copy"]

    def with_status(self, *statuses: str) -> list[dict]:
        wanted = set(statuses)
        return [self.get(key) for key, status in self.statuses.items() if status in wanted]

    def recent(self, since: dt.datetime, wanted=lambda doc: True) -> list[dict]:
        """Replies created since `since` for which `wanted(doc)` holds. Replies are stored in
        the order they were created, so the newest are read first and the walk stops a day
        before `since` (room for clocks that disagree), however long the outbox has grown;
        only the wanted ones are copied."""
        stop_before = since - dt.timedelta(days=1)
        found = []
        for doc_id in sorted(self.ids.values(), reverse=True):
            doc = self.table.get(doc_id=doc_id)
            created = _moment(doc["created_at"])
            if created < stop_before:
                break
            if created >= since and wanted(doc):
                found.append(_plain(doc))
        return found

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
        self._upsert({"date": date, "message_id": message_id, "cutoff": cutoff,
                           "sent_at": sent_at,
                           "message_ids": [*earlier.get("message_ids", []), message_id]},
                          Query().date == date)

    def latest_before(self, date: str) -> dict | None:
        """The digest of the closest earlier date: what "new since the previous digest" is
        measured from."""
        earlier = [d for d in self.table.all() if d["date"] < date]
        return _plain(max(earlier, key=lambda d: d["date"])) if earlier else None


class Reminders(_Repository):
    """The reminder ledger: one document per (county, date), so a county is reminded once a
    date, even across restarts."""

    def get(self, county: str, date: str) -> dict | None:
        q = Query()
        doc = self.table.get((q.county == county) & (q.date == date))
        return _plain(doc) if doc else None

    def record(self, reminder: dict) -> None:
        """Note the reminder queued (county, date, message_id, missing, deadline, sent_at)."""
        q = Query()
        self._upsert(reminder, (q.county == reminder["county"]) & (q.date == reminder["date"]))

    def on(self, date: str) -> list[dict]:
        return [_plain(d) for d in self.table.search(Query().date == date)]


class Counters(_Keyed):
    """Named sequences that never repeat a number (receipt numbers per county and year)."""

    key = "name"

    def next(self, name: str) -> int:
        """The next number of `name`, starting at 1; call inside the transaction that uses it."""
        doc = self.get(name)
        value = (doc["value"] if doc else 0) + 1
        if doc:
            self.update(name, value=value)
        else:
            self.add({"name": name, "value": value})
        return value


class ServerPauses(_Keyed):
    """Per SMTP server (host:port): sending paused until `until` because it asked us to slow
    down; `count` grows with each throttling answer in a row, so the pauses grow too."""

    key = "server"

    def active(self, server: str, now: dt.datetime) -> dict | None:
        pause = self.get(server)
        return pause if pause and _moment(pause["until"]) > now else None

    def put(self, server: str, until: str, reason: str, count: int) -> None:
        fields = {"until": until, "reason": reason, "count": count}
        if server in self:
            self.update(server, **fields)
        else:
            self.add({"server": server, **fields})


class Failures(_Repository):
    """Messages whose processing failed: kept in the mailbox, retried, or set aside."""

    def get(self, ref: str) -> dict | None:
        doc = self.table.get(Query().ref == ref)
        return _plain(doc) if doc else None

    def find(self, ref_or_message_id: str) -> dict | None:
        q = Query()
        doc = self.table.get((q.ref == ref_or_message_id) | (q.message_id == ref_or_message_id))
        return _plain(doc) if doc else None

    def put(self, failure: dict) -> None:
        self._upsert(failure, Query().ref == failure["ref"])

    def with_status(self, *statuses: str) -> list[dict]:
        return [_plain(d) for d in self.table.search(Query().status.one_of(list(statuses)))]

    def resolve(self, ref: str) -> None:
        self._remove(Query().ref == ref)


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
