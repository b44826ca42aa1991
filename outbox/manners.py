"""RFC 3834 manners: which messages must never get an automatic reply, and why."""
from __future__ import annotations

import re
from email.message import Message

_ROBOT_LOCALPARTS = re.compile(r"^(postmaster|mailer-daemon|no-?reply|do-?not-?reply|bounces?)([+-].*)?$",
                               re.IGNORECASE)


def no_reply_reason(headers: Message, from_addr: str, own_addresses: set[str]) -> str | None:
    """A short English reason ("auto-reply", "bounce", "list", "own address", ...) or None."""
    get = lambda name: str(headers.get(name, "") or "").strip().lower()  # noqa: E731
    if from_addr and from_addr.lower() in own_addresses:
        return "own address"
    if headers.get("X-Intake-Status") is not None:
        return "own address"
    if headers.get_content_type() == "multipart/report" or _has_delivery_status(headers):
        return "bounce"
    if get("Return-Path") == "<>":
        return "bounce"
    if not from_addr:
        return "no sender address"
    if _ROBOT_LOCALPARTS.match(from_addr.split("@", 1)[0]):
        return "bounce"
    if get("Auto-Submitted") not in ("", "no"):
        return "auto-reply"
    if headers.get("X-Autoreply") is not None or headers.get("X-Autorespond") is not None:
        return "auto-reply"
    precedence = get("Precedence")
    if precedence == "list" or any(headers.get(h) is not None for h in _LIST_HEADERS):
        return "list"
    if precedence in ("bulk", "junk"):
        return "bulk"
    return None


_LIST_HEADERS = ("List-Id", "List-Unsubscribe", "List-Post", "List-Help")


def _has_delivery_status(msg: Message) -> bool:
    try:
        return any(part.get_content_type() == "message/delivery-status" for part in msg.walk())
    except Exception:  # noqa: BLE001
        return False
