"""Messages whose processing failed: recorded with the error, left in the mailbox, retried
with backoff, and set aside after three attempts — never lost, never looping.

A crash (the process killed in the middle of a message) is noticed at the next start through
the in-flight marker, a small file written before a message is processed and removed after.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import re
import traceback
from pathlib import Path

from parsers.email_message import parse_email
from store.marker import Marker

log = logging.getLogger("intake.failures")

MAX_ATTEMPTS = 3
RETRY_BASE = dt.timedelta(minutes=5)
CRASH_NOTE = "intake stopped while processing this message (killed or crashed)"


def waiting(store, ref: str, now: dt.datetime) -> bool:
    """True when the message must not be taken now: set aside, or its retry is not due."""
    failure = store.failures.get(ref)
    if failure is None:
        return False
    return failure["status"] == "failed" or dt.datetime.fromisoformat(failure["next_at"]) > now


def due(store, now: dt.datetime) -> list[dict]:
    return [f for f in store.failures.with_status("retrying")
            if dt.datetime.fromisoformat(f["next_at"]) <= now]


def record(store, ref: str, origin: dict, raw: bytes | None, error: str, now: dt.datetime,
           crashed: bool = False, message_id: str = "") -> dict:
    """Note one more failed attempt; the third sets the message aside."""
    earlier = store.failures.get(ref) or {}
    attempts = earlier.get("attempts", 0) + 1
    # A crash may have been a kill from outside: retry at once. An exception will happen again
    # unless something changes: wait before the next try.
    wait = dt.timedelta(0) if crashed else RETRY_BASE * 2 ** (attempts - 1)
    failure = {
        "ref": ref,
        "origin": origin or earlier.get("origin", {}),
        "message_id": _message_id(raw) or message_id or earlier.get("message_id", ""),
        "error": error,
        "attempts": attempts,
        "first_at": earlier.get("first_at", now.isoformat()),
        "last_at": now.isoformat(),
        "next_at": (now + wait).isoformat(),
        "status": "failed" if attempts >= MAX_ATTEMPTS else "retrying",
    }
    with store.transaction():
        store.failures.put(failure)
    level = logging.ERROR if failure["status"] == "failed" else logging.WARNING
    log.log(level, "processing %s (%s) failed, attempt %d: %s%s", ref, failure["message_id"] or "no Message-ID",
            attempts, error.splitlines()[0] if error else "", "; set aside, see `intake failed`"
            if failure["status"] == "failed" else "")
    return failure


def describe_exception(exc: BaseException) -> str:
    """The error kept in the store (readable by the service user only): the traceback, whose
    frames name code, not data. Its first line, logged, names only the exception's type."""
    frames = "".join(traceback.format_tb(exc.__traceback__))
    return f"{type(exc).__name__} (details in the store)\n{frames}{type(exc).__name__}: {exc}"


def retry_now(store, ref_or_message_id: str, now: dt.datetime) -> dict | None:
    """For `intake reprocess`: make a recorded failure due again with a fresh count."""
    failure = store.failures.find(ref_or_message_id)
    if failure is None:
        return None
    failure.update(status="retrying", attempts=0, next_at=now.isoformat())
    with store.transaction():
        store.failures.put(failure)
    return failure


def resolve(store, ref: str) -> None:
    if store.failures.get(ref) is not None:
        with store.transaction():
            store.failures.resolve(ref)


class InFlight:
    """The message being processed, named in a marker beside the store (store/marker.py).

    Within a pass the marker's file stays open and is written over in place, padded with
    spaces, and blanked between messages (a blank marker names nothing); `close` removes it at
    the pass's end. Creating and removing a file for every message waited for the file
    system's journal, behind the fsyncs of the attachments being stored."""

    def __init__(self, store_path: Path):
        self.marker = Marker(store_path, "inflight")
        self.path = self.marker.path

    def begin(self, ref: str, origin: dict, raw: bytes = b"") -> None:
        # Not fsynced: it counts a crash of intake against the message (the kernel keeps the
        # file when the process dies); a power cut is no message's fault, and an fsync for
        # every message would cost as much as the message's own commit.
        self.marker.overwrite(json.dumps({"ref": ref, "origin": origin,
                                          "message_id": _header_message_id(raw)}))

    def end(self) -> None:
        if self.marker.held_open:
            self.marker.blank()
        else:   # a marker left by an earlier process (recover): removed
            self.marker.clear()

    def close(self) -> None:
        """The pass is over: the marker's file is removed."""
        self.marker.release()
        self.marker.clear()

    def recover(self, store, now: dt.datetime) -> None:
        """Count a crash against the message that was in hand when it happened."""
        text = self.marker.get()
        if text is None or not text.strip():
            return
        try:
            marker = json.loads(text)
        except ValueError:   # the marker itself was cut short: nothing to count
            self.end()
            return
        record(store, marker["ref"], marker.get("origin", {}), None, CRASH_NOTE, now,
               crashed=True, message_id=marker.get("message_id", ""))
        self.end()


_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(<[^<>\s]+>)", re.IGNORECASE | re.MULTILINE)


def _header_message_id(raw: bytes) -> str:
    """The Message-ID from the raw headers, cheaply: the marker is written for every message."""
    match = _MESSAGE_ID.search(raw[:65536])
    return match.group(1).decode("ascii", "replace") if match else ""


def _message_id(raw: bytes | None) -> str:
    if not raw:
        return ""
    try:
        return parse_email(raw).message_id
    except Exception:  # noqa: BLE001 — the failure is what is being recorded
        return ""
