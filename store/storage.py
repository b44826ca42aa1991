"""A TinyDB storage that keeps the database in memory and writes it only on commit, atomically.

TinyDB's JSONStorage rewrites its file in place on every write: a kill leaves torn JSON and a
pass over 500 messages rewrites the file thousands of times. Here a commit writes a temporary
file, fsyncs it, renames it over the old one and fsyncs the directory, so the file on disk is
always the old state or the new one.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from tinydb.storages import Storage


class AtomicJSONStorage(Storage):
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._data: dict | None = None
        self.dirty = False

    def read(self) -> dict | None:
        if self._data is None:
            self._data = self._load()
        return self._data

    def write(self, data: dict) -> None:
        self._data = data
        self.dirty = True

    def commit(self) -> None:
        if not self.dirty or self._data is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=".intake-", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(self._data, fh, ensure_ascii=False, separators=(",", ":"))
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(self.path.parent)
        self.dirty = False

    def rollback(self) -> None:
        """Forget uncommitted changes: the next read loads the file again."""
        self._data = None
        self.dirty = False

    def close(self) -> None:
        pass

    def _load(self) -> dict:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        return json.loads(text) if text.strip() else {}


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
