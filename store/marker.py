"""A small file beside the store naming the thing in hand, durable before the risky step
and removed after it: found at the next start, it says what a crash interrupted. For a step
repeated many times in a row, the file can instead be kept open and written over in place."""
from __future__ import annotations

import glob
import hashlib
import os
from pathlib import Path


class Marker:
    def __init__(self, store_path: str | os.PathLike, name: str):
        store_path = Path(store_path)
        self.path = store_path.with_name(f"{store_path.name}.{name}")
        self._fd: int | None = None   # held open by overwrite, until release
        self._size = 0                 # the longest text written: what a shorter one must cover

    def set(self, text: str, durable: bool = True) -> None:
        """Write the marker; `durable`: fsynced, so that it survives the machine's crash too.
        Without it the marker survives the process's death (the kernel has it), not a power cut."""
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, text.encode("utf-8"))
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)

    def get(self) -> str | None:
        try:
            return self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def is_set(self) -> bool:
        return self.path.exists()

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)

    def overwrite(self, text: str) -> None:
        """Write the marker over in place: one write at the start of a file held open (until
        `release`), padded with spaces to the longest text written so far, so that a process
        killed at any moment leaves the old text or the new one, whole. Creating and removing
        the file each time would wait for the file system's journal. Not fsynced: it survives
        the process's death (the kernel has it), not a power cut."""
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            self._size = os.fstat(self._fd).st_size
        data = text.encode("utf-8")
        os.pwrite(self._fd, data.ljust(self._size), 0)
        self._size = max(self._size, len(data))

    def blank(self) -> None:
        """Write the marker over with spaces only: a blank marker names nothing."""
        self.overwrite("")

    @property
    def held_open(self) -> bool:
        """Whether `overwrite` holds the file open (until `release`)."""
        return self._fd is not None

    def release(self) -> None:
        """Close the file `overwrite` held open; the marker stays as it was last written."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd, self._size = None, 0


class Markers:
    """Markers of one kind for several things in hand at once, one file each beside the store
    (NAME.KIND.TAG, TAG from the thing's key), each set and cleared on its own. The file of the
    single marker of that kind (NAME.KIND) is found too: one written before there were several."""

    def __init__(self, store_path: str | os.PathLike, kind: str):
        self.store_path, self.kind = Path(store_path), kind

    def marker(self, key: str) -> Marker:
        return Marker(self.store_path, f"{self.kind}.{hashlib.sha1(key.encode()).hexdigest()[:16]}")

    def all(self) -> list[Marker]:
        """Every marker of this kind that is set."""
        prefix = f"{self.store_path.name}.{self.kind}"
        return [Marker(self.store_path, path.name[len(self.store_path.name) + 1:])
                for path in sorted(self.store_path.parent.glob(f"{glob.escape(prefix)}*"))
                if path.name == prefix or path.name.startswith(prefix + ".")]
