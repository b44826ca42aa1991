"""One pass over the mailbox: every new message processed and committed, then the outbox sent."""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from outbox.queue import DeliveryReport, RetryPolicy, deliver_pending
from outbox.transports import transport_for
from pipeline.process import process_message
from pipeline.settings import Settings
from pipeline.sources import source_for

log = logging.getLogger("intake.poll")


@dataclass
class PassReport:
    read: int = 0
    recorded: int = 0
    skipped: int = 0
    failed: int = 0
    delivery: DeliveryReport = field(default_factory=DeliveryReport)

    def summary(self) -> str:
        d = self.delivery
        line = (f"read {self.read} new message(s): {self.recorded} recorded, {self.skipped} skipped, "
                f"{self.failed} failed; replies sent {d.sent}, failed {d.failed}, waiting {d.waiting}")
        return line + (f" ({d.error})" if d.error else "")


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def run_pass(settings: Settings, store, clock=utc_now) -> PassReport:
    report = PassReport()
    with source_for(settings.mailbox) as source:
        for incoming in source.new_messages(store.ledger):
            report.read += 1
            _take(store, settings, source, incoming, clock(), report)
        # Still inside the mailbox session: a copy of each reply goes to its Sent folder
        # over the same login.
        report.delivery = deliver_pending(store, transport_for(settings.smtp), clock(),
                                          RetryPolicy.from_settings(settings.smtp),
                                          on_sent=source.append_sent)
    return report


def _take(store, settings: Settings, source, incoming, now: dt.datetime, report: PassReport) -> None:
    origin = {"folder": incoming.folder, "uid": incoming.uid, "uidvalidity": incoming.uidvalidity,
              "key": incoming.key}
    try:
        with store.transaction():
            submission = process_message(incoming.raw, incoming.received_at, store, settings, now, origin)
            if not source.commit_after:
                source.mark_done(incoming, store.ledger)
    except Exception:  # noqa: BLE001 — one bad message must not stop the pass
        # Left in the mailbox and unmarked, so a later pass (or a fixed version) takes it again.
        log.exception("processing the message at %s failed; it stays in the mailbox", origin)
        report.failed += 1
        return
    if source.commit_after:
        source.mark_done(incoming, store.ledger)
    if submission is None:
        return
    if submission["status"] == "skipped":
        report.skipped += 1
    else:
        report.recorded += 1
