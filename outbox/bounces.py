"""Bounces of our own replies: a delivery-status report that answers one of them marks it
undeliverable and flags the address, so the digest can tell the contact. Never answered."""
from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass, field
from email import message_from_string
from email.message import Message

log = logging.getLogger("intake.outbox")

_MSGID = re.compile(r"<[^<>\s]+>")


@dataclass
class Bounce:
    original_ids: list[str] = field(default_factory=list)  # ids the report says it is about
    recipient: str = ""         # Final-Recipient (or Original-Recipient), "" when not given
    diagnostic: str = ""        # the remote server's answer, for the operator and the digest
    failed: bool = True         # Action: failed (a "delayed" report is not a failure)


def read_bounce(msg: Message) -> Bounce:
    """What a bounce says: the original Message-ID (from the text/rfc822-headers or
    message/rfc822 part, else In-Reply-To/References), the recipient and the diagnostic."""
    bounce = Bounce()
    status_blocks: list[Message] = []
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype == "message/delivery-status":
            status_blocks += _status_blocks(part)
        elif ctype == "text/rfc822-headers":
            bounce.original_ids += _ids_in(_headers_of(part).get_all("Message-ID") or [])
        elif ctype == "message/rfc822":
            for inner in part.get_payload() or []:
                if isinstance(inner, Message):
                    bounce.original_ids += _ids_in(inner.get_all("Message-ID") or [])
    bounce.original_ids += _ids_in([str(msg.get("In-Reply-To", "")), str(msg.get("References", ""))])
    bounce.original_ids = list(dict.fromkeys(bounce.original_ids))
    per_recipient = [b for b in status_blocks if b.get("Action")]
    if not per_recipient:  # a bounce in prose (no RFC 3464 report): its first line says why
        bounce.diagnostic = _first_line(msg)
    else:
        failed = [b for b in per_recipient if str(b["Action"]).strip().lower() == "failed"]
        bounce.failed = bool(failed)
        block = (failed or per_recipient)[0]
        bounce.recipient = _address(block.get("Final-Recipient") or block.get("Original-Recipient"))
        bounce.diagnostic = _diagnostic(block)
    return bounce


def record_bounce(store, msg: Message, bounce_id: str, now: dt.datetime) -> dict | None:
    """Mark the reply this bounce answers as undeliverable and flag its address. Returns the
    reply as updated, or None when the bounce is not about one of our replies (or not a failure).
    Call inside the transaction that records the bounce."""
    bounce = read_bounce(msg)
    if not bounce.failed:
        return None
    for original in bounce.original_ids:
        reply = store.outbox.get(original)
        if reply is None:
            continue
        changes = {"status": "undeliverable", "last_error": bounce.diagnostic or "bounced",
                   "bounced_at": now.isoformat(), "bounce_id": bounce_id,
                   "flagged_address": bounce.recipient or reply["to"]}
        store.outbox.update(reply["reply_id"], **changes)
        log.warning("reply %s to %s bounced: %s", reply["reply_id"], changes["flagged_address"],
                    changes["last_error"])
        return {**reply, **changes}
    return None


def _first_line(msg: Message) -> str:
    for part in msg.walk():
        if part.get_content_type() == "text/plain" and not part.get_filename():
            payload = part.get_payload(decode=True) or b""
            charset = part.get_content_charset() or "utf-8"
            try:
                text = payload.decode(charset, "replace")
            except LookupError:
                text = payload.decode("utf-8", "replace")
            return next((line.strip()[:200] for line in text.splitlines() if line.strip()), "")
    return ""


def _status_blocks(part: Message) -> list[Message]:
    payload = part.get_payload()
    if isinstance(payload, list):
        return [b for b in payload if isinstance(b, Message)]
    # Some parsers leave the report as text: its blocks are separated by blank lines.
    text = payload if isinstance(payload, str) else ""
    return [message_from_string(block) for block in re.split(r"\r?\n\r?\n", text) if block.strip()]


def _headers_of(part: Message) -> Message:
    payload = part.get_payload(decode=True) or b""
    return message_from_string(payload.decode("utf-8", "replace"))


def _ids_in(values: list) -> list[str]:
    return [i for v in values for i in _MSGID.findall(str(v))]


def _address(value) -> str:
    """"rfc822; hetang@example.cn" → "hetang@example.cn"."""
    text = str(value or "").split(";", 1)[-1].strip().strip("<>")
    return text.lower() if "@" in text else ""


def _diagnostic(block: Message) -> str:
    diagnostic = str(block.get("Diagnostic-Code") or "").split(";", 1)[-1]
    text = " ".join(diagnostic.split())
    return text or (f"status {str(block.get('Status')).strip()}" if block.get("Status") else "")
