"""The commands that write the store, done here or by the running worker.

Each is a function (context, **args) -> Outcome, registered by name. The command line calls
`perform`: with no worker running it takes the store's lock and calls the function itself;
while `intake run` holds the lock it queues the command (store/command_queue.py), the worker
calls the same function between two messages (`serve_queue`), and the command line prints the
worker's answer. A new command is one registered function.
"""
from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field

from outbox.transports import TransportUnavailable
from pipeline.errors import IntakeError
from pipeline.settings import Settings
from store.command_queue import CommandQueue
from store.repository import Store, StoreBusy, StoreError, writer_holds

log = logging.getLogger("intake.commands")
WAIT_SECONDS = 60     # how long the command line waits for the worker's answer


@dataclass
class Outcome:
    """What a command tells its caller: lines for stdout, warnings for stderr, an error (exit 1)."""
    out: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    by_worker: int | None = None      # the worker's pid, when it did the command


@dataclass
class Context:
    settings: Settings
    store: Store
    now: dt.datetime
    source: object = None     # the worker's open mailbox session, when there is one


COMMANDS = {}


def command(name: str):
    def register(func):
        COMMANDS[name] = func
        return func
    return register


def perform(settings: Settings, name: str, args: dict, clock, wait_seconds: float = WAIT_SECONDS) -> Outcome:
    """Do a writing command here, or through the running worker when it holds the store."""
    store = Store(settings.store.path, settings.store.files)
    try:
        try:
            store.lock(role=name)
        except StoreBusy as busy:
            if busy.holder.get("role") != "run":
                raise
            store.close()
            return _through_worker(settings, name, args, clock, busy.holder, wait_seconds)
        return run_command(Context(settings, store, clock()), name, args)
    finally:
        store.close()


def run_command(ctx: Context, name: str, args: dict) -> Outcome:
    """Call a registered command; the errors a user can cause become the outcome's error line."""
    try:
        return COMMANDS[name](ctx, **args)
    except (IntakeError, StoreError, TransportUnavailable) as exc:
        return Outcome(error=str(exc))


def _through_worker(settings: Settings, name: str, args: dict, clock, holder: dict,
                    wait_seconds: float) -> Outcome:
    queue = CommandQueue(settings.store.path)
    request = queue.submit(name, args)
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        result = queue.result(request)
        if result is not None:
            queue.forget(request)
            return Outcome(out=result["out"], warnings=result["err"][:-1] if result["exit"] else result["err"],
                           error=result["err"][-1] if result["exit"] else None, by_worker=holder["pid"])
        if not queue.taken(request) and not writer_holds(settings.store.path) and queue.withdraw(request):
            return perform(settings, name, args, clock, wait_seconds)   # it stopped: do it here
        time.sleep(0.2)
    if queue.withdraw(request):
        return Outcome(error=f"the running worker (pid {holder['pid']}) did not take the command within "
                             f"{wait_seconds:g} s (busy with a long message?); nothing was done: try again")
    return Outcome(error=f"the running worker (pid {holder['pid']}) took the command but has not finished "
                         f"it within {wait_seconds:g} s; it goes on: see its log")


def serve_queue(ctx_for, queue: CommandQueue) -> int:
    """The worker's side: do every queued command, each in turn; returns how many.
    `ctx_for()` gives a fresh Context (the time now). A command never stops the worker."""
    done = 0
    while (claimed := queue.claim_next()) is not None:
        name, request = claimed
        outcome = _serve_one(ctx_for(), request)
        queue.answer(name, 1 if outcome.error else 0, outcome.out,
                     outcome.warnings + ([outcome.error] if outcome.error else []))
        log.info("command %s done%s", request.get("command"), f": {outcome.error}" if outcome.error else "")
        done += 1
    return done


def _serve_one(ctx: Context, request: dict) -> Outcome:
    name, args = request.get("command"), request.get("args")
    if name not in COMMANDS or not isinstance(args, dict):
        return Outcome(error=f"the worker does not know the command {name!r}")
    try:
        return run_command(ctx, name, args)
    except Exception as exc:     # a bug in one command must not stop the service
        log.exception("command %s failed", name)
        return Outcome(error=f"the worker failed on {name}: {exc.__class__.__name__}: {exc}")


# The commands. Imports are inside each, so `intake status` does not pay for them.

@command("mark")
def mark(ctx: Context, name: str, county: str, status: str, note: str) -> Outcome:
    from pipeline.review import mark_candidate

    from outbox.compose import REVIEW_WORDS

    mark_candidate(ctx.store, county, name, status, note, ctx.now, ctx.settings.campaign.timezone)
    return Outcome(out=[f"{county} {name}: {REVIEW_WORDS[status]} ({status})"])


@command("answered")
def answered(ctx: Context, message_id: str, note: str) -> Outcome:
    from pipeline.questions import mark_answered

    done = mark_answered(ctx.store, ctx.settings, message_id, ctx.now, note)
    return Outcome(out=[f"{message_id} ({done.get('county')}): answered at "
                        f"{done['answered_at'][:16].replace('T', ' ')}"])


@command("outbox-retry")
def outbox_retry(ctx: Context) -> Outcome:
    from outbox.queue import requeue_failed

    count = requeue_failed(ctx.store, ctx.now)
    return Outcome(out=[f"re-queued {count} failed reply(ies) for the next pass"])


@command("digest")
def digest(ctx: Context, date: str | None, force: bool) -> Outcome:
    from pipeline.digest import local_today, send_digest

    day = dt.date.fromisoformat(date) if date else local_today(ctx.settings, ctx.now)
    # In the worker, its mailbox session keeps the copies in Sent at once; here they are
    # recorded as due and copied by the next pass.
    outcome = send_digest(ctx.settings, ctx.store, day, ctx.now, force=force, sent=ctx.source)
    if outcome.queued:
        line = (f"digest for {day} queued for {', '.join(ctx.settings.digest.to)} "
                f"({outcome.message_id}): {outcome.status}")
    elif outcome.status == "pending":
        line = (f"digest for {day} is already queued ({outcome.message_id}) and waits in the "
                f"outbox for its next attempt; nothing new queued")
    else:
        line = (f"digest for {day} was already {outcome.status} ({outcome.message_id}); "
                f"nothing new queued (use --force to send it again)")
    result = Outcome(out=[line])
    if outcome.delivery.error:
        if outcome.delivery.fatal:
            result.error = f"not sent yet: {outcome.delivery.error}"
        else:
            result.warnings.append(f"not sent yet: {outcome.delivery.error}")
    return result


@command("reprocess")
def reprocess(ctx: Context, message: str) -> Outcome:
    from pipeline import failures
    from pipeline.poll import run_pass

    if failures.retry_now(ctx.store, message, ctx.now) is None:
        raise IntakeError(f"no failed message matches {message}; see `intake failed`")
    report = run_pass(ctx.settings, ctx.store, source=ctx.source)
    still = ctx.store.failures.find(message)
    result = Outcome(out=[report.summary()])
    if still is not None:
        result.error = f"it failed again: {still['error'].splitlines()[0]}"
    return result


@command("release")
def release(ctx: Context, message_id: str) -> Outcome:
    from outbox.queue import RetryPolicy, deliver_pending
    from outbox.transports import transport_for
    from pipeline.held import release_held

    submission = release_held(ctx.store, ctx.settings, message_id, ctx.now)
    report = deliver_pending(ctx.store, transport_for(ctx.settings.smtp), ctx.now,
                             RetryPolicy.from_settings(ctx.settings.smtp),
                             sent=ctx.source)
    return Outcome(out=[f"{message_id}: {submission['status']}; replies sent {report.sent}, "
                        f"waiting {report.waiting}"])
