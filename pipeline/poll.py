"""One pass over the mailbox: every new message processed and committed, then the outbox sent.
Each reply starts going out as soon as it is committed, while the pass goes on (outbox/early.py).

A message that fails is recorded (pipeline/failures.py), left where it is and retried on a
later pass; the pass goes on with the next one.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass, field

from outbox.compose import reply_message_id
from outbox.early import EarlySending
from outbox.queue import DeliveryReport, RetryPolicy, deliver_pending
from outbox.transports import transport_for
from parsers import sandbox
from pipeline import failures
from pipeline.errors import ConfigError
from pipeline.process import process_message, read_ahead
from pipeline.settings import Settings
from pipeline.sources import Incoming, source_for

log = logging.getLogger("intake.poll")
GROUP_MESSAGES = 25    # a group commit's size: the IMAP fetch batch
GROUP_SECONDS = 1.0    # ... or what a second of processing gathered
# The first message is taken in hand once the sandbox, started at the pass's start, has imported
# its readers (~0.4 s, overlapping the login and the first fetch), waiting this long at most: a
# worker killed during that import would count the kill against the message (failures.InFlight),
# and a message killed in hand three times is set aside.
READY_SECONDS = 10.0


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


def run_pass(settings: Settings, store, clock=utc_now, source=None,
             stop: threading.Event | None = None) -> PassReport:
    """Process what is new (and failures now due), then send what the outbox holds. With
    `stop` set, the message in hand is finished and the rest waits for the next run."""
    try:   # started now, the sandbox imports its readers while the mailbox is read
        sandbox.warm()
    except OSError as exc:   # no fork now (memory, process limit): the first document tries again
        log.warning("could not start the document reader process yet: %s", exc)
    if source is None:
        with source_for(settings.mailbox) as opened:
            return _pass_over(settings, store, clock, opened, stop)
    return _pass_over(settings, store, clock, source, stop)


def _pass_over(settings: Settings, store, clock, source, stop: threading.Event | None) -> PassReport:
    """run_pass with the mailbox open and the sandbox started."""
    report = PassReport()
    inflight = failures.InFlight(store.path)
    inflight.recover(store, clock())
    policy = RetryPolicy.from_settings(settings.smtp)
    try:
        transport = transport_for(settings.smtp)
    except ConfigError:   # its secret is missing: said at the end, once the messages are in
        transport = None
    sending = EarlySending.start(store, transport, clock(), policy) if transport is not None else None
    try:
        # A backlog is committed in groups: one fsync for up to GROUP_MESSAGES messages, or what
        # GROUP_SECONDS gathered (store.group_commit); a reply is handed to the sending thread
        # once its group is on disk.
        with store.group_commit():
            started = time.monotonic()
            for n, (incoming, following) in enumerate(_with_next(_to_take(source, store, clock())), start=1):
                if stop is not None and stop.is_set():
                    break
                if n == 1:   # see READY_SECONDS
                    sandbox.wait_ready(READY_SECONDS)
                report.read += 1
                _take(store, settings, source, incoming, clock(), report, inflight, sending, following)
                if n % GROUP_MESSAGES == 0 or time.monotonic() - started > GROUP_SECONDS:
                    store.sync()
                    started = time.monotonic()
    except BaseException:
        if sending is not None:   # what was sent is recorded; nothing more is sent
            sending.abort(store, clock())
        raise
    finally:
        read_ahead(None)   # stopped early: what was read ahead is let go
        inflight.close()
    if sending is not None:
        sending.finish(store, clock())
    # Still inside the mailbox session: a copy of each reply goes to its Sent folder over the
    # same login.
    report.delivery = deliver_pending(store, transport or transport_for(settings.smtp), clock(), policy,
                                      sent=source, early=sending)
    return report


def _with_next(messages):
    """Each message with the one after it (None for the last): its documents are read ahead."""
    current = next(messages, None)
    for following in messages:
        yield current, following
        current = following
    if current is not None:
        yield current, None


def _to_take(source, store, now: dt.datetime):
    """New messages, less those waiting after a failure; then failures due for a retry that
    the mailbox's own order will not bring back (IMAP UIDs below the ledger's mark)."""
    seen = set()
    for incoming in source.new_messages(store.ledger):
        seen.add(incoming.ref)
        if not failures.waiting(store, incoming.ref, now):
            yield incoming
    for failure in failures.due(store, now):
        if failure["ref"] not in seen:
            incoming = source.fetch_ref(failure["ref"])
            if incoming is not None:
                yield incoming


def _take(store, settings: Settings, source, incoming: Incoming, now: dt.datetime,
          report: PassReport, inflight: failures.InFlight, sending: EarlySending | None = None,
          following: Incoming | None = None) -> None:
    origin = {"folder": incoming.folder, "uid": incoming.uid, "uidvalidity": incoming.uidvalidity,
              "key": incoming.key}
    inflight.begin(incoming.ref, origin, incoming.raw)
    sent = []
    try:
        with store.transaction():
            submission = process_message(incoming.raw, incoming.received_at, store, settings, now,
                                         origin, oversize=incoming.oversize,
                                         read_next=following.raw if following else None)
            if not source.commit_after:
                source.mark_done(incoming, store.ledger)
            if sending is not None:   # the replies sent meanwhile, in the same commit
                sent = sending.fold(store, now)
    except Exception as exc:  # noqa: BLE001 — one bad message must not stop the pass
        failures.record(store, incoming.ref, origin, incoming.raw, failures.describe_exception(exc), now)
        report.failed += 1
        return
    finally:
        inflight.end()
    if sending is not None:
        sending.committed(store, sent)
    failures.resolve(store, incoming.ref)
    if source.commit_after:
        store.when_durable(lambda: source.mark_done(incoming, store.ledger))
    if submission is None:
        return
    if sending is not None:
        replies = [reply_message_id(submission["message_id"], kind, settings.smtp.from_address)
                   for kind in ("reply", "forward")]
        store.when_durable(lambda: sending.offer(store, replies, now))
    if submission["status"] == "skipped":
        report.skipped += 1
    else:
        report.recorded += 1
