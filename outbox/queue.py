"""The outbox: replies are stored with the outcome they report, and sent from the store.

A reply is pending until the server accepts it (sent) or refuses it for good (failed). A
temporary refusal or an unreachable server leaves it pending for the next pass.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

from outbox.transports import DeliveryError, TransportUnavailable

log = logging.getLogger("intake.outbox")


@dataclass
class DeliveryReport:
    sent: int = 0
    failed: int = 0
    waiting: int = 0
    error: str = ""     # why delivery stopped early, for the operator
    fatal: bool = False  # the operator must act (login refused), not just wait


def enqueue(store, msg: EmailMessage, submission_id: str, kind: str, now: dt.datetime) -> None:
    """Call inside the transaction that records the submission's outcome."""
    store.outbox.add({
        "reply_id": msg["Message-ID"],
        "submission_id": submission_id,
        "kind": kind,
        "to": str(msg["To"]),
        "subject": str(msg["Subject"]),
        "status": "pending",
        "attempts": 0,
        "created_at": now.isoformat(),
        "sent_at": None,
        "last_error": "",
        "raw": msg.as_bytes().decode("utf-8", "surrogateescape"),
    })


def deliver_pending(store, transport, now: dt.datetime) -> DeliveryReport:
    report = DeliveryReport()
    pending = store.outbox.with_status("pending")
    if not pending:
        return report
    try:
        with transport:
            for reply in pending:
                transport.reconnect_if_needed()
                _deliver_one(store, transport, reply, now, report)
    except TransportUnavailable as exc:
        report.error = str(exc)
        report.fatal = exc.needs_operator
    report.waiting = len(store.outbox.with_status("pending"))
    return report


def _deliver_one(store, transport, reply: dict, now: dt.datetime, report: DeliveryReport) -> None:
    msg = BytesParser(policy=policy.SMTP).parsebytes(reply["raw"].encode("utf-8", "surrogateescape"))
    attempts = reply["attempts"] + 1
    try:
        transport.send(msg)
    except DeliveryError as exc:
        status = "failed" if exc.permanent else "pending"
        with store.transaction():
            store.outbox.update(reply["reply_id"], status=status, attempts=attempts,
                                last_error=str(exc))
        if exc.permanent:
            report.failed += 1
            log.warning("reply %s refused for good: %s", reply["reply_id"], exc)
        return
    with store.transaction():
        store.outbox.update(reply["reply_id"], status="sent", attempts=attempts,
                            sent_at=now.isoformat(), last_error="")
    report.sent += 1
