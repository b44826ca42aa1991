"""RFC 3834 manners: which messages must never get an automatic reply, and why; and the caps
that keep two robots from answering each other for ever."""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Container
from dataclasses import dataclass
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
    if precedence == "list" or any(name.lower().startswith("list-") for name in headers.keys()):
        return "list"
    if precedence in ("bulk", "junk"):
        return "bulk"
    return None


def _has_delivery_status(msg: Message) -> bool:
    try:
        return any(part.get_content_type() == "message/delivery-status" for part in msg.walk())
    except Exception:  # noqa: BLE001
        return False


@dataclass(frozen=True)
class ReplyLimits:
    per_sender_hourly_cap: int = 20
    thread_window_minutes: float = 60.0


def thread_of(in_reply_to: str, references: list[str]) -> list[str]:
    """The Message-IDs an email answers: its In-Reply-To and References, without repeats."""
    return list(dict.fromkeys(i for i in [in_reply_to, *references] if i))


def reply_allowed(history: list[dict], to: str, thread_ids: list[str], now: dt.datetime,
                  limits=ReplyLimits(), ours: Container[str] | None = None) -> str | None:
    """None when an automatic reply to `to` may go out now, else the reason it may not.

    `history`: the outbox records (reply_id, to, created_at, thread) — at least those of the
    last hour and thread window. `thread_ids`: the ids the incoming email refers to. `limits`:
    ReplyLimits or the [smtp] settings. `ours`: every reply id we ever sent (default: those in
    `history`).

    - per sender: at most `per_sender_hourly_cap` replies to one address in any hour — generous,
      so a county sending several forms in a row is answered each time;
    - per thread: an email that answers one of our replies is answered, but a second such email
      in the same thread within `thread_window_minutes` is not: a person answers our reply once
      with the corrected form; a robot that answers every reply would go on for ever.
    A fresh email (answering none of our replies) is never held by the thread rule.
    """
    cap = getattr(limits, "per_sender_hourly_cap", ReplyLimits.per_sender_hourly_cap)
    window = dt.timedelta(minutes=getattr(limits, "thread_window_minutes",
                                          ReplyLimits.thread_window_minutes))
    to = to.strip().lower()
    recent = [r for r in history if now - _time(r["created_at"]) < dt.timedelta(hours=1)
              and r["to"].strip().lower() == to]
    if len(recent) >= cap:
        return f"reply cap: {len(recent)} replies to {to} in the last hour (limit {cap})"
    if ours is None:
        ours = {r["reply_id"] for r in history}
    asked = set(thread_ids)
    if not any(i in ours for i in asked):
        return None
    for r in history:
        thread = r.get("thread") or []
        member = r["reply_id"] in asked or asked.intersection(thread)
        answered_a_follow_up = any(i in ours and i != r["reply_id"] for i in thread)
        if member and answered_a_follow_up and now - _time(r["created_at"]) < window:
            return (f"thread cap: this thread already had an answer to a reply within "
                    f"{window.total_seconds() / 60:g} minutes ({r['reply_id']})")
    return None


def _time(iso: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(iso)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)
