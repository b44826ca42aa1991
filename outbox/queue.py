"""The outbox: replies are stored with the outcome they report, and sent from the store.

A reply is pending until the server accepts it (sent) or refuses it for good (failed); a bounce
that comes back later makes it undeliverable. A temporary refusal or an unreachable server
leaves it pending with a `next_attempt_at` that backs off exponentially, with jitter; 163's
spam and rate refusals (`554 DT:SPM`, `DT:SUM`, `MI:…`) wait 15 minutes at least. A throttling
answer (163's `421 HL:ICC`, `451 MI:SFQ`, `450 MI:DMC`) pauses all sending to that server, a
pause kept in the store so every pass and worker honours it. Each reply sent is copied into the
mailbox's Sent folder, retried until it is kept. The clock is always passed in.
"""
from __future__ import annotations

import datetime as dt
import logging
import random
from dataclasses import dataclass
from email.generator import NLCRE, BytesGenerator
from email.message import EmailMessage
from io import BytesIO
from typing import Protocol

from outbox.manners import ReplyLimits, reply_allowed, thread_of
from outbox.transports import DeliveryError, TransportUnavailable
from store.marker import Markers

log = logging.getLogger("intake.outbox")

STATUSES = ("pending", "sent", "failed", "undeliverable", "uncertain")
COPY_TRIES = 10   # a copy in the Sent folder failing on this many passes is given up (logged)
UNCERTAIN_NOTE = ("intake stopped while the server was taking this reply: it may or may not have "
                  "been delivered, so it is not sent again by itself (`intake outbox --retry` does)")


class SentFolder(Protocol):
    """The mailbox's Sent folder, where a copy of each reply sent is kept: the mailbox source
    itself (pipeline/sources.py), passed as it is to deliver_pending and keep_sent_copies.

    `keeps_sent_copies` False: the mailbox says up front that it keeps none (Maildir), so
    nothing is appended and no reply's body is read. `append_sent(raw)` appends one copy: True
    when kept, False when the mailbox keeps none (an IMAP server without a \\Sent folder); it
    raises when the copy failed, and the copy is tried again on a later call. Optionally,
    `append_sent_all(raws)` appends many copies in one command, all or none (IMAP
    MULTIAPPEND): as `append_sent`, or None when the server cannot, and `append_sent` does
    them one by one."""

    keeps_sent_copies: bool

    def append_sent(self, raw: bytes) -> bool: ...


@dataclass
class DeliveryReport:
    sent: int = 0
    failed: int = 0
    waiting: int = 0
    error: str = ""     # why delivery stopped early, for the operator
    fatal: bool = False  # the operator must act (login refused), not just wait
    next_attempt_at: str = ""  # the earliest pending reply's next try, ISO time
    paused_until: str = ""     # the server asked us to slow down: nothing goes to it until then


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long temporary failures are retried; how many replies per connection."""
    base_seconds: float = 60.0
    max_seconds: float = 3600.0
    give_up_hours: float = 24.0
    batch_size: int = 10
    spam_seconds: float = 900.0     # 163's spam and rate refusals (554 DT:SPM ...): 15 min at least

    @classmethod
    def from_settings(cls, smtp) -> "RetryPolicy":
        """From the [smtp] settings (any object with these attributes; defaults otherwise)."""
        return cls(base_seconds=getattr(smtp, "retry_base_seconds", cls.base_seconds),
                   max_seconds=getattr(smtp, "retry_max_seconds", cls.max_seconds),
                   give_up_hours=getattr(smtp, "retry_give_up_hours", cls.give_up_hours),
                   batch_size=getattr(smtp, "batch_size", cls.batch_size),
                   spam_seconds=getattr(smtp, "spam_retry_seconds", cls.spam_seconds))

    def delay(self, attempts: int, rng: random.Random) -> dt.timedelta:
        """Exponential backoff with "equal jitter": between half and all of base * 2^(n-1),
        so replies deferred together do not all come back in the same second."""
        ceiling = min(self.max_seconds, self.base_seconds * 2 ** max(attempts - 1, 0))
        return dt.timedelta(seconds=ceiling / 2 + rng.random() * ceiling / 2)

    def spam_delay(self, refusals: int, rng: random.Random) -> dt.timedelta:
        """After the n-th spam or rate refusal: never less than `spam_seconds`, doubling up to
        four times that (or `max_seconds`, the larger), plus up to a fifth more at random."""
        cap = max(self.max_seconds, self.spam_seconds * 4)
        floor = min(cap, self.spam_seconds * 2 ** max(refusals - 1, 0))
        return dt.timedelta(seconds=floor * (1 + rng.random() / 5))


def enqueue(store, msg: EmailMessage, submission_id: str, kind: str, now: dt.datetime,
            thread: list[str] | None = None) -> None:
    """Call inside the transaction that records the submission's outcome. `thread`: the ids the
    answered email referred to (In-Reply-To, References), for the per-thread manners rule."""
    store.outbox.add({
        # str(): the header object itself would be stored, and every copy of the reply
        # (outbox.recent, once per reply queued) would rebuild it through the header registry.
        "reply_id": str(msg["Message-ID"]),
        "submission_id": submission_id,
        "kind": kind,
        "to": str(msg["To"]),
        "subject": str(msg["Subject"]),
        "status": "pending",
        "attempts": 0,
        "created_at": now.isoformat(),
        "queued_at": now.isoformat(),
        "next_attempt_at": now.isoformat(),
        "sent_at": None,
        "last_error": "",
        "thread": list(dict.fromkeys([*(thread or []), *str(msg.get("References", "")).split()])),
        "raw": _as_bytes(msg).decode("utf-8", "surrogateescape"),
    })


class _BodyAtOnce(BytesGenerator):
    """BytesGenerator writing a part's text in one piece: the standard one splits it into its
    lines and writes each line and each line end apart (a reply's two parts: ~300 writes, each
    encoding its string). Splitting at every line end and joining with the generator's line end
    is NLCRE.sub; the bytes are the same."""

    def _write_lines(self, lines):
        if lines:
            self.write(NLCRE.sub(self._NL, lines))


def _as_bytes(msg: EmailMessage) -> bytes:
    """msg.as_bytes(), through _BodyAtOnce."""
    fp = BytesIO()
    _BodyAtOnce(fp, mangle_from_=False, policy=msg.policy).flatten(msg)
    return fp.getvalue()


def enqueue_reply(store, msg: EmailMessage, submission_id: str, now: dt.datetime, limits,
                  in_reply_to: str = "", references: list[str] | None = None) -> str | None:
    """Queue the reply to a submission unless the manners caps forbid it (a loop, a flood).
    Returns None when queued, else the reason no reply goes out. `limits`: the [smtp] settings."""
    thread_ids = thread_of(in_reply_to, references or [])
    # Both caps look back an hour at most (or the thread window): only that much history is
    # read, only the replies to this address or in this thread (the outbox's index finds them),
    # and "one of ours?" is asked of the outbox's index, not of a copy of every reply.
    window = max(dt.timedelta(hours=1), dt.timedelta(minutes=getattr(
        limits, "thread_window_minutes", ReplyLimits.thread_window_minutes)))
    to, asked = str(msg["To"]).strip().lower(), set(thread_ids)

    def concerned(reply: dict) -> bool:   # the same address, or the same thread
        return (reply["to"].strip().lower() == to or reply["reply_id"] in asked
                or bool(asked.intersection(reply.get("thread") or [])))

    history = store.outbox.recent(now - window, concerned, to=to, thread=thread_ids)
    reason = reply_allowed(history, str(msg["To"]),
                           thread_ids, now, limits, ours=store.outbox)
    if reason is None:
        enqueue(store, msg, submission_id, "reply", now, thread=thread_ids)
    else:
        log.warning("no reply to %s for %s: %s", msg["To"], submission_id, reason)
    return reason


def due_replies(pending: list[dict], now: dt.datetime) -> list[dict]:
    """Pending replies whose next attempt is due, oldest first."""
    due = [r for r in pending if stored_time(r.get("next_attempt_at") or r["created_at"]) <= now]
    return sorted(due, key=lambda r: (r.get("next_attempt_at") or "", r["created_at"]))


def deliver_pending(store, transport, now: dt.datetime, policy: RetryPolicy | None = None,
                    rng: random.Random | None = None, sent: SentFolder | None = None,
                    early=None) -> DeliveryReport:
    """The one way replies (and digests) leave: send the due ones, at most `policy.batch_size`
    over one connection, unless the server asked for a pause; then keep the copies in `sent`,
    the mailbox's Sent folder, that are due. Without it (the digest command has no mailbox
    session) the copies wait, recorded, for the next pass.

    `early` (outbox/early.py), finished: the replies the pass already sent while it went on.
    They count in its report and in the batch; when the server was unreachable then, the rest
    is not tried again in this pass, as if it had all gone over one connection."""
    policy = policy or RetryPolicy()
    rng = rng or random.Random()
    report = early.report if early is not None else DeliveryReport()
    handover = Handover(store.path)
    handover.recover(store, transport, now)
    server = getattr(transport, "server", None)
    if not (server and store.pauses.active(server, now)):
        budget = policy.batch_size - (early.tried if early is not None else 0)
        batch = due_replies(store.outbox.with_status("pending"), now)[:max(budget, 0)]
        if batch and early is not None and early.unavailable is not None:
            _unavailable(store, transport, early.unavailable, batch, now, policy, rng, report)
        elif batch:
            _send_batch(store, transport, batch, now, report, policy, rng, handover)
    if report.sent:
        _pause_over(store, server)
    if sent is not None:
        keep_sent_copies(store, sent, now)
    _note_waiting(store, server, now, report)
    return report


def _send_batch(store, transport, batch: list[dict], now: dt.datetime, report: DeliveryReport,
                policy: RetryPolicy, rng: random.Random, handover: "Handover") -> None:
    """Over one connection, until the batch is done or the server asks us to slow down."""
    done = 0
    try:
        with transport:
            for reply in batch:
                transport.reconnect_if_needed()
                paused = _deliver_one(store, transport, reply, now, report, policy, rng, handover)
                done += 1
                if paused:
                    return
    except TransportUnavailable as exc:
        _unavailable(store, transport, exc, batch[done:], now, policy, rng, report)


def _unavailable(store, transport, exc: TransportUnavailable, rest: list[dict], now: dt.datetime,
                 policy: RetryPolicy, rng: random.Random, report: DeliveryReport) -> None:
    """No connection to the server (or it broke): `rest`, the replies of the batch not sent,
    the first of them the one tried, wait."""
    if exc.throttled:   # turned away at the door: 163's 421 HL:ICC greeting
        _pause_server(store, transport, str(exc), now, policy, rng, report, tried=rest[0])
        return
    report.error = str(exc)
    report.fatal = exc.needs_operator
    if not exc.needs_operator:  # a refused login waits for the operator, not a backoff
        for reply in rest:
            _retry_later(store, reply, str(exc), now, policy, rng, report)


def _note_waiting(store, server: str | None, now: dt.datetime, report: DeliveryReport) -> None:
    """What still waits, and when the next try can be: never before the server's pause ends."""
    waiting = store.outbox.with_status("pending")
    report.waiting = len(waiting)
    pause = store.pauses.active(server, now) if server else None
    report.paused_until = pause["until"] if pause else ""
    soonest = min((r.get("next_attempt_at") or "" for r in waiting), default="")
    if soonest and pause:
        soonest = max(soonest, pause["until"], key=stored_time)
    report.next_attempt_at = soonest


def _deliver_one(store, transport, reply: dict, now: dt.datetime, report: DeliveryReport,
                 policy: RetryPolicy, rng: random.Random, handover: "Handover") -> bool:
    """Send one reply and record the outcome. True when the server paused all sending."""
    # The stored reply was folded when it was composed: its bytes are sent as they are.
    raw = reply["raw"].encode("utf-8", "surrogateescape")
    reply_id = reply["reply_id"]
    try:
        transport.send(raw, handing_over=lambda: handover.begin(reply_id))
    except DeliveryError as exc:
        handover.end(reply_id)  # the server answered: nothing is uncertain
        return _refused(store, transport, reply, exc, now, report, policy, rng)
    except TransportUnavailable:
        if handover.active(reply_id):  # the connection broke after the final dot: the server may have it
            _mark_uncertain(store, reply_id, now)
            handover.end(reply_id)
        raise
    with store.transaction():
        record_sent(store, reply, now)
    handover.end(reply_id)
    report.sent += 1
    return False


def record_sent(store, reply: dict, now: dt.datetime) -> None:
    """The server took the reply. Inside a transaction."""
    store.outbox.update(reply["reply_id"], status="sent", attempts=reply["attempts"] + 1,
                        sent_at=now.isoformat(), last_error="", next_attempt_at=None, copy="due")


def _refused(store, transport, reply: dict, exc: DeliveryError, now: dt.datetime,
             report: DeliveryReport, policy: RetryPolicy, rng: random.Random) -> bool:
    """Record the server's refusal of one reply. True when it paused all sending."""
    if exc.permanent:
        with store.transaction():
            store.outbox.update(reply["reply_id"], status="failed", attempts=reply["attempts"] + 1,
                                last_error=str(exc), failed_at=now.isoformat())
        report.failed += 1
        log.warning("reply %s refused for good: %s", reply["reply_id"], exc)
        return False
    if exc.throttled:
        _pause_server(store, transport, str(exc), now, policy, rng, report, tried=reply,
                      spam=exc.spam)
        return True
    _retry_later(store, reply, str(exc), now, policy, rng, report, spam=exc.spam)
    return False


class Handover:
    """The replies whose final DATA dot is on its way, each named in a marker of its own
    (store/marker.py, STORE.sending.TAG) set before the dot is sent and cleared once the
    server's answer is recorded: while a pass goes on, several may be sent and not recorded yet
    (outbox/early.py). A marker found later means a crash in between: the reply is `uncertain`,
    never sent twice by itself. begin/end may be called from the thread that sends."""

    def __init__(self, store_path):
        self.markers = Markers(store_path, "sending")

    def begin(self, reply_id: str) -> None:
        self.markers.marker(reply_id).set(reply_id)

    def active(self, reply_id: str | None = None) -> bool:
        """Whether this reply's marker (any reply's, without one) is set."""
        if reply_id is not None:
            return self.markers.marker(reply_id).is_set()
        return bool(self.markers.all())

    def end(self, reply_id: str | None = None) -> None:
        """Clear this reply's marker (every marker, without one)."""
        for marker in [self.markers.marker(reply_id)] if reply_id is not None else self.markers.all():
            marker.clear()

    def recover(self, store, transport, now: dt.datetime) -> None:
        for marker in self.markers.all():
            reply_id = marker.get()
            reply = store.outbox.get(reply_id) if reply_id else None
            if reply is not None and reply["status"] == "pending":
                delivered = getattr(transport, "delivered", None)
                if delivered is None:
                    _mark_uncertain(store, reply_id, now)
                elif delivered(reply_id):
                    with store.transaction():
                        store.outbox.update(reply_id, status="sent", sent_at=now.isoformat(),
                                            attempts=reply["attempts"] + 1, next_attempt_at=None,
                                            copy="due")
            marker.clear()


def _mark_uncertain(store, reply_id: str, now: dt.datetime) -> None:
    with store.transaction():
        store.outbox.update(reply_id, status="uncertain", last_error=UNCERTAIN_NOTE,
                            failed_at=now.isoformat())
    log.warning("reply %s: %s", reply_id, UNCERTAIN_NOTE)


def _retry_later(store, reply: dict, error: str, now: dt.datetime, policy: RetryPolicy,
                 rng: random.Random, report: DeliveryReport, spam: bool = False,
                 until: dt.datetime | None = None) -> str:
    """A temporary failure: back off, or give up once the reply has waited too long. A spam
    refusal waits `spam_seconds` at least, growing with each one; `until`: the server's pause."""
    attempts = reply["attempts"] + 1
    queued = stored_time(reply.get("queued_at") or reply["created_at"])
    if now - queued >= dt.timedelta(hours=policy.give_up_hours):
        with store.transaction():
            store.outbox.update(reply["reply_id"], status="failed", attempts=attempts,
                                last_error=f"gave up after {policy.give_up_hours:g} h: {error}",
                                failed_at=now.isoformat())
        report.failed += 1
        log.warning("reply %s given up after %g h: %s", reply["reply_id"], policy.give_up_hours, error)
        return ""
    refusals = reply.get("spam_refusals", 0) + (1 if spam else 0)
    if until is None:
        until = now + (policy.spam_delay(refusals, rng) if spam else policy.delay(attempts, rng))
    with store.transaction():
        store.outbox.update(reply["reply_id"], attempts=attempts, last_error=error,
                            next_attempt_at=until.isoformat(), spam_refusals=refusals)
    if spam:
        log.warning("reply %s refused under the server's spam or rate rules (%s); sent again "
                    "after %s", reply["reply_id"], error, until.isoformat(timespec="seconds"))
    return until.isoformat()


def _pause_server(store, transport, error: str, now: dt.datetime, policy: RetryPolicy,
                  rng: random.Random, report: DeliveryReport, tried: dict | None,
                  spam: bool = False) -> None:
    """The server asked us to slow down (421, 450, 451, a rate marker): nothing more goes to it
    until the pause is over, recorded in the store so the next pass or worker honours it too.
    The pauses grow while the server keeps asking. The reply tried waits as long."""
    server = getattr(transport, "server", "")
    earlier = store.pauses.get(server) if server else None
    count = (earlier or {}).get("count", 0) + 1
    until = now + (policy.spam_delay(count, rng) if spam else policy.delay(count, rng))
    if server:
        with store.transaction():
            store.pauses.put(server, until.isoformat(), error, count)
    if tried is not None:
        _retry_later(store, tried, error, now, policy, rng, report, spam=spam, until=until)
    report.paused_until = until.isoformat()
    log.warning("the SMTP server asks us to slow down: %s; nothing is sent to %s until %s",
                error, server or "it", until.isoformat(timespec="seconds"))


def _pause_over(store, server: str | None) -> None:
    """A reply went through: the next throttling answer starts again from a short pause."""
    if server and server in store.pauses:
        with store.transaction():
            store.pauses.remove(server)


COPY_BATCH = 100   # copies appended to the Sent folder in one command (and one commit)


def keep_sent_copies(store, sent: SentFolder, now: dt.datetime) -> int:
    """Copy every sent reply whose copy is due into the Sent folder: COPY_BATCH at a time when
    it has `append_sent_all` (all or none of them kept, recorded in one commit), else one by
    one. A failed copy stays due, is logged and is tried again on the next call; after
    COPY_TRIES calls it is given up. A mailbox that keeps no copies has them all recorded as
    "none" in one commit, their bodies never read from the file store."""
    due = store.outbox.copies_due()
    if not sent.keeps_sent_copies:
        if due:
            _copies_made(store, due, "none", now)
        return 0
    kept = 0
    append_all = getattr(sent, "append_sent_all", None)
    while due and append_all is not None:
        batch = due[:COPY_BATCH]
        try:
            appended = append_all([_raw_bytes(reply) for reply in batch])
        except Exception as exc:  # noqa: BLE001 — the replies are out; their copies are retried later
            _copies_failed(store, batch, exc)
            return kept
        if appended is None:   # the server appends one message a command
            break
        _copies_made(store, batch, "kept" if appended else "none", now)
        kept += len(batch) if appended else 0
        due = due[COPY_BATCH:]
    # One by one, each kept copy recorded at once (a crash must not append it twice). A mailbox
    # without a \Sent folder (IMAP) appends nothing: those are recorded together, one commit.
    unkept = []
    for reply in due:
        try:
            appended = sent.append_sent(_raw_bytes(reply))
        except Exception as exc:  # noqa: BLE001 — the reply is out; its copy is retried later
            _copies_failed(store, [reply], exc)
            break  # the mailbox session is likely broken: the rest waits for the next pass
        if appended:
            _copies_made(store, [reply], "kept", now)
            kept += 1
        else:
            unkept.append(reply)
    if unkept:
        _copies_made(store, unkept, "none", now)
    return kept


def _raw_bytes(reply: dict) -> bytes:
    return reply["raw"].encode("utf-8", "surrogateescape")


def _copies_made(store, replies: list[dict], state: str, now: dt.datetime) -> None:
    with store.transaction():
        for reply in replies:
            store.outbox.update(reply["reply_id"], copy=state, copied_at=now.isoformat())


def _copies_failed(store, replies: list[dict], exc: Exception) -> None:
    error = str(exc) or type(exc).__name__
    with store.transaction():
        for reply in replies:
            tries = reply.get("copy_attempts", 0) + 1
            store.outbox.update(reply["reply_id"], copy="failed" if tries >= COPY_TRIES else "due",
                                copy_attempts=tries, copy_error=error)
    for reply in replies:
        given_up = reply.get("copy_attempts", 0) + 1 >= COPY_TRIES
        log.warning("reply %s sent, but no copy kept in the Sent folder (%s): %s", reply["reply_id"],
                    "given up" if given_up else "tried again on the next pass", error)


def requeue_failed(store, now: dt.datetime) -> int:
    """`intake outbox --retry`: failed and uncertain replies become pending again, due now,
    with a fresh give-up period. Undeliverable ones stay: their address bounced."""
    failed = store.outbox.with_status("failed", "uncertain")
    with store.transaction():
        for reply in failed:
            store.outbox.update(reply["reply_id"], status="pending", queued_at=now.isoformat(),
                                next_attempt_at=now.isoformat())
    return len(failed)


def stored_time(iso: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(iso)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)
