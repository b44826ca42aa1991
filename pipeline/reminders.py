"""Reminders to counties whose materials are incomplete, `[reminders] days_before` days before
each deadline: one email per county per date, recorded in the store's reminder ledger in the
same transaction as the queued email, so a restart never sends a second one.

What is missing is decided by the pure rules (pipeline.rules.reminder_deadlines, missing_for);
the email's words are outbox/reminder.py's.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from outbox.compose import reply_message_id
from outbox.queue import DeliveryReport, RetryPolicy, deliver_pending, enqueue
from outbox.reminder import ReminderContent, compose_reminder, missing_lines
from outbox.transports import transport_for
from pipeline import rules
from pipeline.roster import latest_problems
from pipeline.settings import Settings

log = logging.getLogger("intake.reminders")
REMINDER_KIND = "reminder"


@dataclass
class Planned:
    county: str
    to: tuple[str, ...]
    what: str                      # form | report: the deadline it is about
    deadline: dt.date
    lines: list[str]               # what is missing, in Chinese
    already: bool = False          # this county was reminded on this date before


@dataclass
class ReminderRun:
    date: dt.date
    planned: list[Planned] = field(default_factory=list)
    queued: int = 0
    delivery: DeliveryReport = field(default_factory=DeliveryReport)


def plan_reminders(settings: Settings, store, day: dt.date) -> list[Planned]:
    """The counties to remind on `day`, with what each is missing; none when `day` is not a
    reminder day or reminders are off."""
    plans = []
    for what, deadline in rules.reminder_deadlines(day, settings.campaign, settings.reminders.days_before):
        for county in settings.counties:
            candidates = store.candidates.current(county.name)
            missing = rules.missing_for(what, candidates)
            if not missing or not county.senders:
                continue
            problems = {c["name"]: latest_problems(c) for c in candidates}
            lines = missing_lines(missing, problems, settings.campaign.candidates_min,
                                  settings.campaign.candidates_max)
            plans.append(Planned(county.name, county.senders, what, deadline, lines,
                                 already=store.reminders.get(county.name, day.isoformat()) is not None))
    return _one_per_county(plans)


def _one_per_county(plans: list[Planned]) -> list[Planned]:
    """Both deadlines on one day (a short campaign): one email per county, the sooner first."""
    merged: dict[str, Planned] = {}
    for plan in plans:
        if plan.county in merged:
            merged[plan.county].lines += plan.lines
        else:
            merged[plan.county] = plan
    return list(merged.values())


def reminders_due(settings: Settings, now: dt.datetime) -> dt.date | None:
    """Today, once `[reminders] at` has passed on a day that is a reminder day; else None."""
    if not settings.reminders.days_before:
        return None
    local = now.astimezone(settings.campaign.timezone)
    if local.time().replace(tzinfo=None) < settings.reminders.at:
        return None
    day = local.date()
    return day if rules.reminder_deadlines(day, settings.campaign, settings.reminders.days_before) else None


def send_reminders(settings: Settings, store, day: dt.date, now: dt.datetime, dry_run: bool = False,
                   transport=None, sent=None) -> ReminderRun:
    """Queue `day`'s reminders for the counties not yet reminded that day, each with its ledger
    entry in one transaction, then deliver. `dry_run`: plan only. `sent`: as for
    pipeline.digest.send_digest (the mailbox whose Sent folder keeps the copies)."""
    run = ReminderRun(day, plan_reminders(settings, store, day))
    if dry_run:
        return run
    for plan in run.planned:
        if plan.already:
            continue
        message_id = reply_message_id(f"reminder:{plan.county}:{day.isoformat()}", REMINDER_KIND,
                                      settings.smtp.from_address)
        msg = compose_reminder(ReminderContent(
            county=plan.county, to=plan.to, what=plan.what, deadline=plan.deadline,
            days_left=(plan.deadline - day).days, lines=plan.lines,
            contact_name=settings.campaign.contact_name, contact_phone=settings.campaign.contact_phone),
            from_address=settings.smtp.from_address, message_id=message_id, now=now)
        with store.transaction():
            enqueue(store, msg, f"reminder:{plan.county}:{day.isoformat()}", REMINDER_KIND, now)
            store.reminders.record({"county": plan.county, "date": day.isoformat(), "message_id": message_id,
                                    "what": plan.what, "deadline": plan.deadline.isoformat(),
                                    "missing": plan.lines, "sent_at": now.isoformat()})
        run.queued += 1
        log.info("reminder for %s on %s queued (%s)", plan.county, day, plan.what)
    if run.queued:
        run.delivery = deliver_pending(store, transport or transport_for(settings.smtp), now,
                                       RetryPolicy.from_settings(settings.smtp), sent=sent)
    return run
