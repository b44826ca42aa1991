"""A TinyDB storage that keeps each table in its own file, loads a table only when it is used,
and makes each commit durable cheaply.

TinyDB's JSONStorage keeps every table in one file and rewrites it whole on every write: a kill
leaves torn JSON, the cost of one write grows with the store, and a command that needs one small
table parses them all. Here each table has its own snapshot beside the store's file
(`intake.json` → `intake.submissions.json`, ...), read the first time the table is used. A
commit appends the documents it changed, of every table, to ONE journal as ONE line and fsyncs
it, so its cost is the size of the change and a transaction spanning tables stays whole. When the
journal has grown (by its size on disk, whichever process appended it: see COMPACT_RATIO) and when a writer opens a store whose journal ends in a torn line, the
journal is folded into the snapshots of the tables it names, each written atomically (temporary
file, fsync, rename, fsync of the directory), then emptied. On disk there is always a snapshot
per table plus whole journal lines; a line cut short by a kill is a commit that never happened.

The store's own file (`intake.json`) says which layout the snapshots have: {"layout": 2} for
one file per table; anything else is the older single-file snapshot holding every table, which
is read as it is and split at the first compaction.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import MutableMapping
from pathlib import Path

from tinydb.storages import Storage

# The journal is folded into the snapshots by its size on disk — every open replays it, whichever
# process wrote it — once it passes half the snapshots' (an open then parses at most 1.5 times
# the store; each journal byte costs two of snapshot written), never below COMPACT_FLOOR_BYTES
# and always above COMPACT_JOURNAL_BYTES.
COMPACT_FLOOR_BYTES = 1 << 20
COMPACT_RATIO = 0.5
COMPACT_JOURNAL_BYTES = 32 << 20
LAYOUT = 2


class StoreError(Exception):
    """The store cannot be opened or written; the message is one line for the operator."""


class _Tables(MutableMapping):
    """table name → {doc id: doc}, each table read from disk the first time it is asked for."""

    def __init__(self, storage: "JournaledStorage"):
        self.storage = storage
        self.loaded: dict[str, dict] = {}

    def __getitem__(self, name: str) -> dict:
        if name not in self.loaded:
            self.loaded[name] = self.storage.load_table(name)
        return self.loaded[name]

    def __setitem__(self, name: str, docs: dict) -> None:
        self.loaded[name] = docs

    def __delitem__(self, name: str) -> None:
        self.loaded[name] = {}

    def __iter__(self):
        return iter(sorted(set(self.storage.table_names()) | set(self.loaded)))

    def __len__(self) -> int:
        return len(list(iter(self)))


class JournaledStorage(Storage):
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.journal = self.path.with_name(self.path.name + ".journal")
        self._tables = _Tables(self)
        self._legacy: dict | None = None      # the single-file snapshot of the older layout
        self._layout: int | None = None
        self._writer = False                  # holds the lock: the journal changes only through us
        self._parsed: dict[str, list] | None = None   # the writer's parsed journal, by table
        self._snapshot_bytes = 0              # all the tables' snapshots (writer)
        self._reader_cache: tuple | None = None   # (journal's stat, its entries), for readers
        self._torn = False
        self._read_manifest()

    # TinyDB's side: the tables, each loaded when first used.
    def read(self) -> MutableMapping:
        return self._tables

    def write(self, data) -> None:
        if data is not self._tables:
            self._tables.loaded = {name: docs for name, docs in data.items()}

    def close(self) -> None:
        pass

    # The store's side.
    def table_path(self, name: str) -> Path:
        safe = re.sub(r"[^A-Za-z0-9_-]", "_", name)
        return self.path.with_name(f"{self.path.stem}.{safe}{self.path.suffix or '.json'}")

    def table_names(self) -> list[str]:
        if self._layout == LAYOUT:
            prefix, suffix = self.path.stem + ".", self.path.suffix or ".json"
            return [p.name[len(prefix):-len(suffix)] for p in self.path.parent.glob(f"{prefix}*{suffix}")]
        return list(self._legacy_snapshot())

    def load_table(self, name: str) -> dict:
        """The table as on disk: its snapshot with the journal's later documents over it."""
        if self._writer:
            docs = self._table_snapshot(name)
            self._replay(docs, self._writer_journal().get(name, []))
            return docs
        # A reader beside a writer: if the writer compacts between our reading the snapshot and
        # our reading the journal, we would hold the old snapshot and an emptied journal. The
        # snapshot is replaced before the journal is emptied, so a changed snapshot tells.
        for _ in range(20):
            if _stat(self.path) != self._manifest_id:
                self._read_manifest()
            before = self._snapshot_id(name)
            docs = self._table_snapshot(name)
            self._replay(docs, self._reader_journal().get(name, []))
            if self._snapshot_id(name) == before:
                return docs
        raise StoreError(f"{self.path} keeps changing while it is read")

    def commit(self, changes: list[tuple[str, str]]) -> None:
        """Make the named documents (table, doc id) durable as they now are in memory."""
        if not changes:
            return
        loaded = self._tables.loaded
        entries = [[table, doc_id, loaded.get(table, {}).get(doc_id)] for table, doc_id in changes]
        line = json.dumps({"c": entries}, ensure_ascii=False, separators=(",", ":")) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.journal, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        if self._parsed is not None:
            for table, doc_id, doc in entries:
                self._parsed.setdefault(table, []).append((doc_id, doc))
        if size > min(COMPACT_JOURNAL_BYTES, max(COMPACT_FLOOR_BYTES, COMPACT_RATIO * self._snapshot_bytes)):
            self.compact()

    def rollback(self) -> None:
        """Forget uncommitted changes: the next use of a table loads the disk state again."""
        self._tables.loaded = {}
        if not self._writer:
            self._legacy = None
            self._read_manifest()

    def repair(self) -> None:
        """For the writer, once it holds the lock: a journal ending in a torn line is folded away
        before appending, and the temporary files of compactions cut short by a kill are removed."""
        self._writer = True
        self._parsed = None
        self._legacy = None
        self._tables.loaded = {}
        self._read_manifest()
        self._snapshot_bytes = self._snapshots_size()
        self._writer_journal()
        if self._torn:
            self.compact()
        elif not self.path.exists():   # a new store: say its layout, so no reader guesses
            _write_atomically(self.path, {"layout": LAYOUT})
            self._read_manifest()
        for stale in self.path.parent.glob(".intake-*.tmp"):
            stale.unlink(missing_ok=True)

    def compact(self) -> None:
        """Write the snapshot of every table the journal names (every table, the first time an
        older single-file store is compacted), then the layout, then empty the journal."""
        names = set(self._writer_journal() if self._writer else self._journal_entries())
        if self._layout != LAYOUT:
            names |= set(self._legacy_snapshot())
        for name in sorted(names):
            _write_atomically(self.table_path(name), self._tables[name])
        if self._layout != LAYOUT:
            _write_atomically(self.path, {"layout": LAYOUT})
            self._layout, self._legacy = LAYOUT, None
        # Replaying the old journal over the new snapshots would change nothing (each entry is
        # a whole document), so a kill before this truncation is harmless.
        with open(self.journal, "w", encoding="utf-8") as fh:
            fh.flush()
            os.fsync(fh.fileno())
        self._torn = False
        self._snapshot_bytes = self._snapshots_size()
        if self._writer:
            self._parsed = {}

    # Reading the disk.
    def _read_manifest(self) -> None:
        self._manifest_id = _stat(self.path)
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            self._layout, self._legacy = LAYOUT, None
            return
        head = text[:64].replace(" ", "")
        if head.startswith('{"layout":') and len(text) < 64:
            self._layout, self._legacy = json.loads(text)["layout"], None
            return
        self._layout = 1
        self._legacy = self._parse(text, self.path)

    def _legacy_snapshot(self) -> dict:
        if self._legacy is None:
            self._read_manifest()
        return self._legacy or {}

    def _table_snapshot(self, name: str) -> dict:
        if self._layout != LAYOUT:
            return dict(self._legacy_snapshot().get(name, {}))
        path = self.table_path(name)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        return self._parse(text, path)

    @staticmethod
    def _parse(text: str, path: Path) -> dict:
        try:
            return json.loads(text) if text.strip() else {}
        except ValueError as exc:
            raise StoreError(f"the store {path} is not valid JSON: {exc}") from None

    def _snapshot_id(self, name: str):
        return _stat(self.path), _stat(self.table_path(name))

    @staticmethod
    def _replay(docs: dict, entries: list) -> None:
        for doc_id, doc in entries:
            if doc is None:
                docs.pop(doc_id, None)
            else:
                docs[doc_id] = doc

    def _snapshots_size(self) -> int:
        if self._layout != LAYOUT:
            return _stat(self.path)[2] if _stat(self.path) else 0
        return sum(st[2] for st in map(_stat, map(self.table_path, self.table_names())) if st)

    def _reader_journal(self) -> dict[str, list]:
        """The journal as a reader last parsed it, while the file is unchanged (a command loading
        several tables parses it once); parsed again when it grew or was emptied."""
        key = _stat(self.journal)
        if self._reader_cache is None or self._reader_cache[0] != key or key is None:
            self._reader_cache = (key, self._journal_entries())
        return self._reader_cache[1]

    def _writer_journal(self) -> dict[str, list]:
        if self._parsed is None:
            self._parsed = self._journal_entries()
        return self._parsed

    def _journal_entries(self) -> dict[str, list]:
        """table → [(doc id, doc or None)] in commit order; notes a torn last line."""
        self._torn = False
        by_table: dict[str, list] = {}
        try:
            raw = self.journal.read_bytes()
        except FileNotFoundError:
            return by_table
        for line in raw.split(b"\n"):
            if not line:
                continue
            try:
                entries = json.loads(line)["c"]
            except (ValueError, KeyError, TypeError):
                # Only the last line can be torn (appends are whole lines): a commit cut short.
                self._torn = True
                break
            for table, doc_id, doc in entries:
                by_table.setdefault(table, []).append((doc_id, doc))
        return by_table


def _stat(path: Path):
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def _write_atomically(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=".intake-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, ensure_ascii=False, separators=(",", ":"))
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
