"""Commands for the running worker, as files in a folder beside the store.

Only one process may write the store; while `intake run` holds it, a command that writes
(`intake mark`, `outbox --retry`, ...) leaves a request here and the worker does it between two
messages. One file a request, written atomically (temporary file, rename); the worker claims it
by renaming it (so a request is taken once, or withdrawn by its sender once), and answers with a
result file beside it.

    NAME.cmd      {"command": "mark", "args": {...}}        written by the command line
    NAME.taken    the same, claimed by the worker
    NAME.result   {"exit": 0, "out": [...], "err": [...]}   written by the worker
"""
from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path


class CommandQueue:
    def __init__(self, store_path: str | os.PathLike):
        store_path = Path(store_path)
        self.folder = store_path.with_name(store_path.name + ".commands")

    # The command line's side.
    def submit(self, command: str, args: dict) -> str:
        """Queue one request; returns its name."""
        self.folder.mkdir(mode=0o700, exist_ok=True)
        name = f"{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        _write_atomically(self.folder / f"{name}.cmd", {"command": command, "args": args})
        return name

    def result(self, name: str) -> dict | None:
        try:
            return json.loads((self.folder / f"{name}.result").read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None

    def taken(self, name: str) -> bool:
        return (self.folder / f"{name}.taken").exists() or (self.folder / f"{name}.result").exists()

    def withdraw(self, name: str) -> bool:
        """Take back a request the worker has not claimed; False when it already has."""
        try:
            (self.folder / f"{name}.cmd").unlink()
            return True
        except FileNotFoundError:
            return False

    def forget(self, name: str) -> None:
        for suffix in (".cmd", ".taken", ".result"):
            (self.folder / f"{name}{suffix}").unlink(missing_ok=True)

    # The worker's side.
    def waiting(self) -> bool:
        try:
            return any(n.endswith(".cmd") for n in os.listdir(self.folder))
        except FileNotFoundError:
            return False

    def claim_next(self) -> tuple[str, dict] | None:
        """The oldest request, now claimed; None when there is none."""
        try:
            names = sorted(n[:-4] for n in os.listdir(self.folder) if n.endswith(".cmd"))
        except FileNotFoundError:
            return None
        for name in names:
            taken = self.folder / f"{name}.taken"
            try:
                os.rename(self.folder / f"{name}.cmd", taken)
            except FileNotFoundError:
                continue        # withdrawn by its sender meanwhile
            try:
                request = json.loads(taken.read_text(encoding="utf-8"))
            except ValueError:
                request = {}
            return name, request
        return None

    def answer(self, name: str, exit_code: int, out: list[str], err: list[str]) -> None:
        _write_atomically(self.folder / f"{name}.result", {"exit": exit_code, "out": out, "err": err})
        (self.folder / f"{name}.taken").unlink(missing_ok=True)

    def interrupted(self) -> list[dict]:
        """Requests a previous worker claimed and never answered (it was killed): removed, and
        returned for the log; whether they took effect is unknown."""
        found = []
        for taken in sorted(self.folder.glob("*.taken")) if self.folder.exists() else []:
            try:
                found.append(json.loads(taken.read_text(encoding="utf-8")))
            except ValueError:
                found.append({})
            taken.unlink(missing_ok=True)
        return found


def _write_atomically(path: Path, value: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(value, fh, ensure_ascii=False)
    os.replace(tmp, path)
