"""The store: the only code that knows TinyDB exists.

The rest of intake sees small repositories (`store.submissions.add`, `store.candidates.current`)
and one unit of work: changes made inside `with store.transaction():` reach the disk together
or not at all, so a submission, its candidates, its reply and the mailbox ledger never disagree.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import operator
import os
import pwd
from collections.abc import MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING

from tinydb import Query, TinyDB
from tinydb.table import Document, Table

from store.storage import JournaledStorage, StoreError

if TYPE_CHECKING:   # imported where a file is put: a command that only reads never loads them
    from concurrent.futures import Future, ThreadPoolExecutor


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


class StoreBusy(StoreError):
    """Another process holds the single-writer lock; `holder` is what it wrote in the lock file
    ({"pid": ..., "role": "run"}), or {} when it has not written it yet."""

    def __init__(self, message: str, holder: dict):
        super().__init__(message)
        self.holder = holder


class Store:
    def __init__(self, path: str | os.PathLike, files_dir: str | os.PathLike):
        self.path = Path(path)
        self._storage: JournaledStorage | None = None
        self._changes: list[tuple[str, str]] = []
        # Each table is read from its own file the first time it is used (store/storage.py):
        # opening reads only the store's small layout file, where a damaged older store shows.
        try:
            self.db = _TinyDB(self.path, storage=self._make_storage)
        except PermissionError as exc:
            raise _not_ours(self.path, exc) from None
        self.files = FileStore(Path(files_dir))
        self.meta = Meta(self.db.table("meta"), self._changed)
        self.submissions = Submissions(self.db.table("submissions"), self._changed,
                                       self.db.table("submissions_to_watch"), self.db.table("submission_tallies"))
        self.candidates = Candidates(self.db.table("candidates"), self._changed,
                                     self.db.table("candidate_versions"), self.db.table("candidate_ends"))
        self.ledger = Ledger(self.db.table("ledger"), self._changed)
        self.outbox = Outbox(self.db.table("outbox"), self._changed, self.files,
                             self.db.table("outbox_unsettled"), mirrored=lambda: self.mirrored)
        self.digests = Digests(self.db.table("digests"), self._changed)
        self.failures = Failures(self.db.table("failures"), self._changed)
        self.reminders = Reminders(self.db.table("reminders"), self._changed)
        self.counters = Counters(self.db.table("counters"), self._changed)
        self.pauses = ServerPauses(self.db.table("server_pauses"), self._changed)
        # What each table's documents are found by, kept on their snapshot lines
        # (store/storage.py) so the indexes are built without decoding every document.
        self._storage.key_functions.update({
            repo.table.name: operator.itemgetter(repo.key)
            for repo in self._repositories() if isinstance(repo, _Keyed)})
        self._storage.key_functions["candidate_versions"] = _candidate_key
        self._lock_fh = None
        self._group: list | None = None   # steps waiting for durability, inside group_commit

    def _make_storage(self, path):
        self._storage = JournaledStorage(path)
        return self._storage

    def _repositories(self):
        return (self.submissions, self.candidates, self.ledger, self.outbox, self.digests, self.failures,
                self.counters, self.pauses, self.reminders, self.meta)

    @property
    def mirrored(self) -> bool:
        """Whether the small tables a read-only command reads instead of the large ones
        (submission_tallies, submissions_to_watch, outbox_unsettled, candidate_ends) are there
        and kept. A store written
        by an older intake gets them when a writer next opens it (`lock`); until then readers
        read the large tables. Once there, they stay."""
        if not getattr(self, "_mirrored", False):
            doc = self.meta.get("mirrors")
            self._mirrored = bool(doc) and doc.get("version") == MIRRORS_VERSION
        return self._mirrored

    def _build_mirrors(self) -> None:
        """Write the mirror tables from the large ones, once, in one commit (see `mirrored`)."""
        if self.mirrored:
            return
        self._changes = []
        briefs = self.db.table("submission_briefs")   # version 1's, no longer kept
        self._changed(briefs.name, briefs.remove(doc_ids=[int(i) for i in _raw(briefs)]))
        self.submissions.mirror_all()
        self.outbox.mirror_all()
        self.candidates.mirror_all()
        self.meta.put("mirrors", version=MIRRORS_VERSION)
        changes, self._changes = list(dict.fromkeys(self._changes)), []
        self._storage.commit(changes)

    def _changed(self, table: str, doc_ids) -> None:
        self._changes += [(table, str(i)) for i in doc_ids]

    @contextlib.contextmanager
    def transaction(self):
        """Commit everything done inside at once; on an exception, keep nothing of it.
        The first transaction takes the single-writer lock. Inside `group_commit`, the
        commit becomes durable at the group's next `sync`."""
        if self._lock_fh is None:
            self.lock()
        self._changes = []
        try:
            yield self
            if self._group is None:
                self.files.flush()   # the files its records name are on disk before the records
        except BaseException:
            self._rollback()
            raise
        changes, self._changes = list(dict.fromkeys(self._changes)), []
        self._storage.commit(changes, durable=self._group is None)

    @contextlib.contextmanager
    def group_commit(self):
        """Transactions inside are committed as usual (later code and this process see them)
        but made durable together: at `sync()` and at the end, one fsync for many, the files
        first. What must wait until a commit is on disk (moving a message out of the inbox,
        handing its reply to the SMTP server) goes to `when_durable`. A crash in between
        loses the group's commits and, with them, those waiting steps: the messages are read
        again by the next pass, as if never read. An exception out of the group makes what was
        committed durable but leaves the waiting steps to the next pass (which finds those
        messages recorded). Not nested."""
        if self._group is not None:
            raise RuntimeError("group_commit is not nested")
        self._group = []
        try:
            yield self
        except BaseException:
            self._group.clear()
            raise
        finally:
            try:
                self.sync()
            finally:
                self._group = None

    def when_durable(self, step) -> None:
        """Run `step()` once what has been committed so far is on disk: now, outside a group."""
        if self._group is None:
            step()
        else:
            self._group.append(step)

    def sync(self) -> None:
        """Make the group's commits durable (files, then one journal fsync), then run the
        steps that waited for them, in order."""
        if self._group is None:
            return
        self.files.flush()
        self._storage.sync()
        steps, self._group[:] = list(self._group), []
        for step in steps:
            step()

    def _rollback(self) -> None:
        self._changes = []
        self._storage.rollback()
        self._forget_caches()

    def _forget_caches(self) -> None:
        for repo in self._repositories():
            repo.forget()

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    def lock(self, role: str = "intake") -> None:
        """Take the single-writer lock, or raise StoreBusy when another intake holds it. `role`
        (the command) is written in the lock file for the others to read (`lock_holder`).
        Read-only commands never take it and may run beside a writer."""
        if self._lock_fh is not None:
            return
        _refuse_root_in_a_users_store(self.path.parent)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._lock_fh = open(self.lock_path, "a+")
        except PermissionError as exc:
            raise _not_ours(self.path, exc) from None
        try:
            fcntl.flock(self._lock_fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_fh.close()
            self._lock_fh = None
            holder = self.lock_holder()
            doing = f" (intake {holder['role']}, pid {holder['pid']})" if holder else ""
            raise StoreBusy(f"another intake process{doing} is already writing {self.path}", holder) from None
        self._lock_fh.truncate(0)
        self._lock_fh.write(json.dumps({"pid": os.getpid(), "role": role}) + "\n")
        self._lock_fh.flush()
        # What we read before holding the lock may be stale: start again from the disk.
        self._storage.rollback()
        self._forget_caches()
        self._storage.repair()
        self._build_mirrors()

    def lock_holder(self) -> dict:
        """What the lock's holder wrote in it: {"pid": ..., "role": ...}; {} if nothing yet."""
        try:
            holder = json.loads(self.lock_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return holder if isinstance(holder, dict) and "pid" in holder and "role" in holder else {}

    def compact(self) -> None:
        """Fold the journal into the snapshot (also done by itself every so often)."""
        self._storage.compact()

    def close(self) -> None:
        self.db.close()
        if self._lock_fh:
            self._lock_fh.close()
            self._lock_fh = None


def writer_holds(path: str | os.PathLike) -> bool:
    """Whether a process holds the single-writer lock of the store at `path` now, found
    without reading the store."""
    path = Path(path)
    try:
        fh = open(path.with_name(path.name + ".lock"), "a+")
    except FileNotFoundError:
        return False
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
        return False


def store_exists(path: str | os.PathLike) -> bool:
    """Whether anything was ever committed at `path` (a snapshot, or a journal not yet folded)."""
    path = Path(path)
    try:
        return path.exists() or path.with_name(path.name + ".journal").exists()
    except PermissionError as exc:
        raise _not_ours(path, exc) from None


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _owner(path: Path) -> int | None:
    try:
        return path.stat().st_uid
    except OSError:
        return None


def _refuse_root_in_a_users_store(folder: Path) -> None:
    """Root writing a store that belongs to the service user would leave root-owned files that
    lock the service out (it then dies on every start): refuse, naming the way to do it."""
    owner = _owner(folder)
    if os.geteuid() == 0 and owner not in (None, 0):
        name = _user_name(owner)
        raise StoreError(f"the store {folder} belongs to the {name} user: run as the {name} user: "
                         f"runuser -u {name} -- intake … (or sudo -u {name} intake …)")


def _not_ours(store_path: Path, exc: PermissionError) -> StoreError:
    """A permission error inside the store, as one line with the fix."""
    me, folder = _user_name(os.geteuid()), store_path.parent
    where = exc.filename or store_path
    owner = _owner(folder)
    if owner is not None and owner != os.geteuid():
        name = _user_name(owner)
        return StoreError(f"cannot open {where}: permission denied to {me}; the store belongs to "
                          f"the {name} user: run as the {name} user: sudo -u {name} intake …")
    file_owner = _owner(Path(where))
    whose = _user_name(file_owner) if file_owner is not None else "another user"
    return StoreError(f"cannot open {where}: it belongs to {whose}, not to {me}, who owns the "
                      f"store: give it back: chown -R {me}: {folder}")


def _moment(iso: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(iso)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def _plain(doc) -> dict:
    """A detached copy, so callers cannot change stored data behind the store's back (documents
    hold JSON values only, so this is copy.deepcopy without its bookkeeping, several times faster)."""
    return {k: _copy(v) for k, v in doc.items()}


def _copy(value):
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _raw(table) -> dict:
    """The table's stored documents, {str doc id: doc}, without TinyDB's per-document wrapping
    (each decoded when first used: store/storage.py)."""
    return table._read_table()


def _keys_by_id(table) -> dict[str, str]:
    """{str doc id: the document's key} of a table with a key function, without decoding it."""
    return table.storage.keys_by_id(table.name)


def _candidate_key(doc: dict) -> str:
    """A version's candidate: county and name, as one key."""
    return f"{doc['county']}/{doc['name']}"


MIRRORS_VERSION = 2   # 1 had every submission's brief; 2 tallies them and keeps the few status lists


class _Mirror:
    """A small table kept beside a large one, document for document under the same doc ids,
    holding only what read-only commands (`intake status`) need, so they need not load the large
    one. `shape(doc)` gives the mirror's document, or None for a document not mirrored. Every
    write of the large table's repository writes its mirror in the same commit."""

    def __init__(self, table, changed, shape):
        self.table = table
        self._changed = changed
        self.shape = shape

    def put(self, doc_id: int, doc: dict) -> None:
        mirror, raw = self.shape(doc), _raw(self.table)
        if mirror is None:
            self.remove(doc_id)
        elif str(doc_id) not in raw:
            self._changed(self.table.name, [self.table.insert(Document(_copy(mirror), doc_id=doc_id))])
        elif raw[str(doc_id)] != mirror:
            def replace(stored):
                stored.clear()
                stored.update(_copy(mirror))
            self._changed(self.table.name, self.table.update(replace, doc_ids=[doc_id]))

    def remove(self, doc_id: int | None) -> None:
        if doc_id is not None and str(doc_id) in _raw(self.table):
            self._changed(self.table.name, self.table.remove(doc_ids=[doc_id]))

    def docs(self) -> list[dict]:
        """The mirrored documents in the large table's order; each a copy, its nested values
        shared with the store (read them, do not change them)."""
        return [dict(doc) for _, doc in sorted(_raw(self.table).items(), key=lambda item: int(item[0]))]

    def rebuild(self, large: dict) -> None:
        """Mirror every document of `large` ({str doc id: doc}) and drop the rest."""
        for doc_id in [k for k in _raw(self.table) if k not in large]:
            self.remove(int(doc_id))
        for doc_id, doc in large.items():
            self.put(int(doc_id), doc)

    def forget(self) -> None:
        self.table.clear_cache()


class _Repository:
    def __init__(self, table, changed):
        self.table = table
        self._changed = changed

    def all(self, detached: bool = True) -> list[dict]:
        """Every document, in the order stored. `detached=False`: the stored documents themselves,
        for a reader that only reads them (an export of 50,000): do not change them."""
        docs = _raw(self.table).values()   # values(): decoded in one go
        return [_plain(d) for d in docs] if detached else list(docs)

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
            self._ids = {key: int(i) for i, key in _keys_by_id(self.table).items()}
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


BRIEF_KEYS = ("message_id", "county", "from", "received_at", "status", "subject", "reason", "problems",
              "answered_at")
NEEDS_PERSON = "needs-person"   # pipeline.rules.NEEDS_PERSON: a question for the contact


def _submission_brief(doc: dict) -> dict:
    return {k: doc[k] for k in BRIEF_KEYS if k in doc}


def _brief_to_watch(doc: dict) -> dict | None:
    """The submissions `intake status` lists one by one: a sender registered for no county,
    a question not answered yet."""
    if not doc.get("county") or (doc.get("status") == NEEDS_PERSON and not doc.get("answered_at")):
        return _submission_brief(doc)
    return None


class Submissions(_Keyed):
    """One document per email read, keyed by its Message-ID. Beside them, for `intake status`:
    per county, how many emails were answered or skipped and when the latest answered one came
    (submission_tallies), and the brief (BRIEF_KEYS) of each email status lists one by one
    (submissions_to_watch: an unregistered sender's, an open question), so status reads tens of
    documents whatever the season's size."""

    key = "message_id"

    def __init__(self, table, changed, watched, tallies):
        super().__init__(table, changed)
        self.watched = _Mirror(watched, changed, _brief_to_watch)
        self.tallies = tallies
        self._tally_ids: dict[str, int] | None = None

    def forget(self) -> None:
        super().forget()
        self.watched.forget()
        self.tallies.clear_cache()
        self._tally_ids = None

    def add(self, doc: dict) -> None:
        if doc[self.key] not in self.ids:
            super().add(doc)
            self.watched.put(self.ids[doc[self.key]], doc)
            self._count(None, doc)

    def update(self, key: str, **fields) -> None:
        doc_id = self.ids.get(key)
        before = _copy(_raw(self.table)[str(doc_id)]) if doc_id is not None else None
        super().update(key, **fields)
        if doc_id is not None:
            after = _raw(self.table)[str(doc_id)]
            self.watched.put(doc_id, after)
            self._count(before, after)

    def remove(self, key: str) -> None:
        doc_id = self.ids.get(key)
        before = _copy(_raw(self.table)[str(doc_id)]) if doc_id is not None else None
        super().remove(key)
        self.watched.remove(doc_id)
        if before is not None:
            self._count(before, None)

    def file_hashes(self, message_id: str) -> list[str]:
        """The sha256 of each file the email carried ("" for one not kept), without copying the
        submission: the repeat rule asks this of each reply of the sender's day."""
        doc_id = self.ids.get(message_id)
        files = _raw(self.table)[str(doc_id)].get("files") or [] if doc_id is not None else []
        return [f.get("sha256") or "" for f in files]

    def to_watch(self) -> list[dict]:
        """The briefs (BRIEF_KEYS) of the emails from senders registered for no county and of the
        questions not answered yet, in the order they were recorded (see Store.mirrored)."""
        return self.watched.docs()

    def tally(self) -> dict[str | None, dict]:
        """county (None: senders registered for none) → {"emails": answered, "skipped": recorded
        without an answer, "last": when the latest answered one was received, "" if none}."""
        return {doc["county"] or None: {k: doc[k] for k in ("emails", "skipped", "last")}
                for doc in _raw(self.tallies).values()}

    def mirror_all(self) -> None:
        raw = _raw(self.table)
        self.watched.rebuild(raw)
        for doc_id in list(_raw(self.tallies)):
            self._changed(self.tallies.name, self.tallies.remove(doc_ids=[int(doc_id)]))
        self._tally_ids = None
        for county, tally in _tallies_of(raw.values()).items():
            self._put_tally(county, tally)

    # The tallies: each write moves the email's count from what it was to what it is.
    def _count(self, before: dict | None, after: dict | None) -> None:
        was, now = _counted(before), _counted(after)
        if was != now:
            if was:
                self._uncount(*was)
            if now:
                self._add_count(*now)

    def _add_count(self, county: str, answered: bool, received: str) -> None:
        tally = self._tally(county)
        if answered:
            tally["emails"] += 1
            tally["last"] = max(tally["last"], received)
        else:
            tally["skipped"] += 1
        self._put_tally(county, tally)

    def _uncount(self, county: str, answered: bool, received: str) -> None:
        tally = self._tally(county)
        if not answered:
            tally["skipped"] -= 1
        else:
            tally["emails"] -= 1
            if received == tally["last"]:   # the latest answered email is no more: look again (rare)
                same = (d for d in _raw(self.table).values() if (d.get("county") or "") == county)
                tally["last"] = _tallies_of(same).get(county, {}).get("last", "")
        self._put_tally(county, tally)

    def _tally(self, county: str) -> dict:
        doc_id = self.tally_ids.get(county)
        stored = _raw(self.tallies)[str(doc_id)] if doc_id is not None else {}
        return {"emails": stored.get("emails", 0), "skipped": stored.get("skipped", 0), "last": stored.get("last", "")}

    def _put_tally(self, county: str, tally: dict) -> None:
        doc_id = self.tally_ids.get(county)
        if doc_id is None:
            self.tally_ids[county] = self.tallies.insert({"county": county, **tally})
            self._changed(self.tallies.name, [self.tally_ids[county]])
        else:
            self._changed(self.tallies.name, self.tallies.update(tally, doc_ids=[doc_id]))

    @property
    def tally_ids(self) -> dict[str, int]:
        if self._tally_ids is None:
            self._tally_ids = {doc["county"]: int(i) for i, doc in _raw(self.tallies).items()}
        return self._tally_ids


def _counted(doc: dict | None) -> tuple[str, bool, str] | None:
    """(county or "", answered?, received_at): what one email adds to the tallies."""
    if doc is None:
        return None
    return doc.get("county") or "", doc.get("status") != "skipped", doc.get("received_at") or ""


def _tallies_of(docs) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for doc in docs:
        county, counted, received = _counted(doc)
        tally = out.setdefault(county, {"emails": 0, "skipped": 0, "last": ""})
        tally["emails" if counted else "skipped"] += 1
        if counted:
            tally["last"] = max(tally["last"], received)
    return out


class Candidates(_Repository):
    """One document per (county, name): the candidate as it now stands. Its earlier versions
    ("versions", one document each in the candidate_versions table) are read only when asked
    for: `get` and `all` include them, `current(county)` — what judging each email needs — does
    not (unless history=True), so its cost stays the same however often a county resends a form. A county's candidates
    are found through an index (county → name → doc id), not a scan."""

    def __init__(self, table, changed, history, ends):
        super().__init__(table, changed)
        self.history = history
        # candidate doc id → {"count", "first", "last"}: its first and latest version, all that
        # `intake status` needs of a history (the order of arrival, what is open).
        self.ends = _Mirror(ends, changed, lambda doc: doc)
        self._by_county: dict[str, dict[str, int]] | None = None
        self._versions: dict[tuple[str, str], list[int]] | None = None

    def forget(self) -> None:
        super().forget()
        self.history.clear_cache()
        self.ends.forget()
        self._by_county = None
        self._versions = None

    @property
    def by_county(self) -> dict[str, dict[str, int]]:
        if self._by_county is None:
            self._by_county = {}
            for i, doc in _raw(self.table).items():
                self._by_county.setdefault(doc["county"], {})[doc["name"]] = int(i)
        return self._by_county

    @property
    def version_ids(self) -> dict[tuple[str, str], list[int]]:
        """(county, name) → the doc ids of its versions, oldest first."""
        if self._versions is None:
            # A candidate's versions are stored in order (added after each other, the extra
            # ones removed from the end), so their doc ids grow with "seq".
            found: dict[tuple[str, str], list[int]] = {}
            for i, key in _keys_by_id(self.history).items():
                county, _, name = key.partition("/")   # a county (configured) has no "/"
                found.setdefault((county, name), []).append(int(i))
            self._versions = {key: sorted(ids) for key, ids in found.items()}
        return self._versions

    def get(self, county: str, name: str, history: bool = True) -> dict | None:
        """The candidate as it now stands, with its "versions" unless `history` is False."""
        doc_id = self.by_county.get(county, {}).get(name)
        if doc_id is None:
            return None
        if history:
            return self._with_history(doc_id)
        return {k: _copy(v) for k, v in _raw(self.table)[str(doc_id)].items() if k != "versions"}

    def current(self, county: str, history: bool = False) -> list[dict]:
        """The county's candidates as they now stand; with `history`, with their "versions"."""
        ids = sorted(self.by_county.get(county, {}).values())
        if history:
            return [self._with_history(i) for i in ids]
        raw = _raw(self.table)
        return [{k: _copy(v) for k, v in raw[str(i)].items() if k != "versions"} for i in ids]

    def version_numbers(self, county: str, message_id: str) -> dict[str, int]:
        """name → which version of that candidate of `county` the email `message_id` made (1 for
        a first form), asked while that email is being judged: its versions are the newest, so
        each candidate's latest version (candidate_ends) tells, without reading the history."""
        made, ends = {}, _raw(self.ends.table)
        for name, doc_id in self.by_county.get(county, {}).items():
            end = ends.get(str(doc_id))
            if end is not None:
                if end["last"].get("message_id") == message_id:
                    made[name] = end["count"]
                continue
            made.update(self._version_number_from_history(county, name, doc_id, message_id))
        return made

    def _version_number_from_history(self, county: str, name: str, doc_id: int, message_id: str) -> dict:
        """The same, for a candidate without candidate_ends (a store not mirrored yet)."""
        ids = self.version_ids.get((county, name))
        versions = ([_raw(self.history)[str(i)]["version"] for i in ids] if ids is not None
                    else _raw(self.table)[str(doc_id)].get("versions") or [])
        for number in range(len(versions), 0, -1):   # the newest first: usually this email's
            if versions[number - 1].get("message_id") == message_id:
                return {name: number}
        return {}

    def all(self, detached: bool = True) -> list[dict]:
        """Every candidate with its versions. `detached=False`: shallow copies sharing their
        values with the store, for a reader that only reads them: do not change them."""
        _raw(self.history).values()   # every version is wanted: decoded in one go
        return [self._with_history(i, detached) for i in sorted(int(i) for i in _raw(self.table))]

    def all_with_ends(self) -> list[dict]:
        """Every candidate as it now stands, its "versions" holding only the first and the
        latest version (one when there is one), and "version_count": what `intake status` and
        the sheets need, without reading the histories. For readers only: each a shallow copy,
        its values shared with the store (do not change them)."""
        raw, ends = _raw(self.table), _raw(self.ends.table)
        out = []
        for doc_id in sorted(raw, key=int):
            doc = {k: v for k, v in raw[doc_id].items() if k != "versions"}
            end = ends.get(doc_id)
            if end:
                doc["versions"] = [end["first"]] + ([end["last"]] if end["count"] > 1 else [])
            doc["version_count"] = end["count"] if end else 0
            out.append(doc)
        return out

    def put(self, candidate: dict, new_version: dict | None = None) -> None:
        """Store the candidate as given; its "versions", when present, become its history.
        `new_version`: one version to add after the stored ones (the candidate given without
        "versions"), without reading or rewriting the rest of the history."""
        county, name = candidate["county"], candidate["name"]
        versions = candidate.get("versions")
        current = {k: v for k, v in candidate.items() if k != "versions"}
        doc_id = self.by_county.get(county, {}).get(name)
        if new_version is not None and doc_id is not None and (county, name) not in self.version_ids:
            legacy = _raw(self.table)[str(doc_id)].get("versions")
            if legacy:   # an older store's versions inside the document become its history
                versions, new_version = [*legacy, new_version], None
        if doc_id is None:
            doc_id = self.by_county.setdefault(county, {})[name] = self._insert(current)
        else:
            def replace(doc):   # an older store kept the versions inside the document
                if versions is not None:
                    doc.pop("versions", None)
                doc.update(current)
            self._changed(self.table.name, self.table.update(replace, doc_ids=[doc_id]))
        if versions is not None:
            self._put_history(county, name, versions)
            self._put_ends(doc_id, versions[0] if versions else None, versions[-1] if versions else None,
                           len(versions))
        if new_version is not None:
            count = self._append_history(county, name, new_version)
            first = _raw(self.ends.table).get(str(doc_id), {}).get("first") if count > 1 else new_version
            self._put_ends(doc_id, first, new_version, count)

    def _put_ends(self, doc_id: int, first: dict | None, last: dict | None, count: int) -> None:
        if count and first is None:   # a store whose ends were never written: read the history
            first = self._with_history(doc_id)["versions"][0]
        if count:
            self.ends.put(doc_id, {"count": count, "first": first, "last": last})
        else:
            self.ends.remove(doc_id)

    def mirror_all(self) -> None:
        ends = {}
        for doc_id in _raw(self.table):
            versions = self._with_history(int(doc_id)).get("versions") or []
            if versions:
                ends[doc_id] = {"count": len(versions), "first": versions[0], "last": versions[-1]}
        self.ends.rebuild(ends)

    def _with_history(self, doc_id: int, detached: bool = True) -> dict:
        copy = _copy if detached else (lambda value: value)
        doc = {k: copy(v) for k, v in _raw(self.table)[str(doc_id)].items()}
        ids = self.version_ids.get((doc["county"], doc["name"]))
        if ids is not None:
            raw = _raw(self.history)
            doc["versions"] = [copy(raw[str(i)]["version"]) for i in ids]
        return doc

    def _append_history(self, county: str, name: str, version: dict) -> int:
        """Add one version after the stored ones; returns how many there are now."""
        stored = self.version_ids.setdefault((county, name), [])
        doc_id = self.history.insert({"county": county, "name": name, "seq": len(stored),
                                      "version": _copy(version)})
        stored.append(doc_id)
        self._changed(self.history.name, [doc_id])
        return len(stored)

    def _put_history(self, county: str, name: str, versions: list[dict]) -> None:
        stored = self.version_ids.setdefault((county, name), [])
        raw = _raw(self.history)
        for seq, version in enumerate(versions):
            if seq >= len(stored):
                doc_id = self.history.insert({"county": county, "name": name, "seq": seq,
                                              "version": _copy(version)})
                stored.append(doc_id)
                self._changed(self.history.name, [doc_id])
            elif raw[str(stored[seq])]["version"] != version:
                self._changed(self.history.name, self.history.update(
                    {"version": _copy(version)}, doc_ids=[stored[seq]]))
        if len(stored) > len(versions):
            extra = stored[len(versions):]
            del stored[len(versions):]
            self._changed(self.history.name, self.history.remove(doc_ids=extra))


class Ledger(_Repository):
    """Per mailbox folder: its UIDVALIDITY and the last UID fully processed."""

    def get(self, folder: str) -> tuple[int | None, int]:
        doc = self.table.get(Query().folder == folder)
        return (doc["uidvalidity"], doc["last_uid"]) if doc else (None, 0)

    def set(self, folder: str, uidvalidity: int, last_uid: int) -> None:
        self._upsert({"folder": folder, "uidvalidity": uidvalidity, "last_uid": last_uid},
                          Query().folder == folder)


class Outbox(_Keyed):
    """Replies written with the outcome they report, sent afterwards from here.

    A reply's body (its whole MIME text, most of the outbox's bytes) is kept beside the
    attachments, content-addressed (`raw_sha256`), not in the document every command loads;
    every reply handed out reads it back the first time its "raw" is asked for. The replies not
    settled yet (outbox_unsettled: not sent, or their Sent copy still due) are what each pass and
    `intake status` look at; an index built newest first, only as far back as asked, finds the
    recent replies to an address or in a thread."""

    key = "reply_id"

    def __init__(self, table, changed, files: "FileStore", unsettled=None, mirrored=lambda: False):
        super().__init__(table, changed)
        self.files = files
        self.unsettled = _Mirror(unsettled, changed, _unsettled) if unsettled is not None else None
        self._mirrored = mirrored

    def forget(self) -> None:
        super().forget()
        self._statuses = None
        self._copies = None
        self._concerning = None     # word → doc ids, newest first
        self._order = None          # every doc id, newest first
        self._indexed = 0           # how many of _order the index covers
        if self.unsettled is not None:
            self.unsettled.forget()

    def _settled_apart(self) -> bool:
        return self.unsettled is not None and self._mirrored()

    def unsettled_replies(self) -> list[dict]:
        """Replies not sent yet, failed, undeliverable or uncertain, and sent ones whose copy in
        the Sent folder is still due, oldest first, without their bodies; read from the
        outbox_unsettled table (see Store.mirrored)."""
        return [self._reply(d) for d in self.unsettled.docs()]

    def mirror_all(self) -> None:
        self.unsettled.rebuild(_raw(self.table))

    @property
    def copies(self) -> dict[str, str]:
        """reply id → the state of its copy in the Sent folder (`due`, `kept`, `none`, `failed`),
        for replies that were sent (a store without outbox_unsettled)."""
        if getattr(self, "_copies", None) is None:
            self._copies = {doc[self.key]: doc["copy"] for doc in _raw(self.table).values() if doc.get("copy")}
        return self._copies

    def copies_due(self) -> list[dict]:
        """Sent replies whose copy in the Sent folder is still to be made, oldest first."""
        if self._settled_apart():
            due = [self._reply(d) for d in self.unsettled.docs() if d.get("copy") == "due"]
        else:
            due = [self.get(key) for key, state in self.copies.items() if state == "due"]
        return sorted(due, key=lambda r: r.get("sent_at") or "")

    @property
    def statuses(self) -> dict[str, str]:
        """reply id → status (a store without outbox_unsettled)."""
        if getattr(self, "_statuses", None) is None:
            self._statuses = {doc[self.key]: doc.get("status", "") for doc in _raw(self.table).values()}
        return self._statuses

    def _concerning_since(self, moment: dt.datetime) -> dict[str, list[int]]:
        """An address (as written in To, lower case) or a Message-ID → the doc ids of the replies
        sent to it, or that are it or answer it, newest first: at least those created since
        `moment`. Built walking back from the newest reply (replies are stored in the order they
        were made), so a pass reads a day of replies, not the season's."""
        if getattr(self, "_concerning", None) is None:
            self._concerning, self._order, self._indexed = {}, sorted(self.ids.values(), reverse=True), 0
        raw = _raw(self.table)
        while self._indexed < len(self._order):
            doc_id = self._order[self._indexed]
            doc = raw[str(doc_id)]
            if _moment(doc["created_at"]) < moment:
                break
            self._index(doc, doc_id, newest=False)
            self._indexed += 1
        return self._concerning

    def _index(self, doc: dict, doc_id: int, newest: bool) -> None:
        for word in {doc.get("to", "").strip().lower(), doc[self.key], *(doc.get("thread") or [])}:
            if word:
                ids = self._concerning.setdefault(word, [])
                if newest:
                    ids.insert(0, doc_id)
                else:
                    ids.append(doc_id)

    def get(self, key: str) -> dict | None:
        return self._reply(super().get(key))

    def all(self) -> list[dict]:
        return [self._reply(d) for d in super().all()]

    def add(self, doc: dict) -> None:
        if doc[self.key] in self.ids:
            return
        super().add(self._without_body(doc))
        doc_id = self.ids[doc[self.key]]
        if getattr(self, "_statuses", None) is not None:
            self._statuses.setdefault(doc[self.key], doc.get("status", ""))
        if getattr(self, "_concerning", None) is not None:   # else built with this one in it
            self._order.insert(0, doc_id)
            self._indexed += 1
            self._index(doc, doc_id, newest=True)
        if self.unsettled is not None:
            self.unsettled.put(doc_id, _raw(self.table)[str(doc_id)])

    def update(self, key: str, **fields) -> None:
        super().update(key, **self._without_body(fields))
        if "status" in fields and key in (getattr(self, "_statuses", None) or {}):
            self._statuses[key] = fields["status"]
        if fields.get("copy") and key in self.ids and getattr(self, "_copies", None) is not None:
            self._copies[key] = fields["copy"]
        if self.unsettled is not None and key in self.ids:
            self.unsettled.put(self.ids[key], _raw(self.table)[str(self.ids[key])])

    def with_status(self, *statuses: str) -> list[dict]:
        """The replies with one of these statuses, oldest first."""
        wanted = set(statuses)
        if "sent" not in wanted and self._settled_apart():
            return [self._reply(d) for d in self.unsettled.docs() if d.get("status") in wanted]
        return [self.get(key) for key, status in self.statuses.items() if status in wanted]

    def recent(self, since: dt.datetime, wanted=lambda doc: True, to: str | None = None,
               thread: list[str] | tuple = ()) -> list[dict]:
        """Replies created since `since` for which `wanted(doc)` holds, newest first, without
        their bodies. Given `to` and/or `thread`, only the replies sent to that address or in
        that thread are looked at (through the index). Replies are stored in the order they
        were created, so each walk goes newest first and stops a day before `since` (room for
        clocks that disagree): the cost is that of the day's replies, not the season's.
        Each reply is a copy whose nested values (its thread) are shared with the store, for
        callers that only read them (the manners caps, the repeat rule)."""
        stop_before = since - dt.timedelta(days=1)
        raw = _raw(self.table)
        if to is not None or thread:
            concerning, ids = self._concerning_since(stop_before), set()
            for word in {(to or "").strip().lower(), *thread} - {""}:
                for doc_id in concerning.get(word, ()):
                    if _moment(raw[str(doc_id)]["created_at"]) < stop_before:
                        break
                    ids.add(doc_id)
            return [self._reply(doc) for doc in self._docs(sorted(ids, reverse=True))
                    if _moment(doc["created_at"]) >= since and wanted(doc)]
        self._concerning_since(stop_before)
        found = []
        for doc in self._docs(self._order):
            created = _moment(doc["created_at"])
            if created < stop_before:
                break
            if created >= since and wanted(doc):
                found.append(self._reply(doc))
        return found

    def undeliverable(self) -> list[dict]:
        """Replies that bounced; `flagged_address` is the county address that could not be reached."""
        return self.with_status("undeliverable")

    def _docs(self, doc_ids):
        raw = _raw(self.table)
        return (raw[str(i)] for i in doc_ids)

    def _without_body(self, doc: dict) -> dict:
        if doc.get("raw") is None:
            return doc
        body = doc["raw"].encode("utf-8", "surrogateescape")
        return {**{k: v for k, v in doc.items() if k != "raw"}, "raw_sha256": self.files.put(body)}

    def _reply(self, doc: dict | None) -> dict | None:
        return _Reply(doc, self.files) if doc is not None else None


def _unsettled(doc: dict) -> dict | None:
    return doc if doc.get("status") != "sent" or doc.get("copy") == "due" else None


class _Reply(dict):
    """A reply document whose body ("raw") is read from the file store when first asked for."""

    def __init__(self, doc: dict, files: "FileStore"):
        super().__init__(doc)
        self._files = files

    def __missing__(self, key):
        if key == "raw" and dict.get(self, "raw_sha256"):
            self["raw"] = self._files.read(self["raw_sha256"]).decode("utf-8", "surrogateescape")
            return self["raw"]
        raise KeyError(key)

    def get(self, key, default=None):
        return self[key] if key in self or key == "raw" and dict.get(self, "raw_sha256") else default


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


class Meta(_Keyed):
    """Facts about the store itself ({"name": "mirrors", "version": 1})."""

    key = "name"

    def put(self, name: str, **fields) -> None:
        if name in self:
            self.update(name, **fields)
        else:
            self.add({"name": name, **fields})


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
    """Attachment bytes by sha256, readable by the service user only.

    Each file is written to a temporary name, fsynced and renamed by a writer thread while the
    message goes on being processed; `flush` (called by every transaction before it commits)
    waits for them. So a committed record never names a missing or partial file, as when each
    put fsynced in line, and the fsyncs of one message's files (its attachments, its reply)
    overlap its parsing and composing and each other instead of following one another."""

    WRITERS = 4

    def __init__(self, root: Path):
        self.root = root
        self._pending: dict[str, Future] = {}
        self._pool: ThreadPoolExecutor | None = None

    def put(self, data: bytes) -> str:
        import hashlib   # here, not at the top: OpenSSL's start-up is paid by writers only

        digest = hashlib.sha256(data).hexdigest()
        if digest not in self._pending:   # whether it is on disk already: the writer looks
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(self.WRITERS, thread_name_prefix="intake-files")
            self._pending[digest] = self._pool.submit(_write_durably, self.path_of(digest), data)
        return digest

    def flush(self) -> None:
        """Wait until every file put so far is on disk under its name; raises what writing
        one raised (OSError: the disk is full...)."""
        pending, self._pending = self._pending, {}
        for written in pending.values():
            written.result()

    def path_of(self, digest: str) -> Path:
        return self.root / digest[:2] / digest

    def read(self, digest: str) -> bytes:
        if digest in self._pending:
            self._pending[digest].result()
        return self.path_of(digest).read_bytes()


def _write_durably(target: Path, data: bytes) -> None:
    """Temporary file, fsync, rename: the name never holds part of the bytes. A file already
    under its name (its bytes, by their hash) is left as it is."""
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = target.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, target)
