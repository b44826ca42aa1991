"""A TinyDB storage that keeps the database in memory and makes each commit durable cheaply.

TinyDB's JSONStorage rewrites its whole file in place on every write: a kill leaves torn JSON,
and the cost of one write grows with the store. Here the database lives in memory; a commit
appends the documents it changed to a journal as ONE line and fsyncs it, so its cost is the
size of the change. Now and then (and when a writer opens a store whose journal ends in a torn
line) the journal is folded into a snapshot written atomically: temporary file, fsync, rename,
fsync of the directory. On disk there is always a snapshot plus whole journal lines; a line cut
short by a kill is a commit that never happened.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from tinydb.storages import Storage

# The journal is folded into the snapshot by its size on disk — every open replays it, whichever
# process wrote it — once it passes half the snapshot's (an open then parses at most 1.5 times
# the store; each journal byte costs two of snapshot written), never below COMPACT_FLOOR_BYTES
# and always above COMPACT_JOURNAL_BYTES.
COMPACT_FLOOR_BYTES = 1 << 20
COMPACT_RATIO = 0.5
COMPACT_JOURNAL_BYTES = 32 << 20


class JournaledStorage(Storage):
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.journal = self.path.with_name(self.path.name + ".journal")
        self._data: dict | None = None
        self._torn = False
        self._snapshot_bytes = 0

    # TinyDB's side: the whole database, in memory.
    def read(self) -> dict:
        if self._data is None:
            self._data = self._load()
        return self._data

    def write(self, data: dict) -> None:
        self._data = data

    def close(self) -> None:
        pass

    # The store's side.
    def commit(self, changes: list[tuple[str, str]]) -> None:
        """Make the named documents (table, doc id) durable as they now are in memory."""
        if not changes:
            return
        data = self.read()
        entries = [[table, doc_id, data.get(table, {}).get(doc_id)] for table, doc_id in changes]
        line = json.dumps({"c": entries}, ensure_ascii=False, separators=(",", ":")) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.journal, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
            journal_bytes = os.fstat(fd).st_size
        finally:
            os.close(fd)
        if journal_bytes > min(COMPACT_JOURNAL_BYTES,
                               max(COMPACT_FLOOR_BYTES, COMPACT_RATIO * self._snapshot_bytes)):
            self.compact()

    def rollback(self) -> None:
        """Forget uncommitted changes: the next read loads the disk state again."""
        self._data = None

    def repair(self) -> None:
        """For the writer: a journal ending in a torn line is folded away before appending, and
        the temporary files of compactions cut short by a kill are removed."""
        self.read()
        if self._torn:
            self.compact()
        for stale in self.path.parent.glob(".intake-*.tmp"):
            stale.unlink(missing_ok=True)

    def compact(self) -> None:
        data = self.read()
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=".intake-", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, ensure_ascii=False, separators=(",", ":"))
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(self.path.parent)
        # Replaying the old journal over the new snapshot would change nothing (each entry is a
        # whole document), so a kill before this truncation is harmless.
        with open(self.journal, "w", encoding="utf-8") as fh:
            fh.flush()
            os.fsync(fh.fileno())
        self._torn = False
        self._snapshot_bytes = self.path.stat().st_size

    def _load(self) -> dict:
        # A reader beside a writer: if the writer compacts between our reading the snapshot and
        # our reading the journal, we would hold the old snapshot and an emptied journal. The
        # snapshot is replaced before the journal is emptied, so a changed snapshot tells.
        for _ in range(20):
            before = self._snapshot_id()
            data = self._read_snapshot()
            for entries in self._journal_entries():
                for table, doc_id, doc in entries:
                    docs = data.setdefault(table, {})
                    if doc is None:
                        docs.pop(doc_id, None)
                    else:
                        docs[doc_id] = doc
            if self._snapshot_id() == before:
                return data
        raise OSError(f"{self.path} keeps changing while it is read")

    def _snapshot_id(self):
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    def _read_snapshot(self) -> dict:
        self._torn = False
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            self._snapshot_bytes = 0
            return {}
        self._snapshot_bytes = self.path.stat().st_size
        return json.loads(text) if text.strip() else {}

    def _journal_entries(self):
        try:
            raw = self.journal.read_bytes()
        except FileNotFoundError:
            return
        for line in raw.split(b"\n"):
            if not line:
                continue
            try:
                yield json.loads(line)["c"]
            except (ValueError, KeyError, TypeError):
                # Only the last line can be torn (appends are whole lines): a commit cut short.
                self._torn = True
                return


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
