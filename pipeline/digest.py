"""The municipal contact's daily digest (SPEC §5): its figures — pure functions of the store's
records, the date and the settings — and the rule that each date's digest goes out once.

How it looks is outbox/digest.py's business; this module decides what it says and when.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from outbox.wording import describe
from pipeline.questions import open_questions
from pipeline.roster import CountyRow, in_county_order, latest_problems, roster_as_of, rows_for
from pipeline.rules import ACTIVE_STATUSES, missing_seals
from pipeline.settings import Settings
from parsers.records import FIELD_LABELS

if TYPE_CHECKING:   # `intake status` imports this module: not the sending machinery
    from outbox.queue import DeliveryReport

DIGEST_KIND = "digest"
URGENT_DAYS = 7          # fewer days left than this before the deadline: shown in red
UNKNOWN_WITHOUT_DOCUMENTS = "unknown sender without documents"
SETTLED_REPLIES = ("pending", "sent")
OPEN_STATUSES = ("needs-correction", "rejected")   # candidates someone still has to act on   # any other outbox status is a reply that did not arrive


@dataclass
class Totals:
    counties: int
    counties_with_candidates: int
    candidates: int          # holding a place: accepted or needing correction
    accepted: int
    needs_correction: int
    rejected: int
    withdrawn: int
    places_used: int
    places_total: int
    reports: int
    emails: int              # emails answered
    skipped: int             # emails recorded without a reply (auto-replies, bounces, ...)


@dataclass
class WaitingCounty:
    """A county with no candidate holding a place yet."""
    county: str
    emails: int              # emails it sent that gave no candidate (unreadable, no form, ...)


@dataclass
class NewSubmission:
    received_at: str
    county: str | None
    sender: str
    subject: str
    status: str
    names: list[str] = field(default_factory=list)


@dataclass
class OpenProblem:
    county: str
    name: str
    status: str
    received_at: str
    sentences: list[str]


@dataclass
class UnknownSender:
    address: str
    emails: int
    last_received: str
    last_subject: str


@dataclass
class FailedReply:
    to: str
    subject: str
    kind: str
    status: str
    error: str
    created_at: str


@dataclass
class Unsealed:
    """A candidate holding a place for whom no scan has shown the seals the notice requires."""
    county: str
    name: str
    missing: str             # "推荐单位意见、纪检监察部门意见"
    scanned: bool            # a scan came, without those seals (else only a text version came)


@dataclass
class PersonQuestion:
    """A county's email that needs a person, as the digest lists it (text without quotes)."""
    message_id: str
    county: str
    sender: str
    subject: str
    received_at: str
    words: str


@dataclass
class SentReminder:
    county: str
    missing: list[str]
    deadline: str


@dataclass
class ReviewMark:
    county: str
    name: str
    status: str
    note: str
    at: str


@dataclass
class DigestFigures:
    date: dt.date
    cutoff: dt.datetime                   # what arrived up to this moment is counted
    previous_cutoff: dt.datetime | None   # the previous digest's cut-off; None for the first
    deadline: dt.date
    days_left: int                        # from `date` to the submission deadline
    totals: Totals
    rows: list[CountyRow]
    waiting: list[WaitingCounty]
    new: list[NewSubmission]
    new_skipped: int                      # emails since the previous digest that got no reply
    problems: list[OpenProblem]
    unknown_senders: list[UnknownSender]
    failed_replies: list[FailedReply]
    unsealed: list[Unsealed] = field(default_factory=list)
    questions: list[PersonQuestion] = field(default_factory=list)   # listed first: they need a person
    reminders: list[SentReminder] = field(default_factory=list)     # sent to counties on this date
    reviews: list[ReviewMark] = field(default_factory=list)         # candidates carrying a review mark

    @property
    def urgent(self) -> bool:
        return self.days_left < URGENT_DAYS


def local_today(settings: Settings, now: dt.datetime) -> dt.date:
    return now.astimezone(settings.campaign.timezone).date()


def cutoff_for(date: dt.date, settings: Settings, now: dt.datetime) -> dt.datetime:
    """A digest counts what arrived up to now — or, for a past date, up to that day's end."""
    tz = settings.campaign.timezone
    day_end = dt.datetime.combine(date + dt.timedelta(days=1), dt.time(0), tzinfo=tz)
    return min(now.astimezone(tz), day_end)


def build_figures(store, settings: Settings, date: dt.date, now: dt.datetime) -> DigestFigures:
    cutoff = cutoff_for(date, settings, now)
    previous_cutoff = _previous_cutoff(store, date)
    candidates, submissions = roster_as_of(store, cutoff)
    candidates = in_county_order(candidates, settings)
    rows = rows_for(candidates, submissions, settings)
    return _figures(
        store, settings, date, cutoff, previous_cutoff, candidates, rows, _totals(rows, submissions),
        listed=submissions, replies=store.outbox.all(),
        new=_new_since(submissions, candidates, previous_cutoff),
        new_skipped=sum(1 for s in _since(submissions, previous_cutoff) if s["status"] == "skipped"))


def status_figures(store, settings: Settings, now: dt.datetime) -> DigestFigures:
    """The figures of `intake status`: the digest's as of now, read from the store's small
    tables (Store.mirrored: per-county tallies of the emails, the emails of unregistered senders
    and the open questions, the unsettled replies, each candidate's first and latest version)
    instead of every email, reply and version, so the command costs the same in July as in June.
    Two figures of the digest are not made here, since status does not show them: the emails new
    since the previous digest (`new`, `new_skipped`) and the questions' words. A store not
    mirrored yet (written by an older intake, not yet opened by a writer) is read whole, as the
    digest reads it."""
    date = local_today(settings, now)
    if not store.mirrored:
        return build_figures(store, settings, date, now)
    candidates = in_county_order(store.candidates.all_with_ends(), settings)
    tally = store.submissions.tally()
    rows = rows_for(candidates, [], settings)
    for row in rows:
        row.emails = tally.get(row.county, {}).get("emails", 0)
        row.last_submission = tally.get(row.county, {}).get("last", "")
    totals = _totals(rows, emails=sum(t["emails"] for t in tally.values()),
                     skipped=sum(t["skipped"] for t in tally.values()))
    return _figures(store, settings, date, cutoff_for(date, settings, now), _previous_cutoff(store, date),
                    candidates, rows, totals, listed=store.submissions.to_watch(),
                    replies=store.outbox.unsettled_replies())


def _previous_cutoff(store, date: dt.date) -> dt.datetime | None:
    previous = store.digests.latest_before(date.isoformat())
    return dt.datetime.fromisoformat(previous["cutoff"]) if previous else None


def _figures(store, settings: Settings, date: dt.date, cutoff: dt.datetime,
             previous_cutoff: dt.datetime | None, candidates: list[dict], rows: list[CountyRow],
             totals: Totals, listed: list[dict], replies: list[dict], new: list[NewSubmission] = (),
             new_skipped: int = 0) -> DigestFigures:
    """The figures from what was read: `listed` holds at least the emails of unregistered
    senders and the open questions, `replies` at least those not settled."""
    deadline = settings.campaign.submission_deadline
    return DigestFigures(
        date=date, cutoff=cutoff, previous_cutoff=previous_cutoff, deadline=deadline,
        days_left=(deadline - date).days,
        totals=totals,
        rows=rows,
        waiting=[WaitingCounty(r.county, r.emails) for r in rows if not r.has_candidates],
        new=list(new),
        new_skipped=new_skipped,
        problems=_open_problems(candidates),
        unknown_senders=_unknown_senders(listed, settings),
        failed_replies=_failed_replies(replies, settings),
        unsealed=_unsealed(candidates),
        questions=[PersonQuestion(q["message_id"], q.get("county") or "", q.get("from", ""),
                                  q.get("subject", ""), q["received_at"], q.get("words", ""))
                   for q in open_questions(listed, cutoff)],
        reminders=[SentReminder(r["county"], r["missing"], r["deadline"])
                   for r in store.reminders.on(date.isoformat())],
        reviews=_reviews(candidates, cutoff),
    )


def _reviews(candidates: list[dict], cutoff: dt.datetime) -> list[ReviewMark]:
    """Each candidate's latest review mark made by the cut-off."""
    marks = []
    for cand in candidates:
        made = [r for r in cand.get("reviews") or ([cand["review"]] if cand.get("review") else [])
                if r.get("at") and _aware(dt.datetime.fromisoformat(r["at"])) <= cutoff]
        if made:
            marks.append(ReviewMark(cand["county"], cand["name"], made[-1]["status"],
                                    made[-1].get("note", ""), made[-1]["at"]))
    return marks


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def _totals(rows: list[CountyRow], submissions: list[dict] = (), emails: int | None = None,
            skipped: int | None = None) -> Totals:
    """The day's totals; the emails answered and skipped counted from `submissions`, unless
    given (status counts them from the store's tallies)."""
    def total(attr: str) -> int:
        return sum(getattr(r, attr) for r in rows)
    if emails is None:
        emails = sum(1 for s in submissions if s["status"] != "skipped")
        skipped = sum(1 for s in submissions if s["status"] == "skipped")
    return Totals(
        counties=len(rows), counties_with_candidates=sum(r.has_candidates for r in rows),
        candidates=total("places_used"), accepted=total("accepted"),
        needs_correction=total("needs_correction"), rejected=total("rejected"),
        withdrawn=total("withdrawn"), places_used=total("places_used"),
        places_total=sum(r.places_max for r in rows), reports=total("reports"),
        emails=emails, skipped=skipped)


def _since(submissions: list[dict], previous_cutoff: dt.datetime | None) -> list[dict]:
    if previous_cutoff is None:
        return list(submissions)
    return [s for s in submissions if dt.datetime.fromisoformat(s["received_at"]) > previous_cutoff]


def _new_since(submissions: list[dict], candidates: list[dict],
               previous_cutoff: dt.datetime | None) -> list[NewSubmission]:
    names_by_message: dict[str, list[str]] = {}
    for cand in candidates:
        reports = cand.get("reports") or ([cand["report"]] if cand.get("report") else [])
        for entry in (*(cand.get("versions") or []), *reports, *(cand.get("withdrawals") or [])):
            names_by_message.setdefault(entry.get("message_id", ""), []).append(cand["name"])
    fresh = sorted((s for s in _since(submissions, previous_cutoff) if s["status"] != "skipped"),
                   key=lambda s: s["received_at"])
    return [NewSubmission(s["received_at"], s.get("county"), s.get("from", ""), s.get("subject", ""),
                          s["status"], list(dict.fromkeys(names_by_message.get(s["message_id"], []))))
            for s in fresh]


def _open_problems(candidates: list[dict]) -> list[OpenProblem]:
    """Candidates that are neither accepted nor withdrawn, with what the county was told."""
    open_ = []
    for cand in candidates:
        if cand["status"] not in OPEN_STATUSES:
            continue
        sentences = [describe(p) if isinstance(p, dict) else describe({"code": p})
                     for p in latest_problems(cand)]
        versions = cand.get("versions") or [{}]
        open_.append(OpenProblem(cand["county"], cand["name"], cand["status"],
                                 versions[-1].get("received_at", ""), sentences))
    return open_


def _unsealed(candidates: list[dict]) -> list[Unsealed]:
    out = []
    for cand in candidates:
        missing = missing_seals(cand.get("seals"))
        if cand["status"] in ACTIVE_STATUSES and missing:
            out.append(Unsealed(cand["county"], cand["name"], "、".join(FIELD_LABELS[k] for k in missing),
                                bool(cand.get("seal_file"))))
    return out


def _unknown_senders(submissions: list[dict], settings: Settings) -> list[UnknownSender]:
    """Addresses not registered for any county (and still not registered now), by address."""
    found: dict[str, UnknownSender] = {}
    unknown = [s for s in submissions if "unknown-sender" in (s.get("problems") or ())
               or s.get("reason") == UNKNOWN_WITHOUT_DOCUMENTS]
    for sub in sorted(unknown, key=lambda s: s["received_at"]):
        address = (sub.get("from") or "").lower()
        if not address or settings.county_of(address) is not None:
            continue
        seen = found.setdefault(address, UnknownSender(address, 0, "", ""))
        seen.emails += 1
        seen.last_received, seen.last_subject = sub["received_at"], sub.get("subject", "")
    return list(found.values())


def _failed_replies(outbox: list[dict], settings: Settings) -> list[FailedReply]:
    tz = settings.campaign.timezone

    def local(iso: str) -> str:
        return dt.datetime.fromisoformat(iso).astimezone(tz).isoformat(timespec="seconds") if iso else ""
    return [FailedReply(r.get("to", ""), r.get("subject", ""), r.get("kind", ""), r["status"],
                        r.get("last_error", ""), local(r.get("created_at", "")))
            for r in sorted(outbox, key=lambda r: r.get("created_at", ""))
            if r.get("status") not in SETTLED_REPLIES]


# ------------------------------------------------------------------ once per date

def due_digest(settings: Settings, store, now: dt.datetime) -> dt.date | None:
    """The date whose digest should go out now: today's, once `digest.at` has passed (Asia/
    Shanghai by default) and it has not gone out yet. A worker that was down at that time sends
    it when it comes back the same day; a day missed entirely is not sent afterwards."""
    local = now.astimezone(settings.campaign.timezone)
    if local.time().replace(tzinfo=None) < settings.digest.at:
        return None
    today = local.date()
    return None if store.digests.get(today.isoformat()) else today


@dataclass
class DigestOutcome:
    date: dt.date
    message_id: str
    queued: bool                      # False: this date's digest had been queued before
    earlier: dict | None = None       # the ledger entry found, when not queued
    status: str = "pending"           # its outbox status after delivery: pending, sent, failed...
    delivery: DeliveryReport | None = None   # always given by send_digest


def digest_message_id(date: dt.date, attempt: int, from_address: str) -> str:
    """Stable for a date, so a retried delivery is one message; a forced resend is a new one."""
    from outbox.compose import reply_message_id

    key = f"digest:{date.isoformat()}" + (f"#{attempt}" if attempt else "")
    return reply_message_id(key, DIGEST_KIND, from_address)


def compose_for(store, settings: Settings, date: dt.date, now: dt.datetime, message_id: str):
    """(figures, the digest email) for `date`, the roster attached as it stood at the cut-off."""
    # Imported here: `intake status` needs the figures only, not the e-mail and workbook makers.
    from outbox.digest import compose_digest, roster_filename
    from pipeline.exports import roster_xlsx

    figures = build_figures(store, settings, date, now)
    candidates, submissions = roster_as_of(store, figures.cutoff)
    xlsx = roster_xlsx(candidates, submissions, settings)
    msg = compose_digest(figures, from_address=settings.smtp.from_address, to=settings.digest.to,
                         roster=(roster_filename(date), xlsx), message_id=message_id, now=now)
    return figures, msg


def send_digest(settings: Settings, store, date: dt.date, now: dt.datetime,
                force: bool = False, transport=None, sent=None) -> DigestOutcome:
    """Queue `date`'s digest and record it in the ledger in one transaction, then deliver it
    with the replies due, the one way mail leaves (outbox.queue.deliver_pending). `sent`: the
    mailbox session (the worker's source), whose Sent folder keeps the copies
    (outbox.queue.SentFolder); without one, the copies of what goes out now are recorded as due
    and kept on the next pass. Without `force`, a date already recorded is never queued again
    (its digest is only retried if it is still waiting in the outbox)."""
    from outbox.queue import RetryPolicy, deliver_pending, enqueue
    from outbox.transports import transport_for

    key = date.isoformat()
    transport = transport or transport_for(settings.smtp)
    earlier = store.digests.get(key)
    if earlier and not force:
        delivery = deliver_pending(store, transport, now, RetryPolicy.from_settings(settings.smtp),
                                   sent=sent)
        record = store.outbox.get(earlier["message_id"]) or {"status": "sent"}
        return DigestOutcome(date, earlier["message_id"], queued=False, earlier=earlier,
                             status=record["status"], delivery=delivery)
    attempt = len(earlier["message_ids"]) if earlier else 0
    message_id = digest_message_id(date, attempt, settings.smtp.from_address)
    figures, msg = compose_for(store, settings, date, now, message_id)
    with store.transaction():
        enqueue(store, msg, f"digest:{key}", DIGEST_KIND, now)
        store.digests.record(key, message_id, figures.cutoff.isoformat(), now.isoformat())
    delivery = deliver_pending(store, transport, now, RetryPolicy.from_settings(settings.smtp),
                               sent=sent)
    return DigestOutcome(date, message_id, queued=True, delivery=delivery,
                         status=(store.outbox.get(message_id) or {"status": "pending"})["status"])
