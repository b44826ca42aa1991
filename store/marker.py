"""A small file beside the store naming the thing in hand, durable before the risky step
and removed after it: found at the next start, it says what a crash interrupted."""
from __future__ import annotations

import glob
import hashlib
import os
from pathlib import Path


class Marker:
    def __init__(self, store_path: str | os.PathLike, name: str):
        store_path = Path(store_path)
        self.path = store_path.with_name(f"{store_path.name}.{name}")

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
