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

A table's snapshot is one line per document: `<doc id> TAB <key as a JSON string> TAB <the
document as JSON>`, the key being what the store finds the document by (a submission's
Message-ID; "" for tables without one). Reading a table splits its lines and decodes nothing:
a document is decoded when it is first used, and its key is read from its line, so a command
that looks up or adds a few documents of a 50,000-document table does not decode 50,000 of
them, and a compaction writes back the lines it never decoded as they were. A snapshot written
as one JSON object (before the lines) is read as such and rewritten as lines when compacted.

The store's own file (`intake.json`) says which layout the snapshots have: {"layout": 2} for
one file per table; anything else is the older single-file snapshot holding every table, which
is read as it is and split at the first compaction.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import MutableMapping
from pathlib import Path

from tinydb.storages import Storage

# The journal is folded into the snapshots by its size on disk — every open parses all of it,
# whichever process wrote it, while the snapshots' lines are only split — once it passes a
# twentieth of the snapshots' (each journal byte then costs twenty of snapshot written, mostly
# lines copied as they were read), never below COMPACT_FLOOR_BYTES and always above
# COMPACT_JOURNAL_BYTES: with 50,000 emails stored, a fold every ~800 emails.
COMPACT_FLOOR_BYTES = 1 << 20
COMPACT_RATIO = 0.05
COMPACT_JOURNAL_BYTES = 16 << 20
LAYOUT = 2


class StoreError(Exception):
    """The store cannot be opened or written; the message is one line for the operator."""


class _Docs(MutableMapping):
    """{doc id: doc} of one table, each document decoded from its snapshot line when first
    used. `lines` holds the undecoded ones: doc id → (key as JSON, document as JSON);
    `written`, the decoded ones as the last compaction wrote them, until they are changed (see
    `changed`), so the next compaction encodes only what changed since: its cost does not grow
    with the documents this process has decoded or added."""

    __slots__ = ("entries", "lines", "path", "written")

    def __init__(self, lines: dict[str, tuple[bytes, bytes]] | None = None, path: Path | None = None):
        self.lines = lines or {}
        self.entries: dict[str, object] = dict.fromkeys(self.lines)   # the order of the snapshot
        self.path = path
        self.written: dict[str, tuple[bytes, bytes]] = {}

    def __getitem__(self, doc_id: str):
        doc = self.entries[doc_id]
        if doc is None:
            doc = self.entries[doc_id] = self._decoded(self.lines[doc_id][1])
            del self.lines[doc_id]
        return doc

    def items(self):
        self._decode_all()
        return self.entries.items()

    def values(self):
        self._decode_all()
        return self.entries.values()

    def _decode_all(self) -> None:
        """A whole table read (all(), a search): the lines still undecoded, parsed in one go."""
        if self.lines:
            pending = [doc_id for doc_id, doc in self.entries.items() if doc is None]
            docs = self._decoded(b"[" + b",".join(self.lines[i][1] for i in pending) + b"]")
            self.entries.update(zip(pending, docs))
            self.lines.clear()

    def _decoded(self, raw: bytes):
        try:
            return json.loads(raw.decode("utf-8"))
        except ValueError as exc:   # UnicodeDecodeError too
            raise StoreError(f"the store {self.path} has a damaged document: {exc}") from None

    def __setitem__(self, doc_id: str, doc) -> None:
        self.entries[doc_id] = doc
        self.lines.pop(doc_id, None)
        self.written.pop(doc_id, None)

    def __delitem__(self, doc_id: str) -> None:
        del self.entries[doc_id]
        self.lines.pop(doc_id, None)
        self.written.pop(doc_id, None)

    def changed(self, doc_id: str) -> None:
        """The document was changed in place (every change is committed, naming it)."""
        self.written.pop(doc_id, None)

    def __contains__(self, doc_id) -> bool:
        return doc_id in self.entries

    def __iter__(self):
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def keys_by_id(self, key_of) -> dict[str, str]:
        """doc id → key: read from the lines of undecoded documents, from the others by `key_of`."""
        if len(self.lines) == len(self.entries):   # none decoded yet: every key in one decode
            keys = _plain_keys([key for key, _ in self.lines.values()])
            if keys is not None:
                return dict(zip(self.lines, keys))
        out = {}
        for doc_id, doc in self.entries.items():
            if doc is None:
                raw = self.lines[doc_id][0]
                out[doc_id] = raw[1:-1].decode("utf-8") if b"\\" not in raw else json.loads(raw)
            else:
                out[doc_id] = key_of(doc)
        return out

    def line(self, doc_id: str, key_of) -> bytes:
        """The document's snapshot line, without its newline."""
        if self.entries[doc_id] is None:
            key, body = self.lines[doc_id]
        elif doc_id in self.written:
            key, body = self.written[doc_id]
        else:
            doc = self.entries[doc_id]
            key = _json_bytes(key_of(doc) if key_of else "")
            body = _json_bytes(doc)
            self.written[doc_id] = key, body
        return doc_id.encode("ascii") + b"\t" + key + b"\t" + body


def _plain_keys(keys: list[bytes]) -> list[str] | None:
    """The JSON strings `keys` decoded together, or None when one holds an escape. Joined and
    decoded once, then split, instead of one decode each: with 50,000 submissions, the
    Message-ID lookup a pass starts with took ~50 ms less. Without a backslash, no key holds a
    quote or a newline (JSON escapes both), so '"\\n"' only ever stands between two keys."""
    joined = b"\n".join(keys)
    if not keys or b"\\" in joined or joined[:1] != b'"' or joined[-1:] != b'"':
        return None
    try:
        texts = joined.decode("utf-8")[1:-1].split('"\n"')
    except UnicodeDecodeError:
        return None
    return texts if len(texts) == len(keys) else None   # else a key that is no string


def _json_bytes(value) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _parse_lines(raw: bytes, path: Path) -> _Docs:
    lines = {}
    for line in raw.split(b"\n"):
        if not line:
            continue
        parts = line.split(b"\t", 2)
        if len(parts) != 3 or not parts[0].isdigit():
            raise StoreError(f"the store {path} has a damaged line: {line[:60]!r}")
        lines[parts[0].decode("ascii")] = (parts[1], parts[2])
    return _Docs(lines, path)


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
        # table name → the function giving a document's key (see the module's text); set by
        # the repositories, which know what they look documents up by.
        self.key_functions: dict = {}
        self.journal = self.path.with_name(self.path.name + ".journal")
        self._tables = _Tables(self)
        self._legacy: dict | None = None      # the single-file snapshot of the older layout
        self._layout: int | None = None
        self._writer = False                  # holds the lock: the journal changes only through us
        self._parsed: dict[str, list] | None = None   # the writer's parsed journal, by table
        self._snapshot_bytes = 0              # all the tables' snapshots (writer)
        self._reader_cache: tuple | None = None   # (journal's stat, its entries), for readers
        self._torn = False
        self._unsynced: list[str] = []        # journal lines committed, not yet written (`commit`)
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

    def keys_by_id(self, name: str) -> dict[str, str]:
        """doc id → key of every document of the table, without decoding the documents."""
        docs, key_of = self._tables[name], self.key_functions[name]
        if isinstance(docs, _Docs):
            return docs.keys_by_id(key_of)
        return {doc_id: key_of(doc) for doc_id, doc in docs.items()}

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

    def commit(self, changes: list[tuple[str, str]], durable: bool = True) -> None:
        """Make the named documents (table, doc id) durable as they now are in memory.
        `durable=False`: only note them; the next `sync` writes them with whatever else was
        noted, in one fsync (a group commit). Until then the commit is in this process's
        memory only: a crash loses it, and readers in other processes do not see it."""
        if changes:
            loaded = self._tables.loaded
            entries = [[table, doc_id, loaded.get(table, {}).get(doc_id)] for table, doc_id in changes]
            for table, doc_id in changes:
                if isinstance(loaded.get(table), _Docs):
                    loaded[table].changed(doc_id)
            self._unsynced.append(json.dumps({"c": entries}, ensure_ascii=False, separators=(",", ":")) + "\n")
            # The writer's journal is read from disk at most once, so what it lacks from disk
            # must be added here (a rollback reloads tables from it).
            parsed = self._writer_journal() if self._writer else self._parsed
            if parsed is not None:
                for table, doc_id, doc in entries:
                    parsed.setdefault(table, []).append((doc_id, doc))
        if durable:
            self.sync()

    def sync(self) -> None:
        """Write the commits noted since the last sync to the journal, one write and one fsync."""
        if not self._unsynced:
            return
        lines, self._unsynced = self._unsynced, []
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.journal, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, "".join(lines).encode("utf-8"))
                os.fsync(fd)
                size = os.fstat(fd).st_size
            finally:
                os.close(fd)
        except OSError:
            self._unsynced = lines + self._unsynced   # tried again by the next sync
            raise
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
        else:   # snapshots written as one JSON object, before the lines, are rewritten as lines
            names |= {name for name in self.table_names() if _is_json_object(self.table_path(name))}
        for name in sorted(names):
            self._write_table(name)
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

    def _write_table(self, name: str) -> None:
        docs, key_of = self._tables[name], self.key_functions.get(name)
        if not isinstance(docs, _Docs):
            docs = _Docs()
            for doc_id, doc in self._tables[name].items():
                docs[doc_id] = doc
        lines = [docs.line(doc_id, key_of) for doc_id in docs]
        _write_bytes_atomically(self.table_path(name), b"\n".join(lines) + b"\n" if lines else b"")

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

    def _table_snapshot(self, name: str) -> MutableMapping:
        if self._layout != LAYOUT:
            return dict(self._legacy_snapshot().get(name, {}))
        path = self.table_path(name)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return _Docs()
        if raw.lstrip()[:1] in (b"{", b""):   # a snapshot written before the lines
            return self._parse(raw.decode("utf-8"), path)
        return _parse_lines(raw, path)

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


def _is_json_object(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(64).lstrip()[:1] == b"{"
    except FileNotFoundError:
        return False


def _stat(path: Path):
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def _write_atomically(path: Path, data) -> None:
    _write_bytes_atomically(path, _json_bytes(data))


def _write_bytes_atomically(path: Path, data: bytes) -> None:
    import tempfile   # here: a command that only reads never writes a snapshot

    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=".intake-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
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
