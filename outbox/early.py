"""Replies sent while the pass goes on: the waits of sending (SMTP round trips, the handover
marker's fsync) overlap the processing of the next messages.

A thread of its own sends, over one connection opened at its first reply; it never touches the
store (TinyDB is not thread-safe): it is handed a reply's bytes and tells what the server said.
The pass's own thread hands it each reply once the transaction that queued it is on disk
(the pass commits in groups: store.group_commit, when_durable),
and records the outcomes with outbox/queue.py's own functions: a reply sent is recorded in the
next message's transaction (or a small one of its own at the end). Each reply's handover marker
is written while its envelope goes to the server, durable before its final dot (the marker's
fsync overlaps the MAIL, RCPT and DATA round trips), and cleared only once its outcome is
recorded or the server has refused it, so a crash in between leaves it `uncertain`, never sent
twice. A refusal that pauses the server, or a server
that cannot be reached, stops the early sending; what is left goes with `deliver_pending` at the
end of the pass, as before, within the same `batch_size`.
"""
from __future__ import annotations

import datetime as dt
import logging
import queue
import random
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from outbox.queue import (DeliveryReport, Handover, RetryPolicy, _mark_uncertain, _refused,
                          _unavailable, due_replies, record_sent)
from outbox.transports import DeliveryError, TransportUnavailable

log = logging.getLogger("intake.outbox")

# While the sending thread runs, the interpreter offers the GIL to a waiting thread every
# SWITCH_SECONDS (Python's default is 5 ms): the pass's thread is busy with the CPU, and the
# sending thread wants the GIL back after each of a reply's ~9 socket calls, so with the default
# it waited up to 5 ms each time, most of a reply's ~20 ms.
SWITCH_SECONDS = 0.0005


@dataclass
class Outcome:
    reply_id: str
    error: Exception | None = None   # None: the server took it
    handed_over: bool = False        # the final dot was on its way when the error came


class EarlySending:
    """The sending thread of one pass and what the pass's thread knows of it."""

    def __init__(self, store, transport, policy: RetryPolicy, rng: random.Random | None = None):
        self.transport, self.policy = transport, policy
        self.rng = rng or random.Random()
        self.handover = Handover(store.path)
        self.report = DeliveryReport()
        self.tried = 0          # replies handed to the thread: they count in the batch
        self.unavailable: TransportUnavailable | None = None   # why sending stopped, if so
        self.stopped = False
        self._handed: dict[str, dict] = {}   # reply id → the reply, until its outcome is recorded
        self._sent: list[Outcome] = []       # taken by the server, not recorded yet
        self._failed: list[Outcome] = []     # refused or not sent, not recorded yet
        self._connected = False              # the thread's: the transport is entered
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._outcomes: queue.SimpleQueue = queue.SimpleQueue()
        self._abort = threading.Event()
        self._thread = threading.Thread(target=self._run, name="intake-send", daemon=True)
        self._marking = ThreadPoolExecutor(1, thread_name_prefix="intake-mark")   # markers set, cleared
        self._switch = sys.getswitchinterval()

    @classmethod
    def start(cls, store, transport, now: dt.datetime, policy: RetryPolicy) -> "EarlySending | None":
        """Recover an interrupted handover, then start sending (the replies already due first,
        as `deliver_pending` would); None while the server has asked for a pause."""
        Handover(store.path).recover(store, transport, now)
        server = getattr(transport, "server", None)
        if server and store.pauses.active(server, now):
            return None
        sending = cls(store, transport, policy)
        sys.setswitchinterval(SWITCH_SECONDS)
        sending._thread.start()
        due = due_replies(store.outbox.with_status("pending"), now)
        sending.offer(store, [reply["reply_id"] for reply in due], now)
        return sending

    # The pass's thread ------------------------------------------------------------------

    def offer(self, store, reply_ids: list[str], now: dt.datetime) -> None:
        """Call once the transaction that queued these replies is on disk: the pending ones
        that are due go to the thread, while the batch has room. Outcomes that came back are
        recorded first (refusals: each in its own transactions, as `deliver_pending` does)."""
        self.settle(store, now)
        for reply_id in reply_ids:
            if self.stopped or self.tried >= self.policy.batch_size:
                return
            if reply_id in self._handed:   # already with the thread: no need to read it again
                continue
            reply = store.outbox.get(reply_id)
            if reply is None or reply["status"] != "pending" or not due_replies([reply], now):
                continue
            raw = reply["raw"].encode("utf-8", "surrogateescape")   # read here, not in the thread
            self._handed[reply_id] = reply
            self.tried += 1
            self._inbox.put((reply_id, raw))

    def fold(self, store, now: dt.datetime) -> list[Outcome]:
        """Inside a transaction (the next message's): record the replies the server took so far.
        Give what it returns to `committed` once that transaction is committed; if it is not,
        they are recorded again later."""
        self._collect()
        for outcome in self._sent:
            record_sent(store, self._handed[outcome.reply_id], now)
        return list(self._sent)

    def committed(self, store, folded: list[Outcome]) -> None:
        """The transaction that recorded `folded` is committed: their markers go once it is
        on disk (at once outside a group commit)."""
        for outcome in folded:
            self._sent.remove(outcome)
            del self._handed[outcome.reply_id]

        def on_disk() -> None:
            for outcome in folded:
                # by the markers' own thread: the unlink of a file the journal has just made
                # durable can wait milliseconds for it, and a marker of a reply recorded as
                # sent is only cleared if a crash leaves it (Handover.recover)
                self._marking.submit(self.handover.end, outcome.reply_id)
                self.report.sent += 1
        store.when_durable(on_disk)

    def settle(self, store, now: dt.datetime) -> None:
        """Record the refusals and errors that came back (each as `deliver_pending` would)."""
        self._collect()
        while self._failed:
            self._record_failure(store, self._failed.pop(0), now)

    def finish(self, store, now: dt.datetime) -> None:
        """The pass is done: wait for the thread, then record every outcome."""
        self._join()
        try:
            self._record_all(store, now)
        finally:
            self._marking.shutdown()   # its last clears are done

    def abort(self, store, now: dt.datetime) -> None:
        """The pass failed: nothing more is sent (the reply on its way is finished), and what
        the server took is recorded. If recording fails too, the markers stay: `uncertain`."""
        self._abort.set()
        self._join()
        try:
            self._record_all(store, now)
        finally:
            self._marking.shutdown()

    def _join(self) -> None:
        self._inbox.put(None)
        self._thread.join()
        sys.setswitchinterval(self._switch)

    def _record_all(self, store, now: dt.datetime) -> None:
        self.settle(store, now)
        if self._sent:
            with store.transaction():
                folded = self.fold(store, now)
            self.committed(store, folded)

    def _collect(self) -> None:
        """Take what the thread reported: the replies sent are recorded by `fold`, the rest by
        `settle`, outside a transaction."""
        while True:
            try:
                outcome = self._outcomes.get_nowait()
            except queue.Empty:
                return
            (self._sent if outcome.error is None else self._failed).append(outcome)

    def _record_failure(self, store, outcome: Outcome, now: dt.datetime) -> None:
        reply = self._handed.pop(outcome.reply_id)
        exc = outcome.error
        if isinstance(exc, DeliveryError):   # the thread cleared its marker: the server answered
            if _refused(store, self.transport, reply, exc, now, self.report, self.policy, self.rng):
                self._stop()
            return
        if outcome.handed_over:   # the connection broke after the final dot: the server may have it
            _mark_uncertain(store, outcome.reply_id, now)
            store.when_durable(lambda: self.handover.end(outcome.reply_id))
        if not isinstance(exc, TransportUnavailable):   # our own bug, raised in the thread
            raise exc
        # Handed and never tried: the thread stops at its first error, which came last.
        rest = [reply, *(r for r in self._handed.values() if r["reply_id"] not in
                         {o.reply_id for o in self._sent})]
        for untried in rest[1:]:
            del self._handed[untried["reply_id"]]
        _unavailable(store, self.transport, exc, rest, now, self.policy, self.rng, self.report)
        self.unavailable = None if exc.throttled else exc
        self._stop()

    def _stop(self) -> None:
        self.stopped = True
        self._abort.set()

    # The sending thread -------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while (item := self._inbox.get()) is not None:
                if self._abort.is_set():
                    continue   # not sent: it stays pending, for deliver_pending or a later pass
                outcome = self._send(*item)
                self._outcomes.put(outcome)
                if outcome.error is not None and not _goes_on(outcome.error):
                    self._abort.set()
        finally:
            if self._connected:
                self.transport.__exit__(None, None, None)

    def _send(self, reply_id: str, raw: bytes) -> Outcome:
        outcome = Outcome(reply_id)
        marking = self._marking.submit(self.handover.begin, reply_id)

        def handing_over() -> None:
            marking.result()   # the marker is on disk before the final dot leaves
            outcome.handed_over = True

        try:
            if self._connected:
                self.transport.reconnect_if_needed()
            else:   # the first reply opens the connection (`with transport` over the loop)
                self.transport.__enter__()
                self._connected = True
            self.transport.send(raw, handing_over=handing_over)
        except DeliveryError as exc:
            self._unmark(reply_id, marking)   # the server answered: nothing is uncertain
            outcome.error = exc
        except Exception as exc:  # noqa: BLE001 — told to the pass's thread, which records it
            if not outcome.handed_over:   # the final dot never left: nothing is uncertain
                self._unmark(reply_id, marking)
            outcome.error = exc
        return outcome

    def _unmark(self, reply_id: str, marking: Future) -> None:
        wait([marking])   # not cleared before it is written
        self.handover.end(reply_id)


def _goes_on(error: Exception) -> bool:
    """After a refusal of one reply the next is sent; not after a pause or a broken connection."""
    return isinstance(error, DeliveryError) and not error.throttled
