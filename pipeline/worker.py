"""`intake run`: the long-running worker.

It keeps one mailbox session open, takes new mail as it arrives (IMAP IDLE where the server
offers it, else every poll_seconds), sends the outbox as replies fall due, sends the day's
digest on time, and stops cleanly on SIGTERM or SIGINT after the message in hand. When the
mailbox or the SMTP server goes away it logs one line, retries with growing waits, and logs one
line when it is back. Between two messages it does the commands other `intake` processes queue
for it (pipeline/commands.py), waking within a second of one's arrival.
"""
from __future__ import annotations

import datetime as dt
import logging
import random
import threading
import time

from outbox.queue import stored_time
from parsers.convert import warm_office
from pipeline.commands import Context, serve_queue
from pipeline.digest import due_digest, send_digest
from pipeline.errors import MailboxError
from pipeline.poll import PassReport, run_pass, utc_now
from pipeline.reminders import reminders_due, send_reminders
from pipeline.settings import Settings
from pipeline.sources import source_for
from store.command_queue import CommandQueue

log = logging.getLogger("intake.worker")


class Outage:
    """One log line when a service goes away and one when it is back, not one per try."""

    def __init__(self, name: str):
        self.name = name
        self.since: dt.datetime | None = None

    def down(self, error: str, now: dt.datetime, fatal: bool = False) -> None:
        if self.since is None:
            self.since = now
            # fatal: waiting alone will not help (a refused login): the operator must act
            (log.error if fatal else log.warning)("%s unavailable: %s; retrying with growing waits",
                                                  self.name, error)

    def up(self, now: dt.datetime) -> None:
        if self.since is not None:
            log.warning("%s available again after %s", self.name, str(now - self.since).split(".")[0])
            self.since = None


class Backoff:
    """Growing waits with jitter: 1 s, 1.5 s, 2.25 s, ... up to `cap`, each between half and
    all: a server restart (seconds) costs seconds, a long outage a try every few minutes."""

    def __init__(self, base: float = 1.0, cap: float = 300.0, factor: float = 1.5):
        self.base, self.cap, self.factor, self.tries = base, cap, factor, 0

    def next(self) -> float:
        self.tries += 1
        full = min(self.cap, self.base * self.factor ** (self.tries - 1))
        return random.uniform(full / 2, full)

    def reset(self) -> None:
        self.tries = 0


class WakeOnCommand:
    """The stop event as the mailbox sources wait on it (`is_set`, `wait`), set also while a
    command waits in the queue: a wait for mail ends within a second of a command's arrival."""

    def __init__(self, stop: threading.Event, queue: CommandQueue):
        self.stop, self.queue = stop, queue

    def is_set(self) -> bool:
        return self.stop.is_set() or self.queue.waiting()

    def wait(self, timeout: float | None = None) -> bool:
        deadline = time.monotonic() + (timeout if timeout is not None else float("inf"))
        while not self.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.stop.wait(min(1.0, left))
        return True


def run_worker(settings: Settings, store, stop: threading.Event, clock=utc_now) -> None:
    # One LibreOffice kept running for the worker's life, not one started per legacy document.
    with warm_office():
        _run(settings, store, stop, clock)
    log.info("stopped")


def _run(settings: Settings, store, stop: threading.Event, clock) -> None:
    mailbox, smtp = Outage("the mailbox"), Outage("the SMTP server")
    said: set[str] = set()   # notices logged once per run
    backoff = Backoff()
    queue = CommandQueue(store.path)
    for request in queue.interrupted():
        log.warning("a command was interrupted by the previous worker's end, maybe half done: %s %s",
                    request.get("command"), request.get("args"))
    wake = WakeOnCommand(stop, queue)
    while not stop.is_set():
        try:
            with source_for(settings.mailbox) as source:
                mailbox.up(clock())
                backoff.reset()
                _serve(settings, store, stop, clock, source, smtp, queue, said)
        except MailboxError as exc:
            mailbox.down(str(exc), clock())
            # Commands need no mailbox (reprocess tries its own and reports the outage).
            deadline = time.monotonic() + backoff.next()
            while not stop.is_set() and wake.wait(deadline - time.monotonic()):
                serve_queue(lambda: Context(settings, store, clock()), queue)


def _serve(settings: Settings, store, stop: threading.Event, clock, source, smtp: Outage,
           queue: CommandQueue, said: set[str]) -> None:
    wake = WakeOnCommand(stop, queue)
    while not stop.is_set():
        # First what the operator asked for: what it changed (replies re-queued) goes out below.
        serve_queue(lambda: Context(settings, store, clock(), source), queue)
        report = run_pass(settings, store, clock, source, stop)
        if report.read:
            log.info("%s", report.summary())
        if report.delivery.error:
            smtp.down(report.delivery.error, clock(), report.delivery.fatal)
        elif report.delivery.sent:
            smtp.up(clock())
        _send_reminders_if_due(settings, store, clock(), source)
        _send_digest_if_due(settings, store, clock(), source, said)
        if not wake.is_set():
            source.wait_for_mail(_seconds_to_wait(settings, report, clock()), wake)


def _send_reminders_if_due(settings: Settings, store, now: dt.datetime, source) -> None:
    """Before the digest, so the digest lists the reminders sent that day."""
    day = reminders_due(settings, now)
    if day is not None:
        run = send_reminders(settings, store, day, now, sent=source)
        if run.queued:
            log.info("%d reminder(s) for %s queued", run.queued, day)


def _send_digest_if_due(settings: Settings, store, now: dt.datetime, source, said: set[str]) -> None:
    date = due_digest(settings, store, now)
    if date is not None and date > settings.campaign.end_date:
        if "campaign over" not in said:   # said once, not once a pass
            said.add("campaign over")
            log.warning("the campaign ended on %s ([campaign] ends): no more daily digests",
                        settings.campaign.end_date)
        return
    if date is not None:
        # Through the mailbox session too: what goes out with the digest is copied to Sent.
        outcome = send_digest(settings, store, date, now, sent=source)
        log.info("digest for %s queued (%s)", date, outcome.status)


def _seconds_to_wait(settings: Settings, report: PassReport, now: dt.datetime) -> float:
    """Until the next poll, or sooner when a waiting reply falls due."""
    wait = float(settings.mailbox.poll_seconds)
    if report.delivery.next_attempt_at:
        wait = min(wait, (stored_time(report.delivery.next_attempt_at) - now).total_seconds())
    return max(wait, 1.0)
