"""A small file beside the store naming the one thing in hand, durable before the risky step
and removed after it: found at the next start, it says what a crash interrupted."""
from __future__ import annotations

import os
from pathlib import Path


class Marker:
    def __init__(self, store_path: str | os.PathLike, name: str):
        store_path = Path(store_path)
        self.path = store_path.with_name(f"{store_path.name}.{name}")

    def set(self, text: str) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, text.encode("utf-8"))
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
