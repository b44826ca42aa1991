"""A small file beside the store naming the one thing in hand, durable before the risky step
and removed after it: found at the next start, it says what a crash interrupted."""
from __future__ import annotations

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
