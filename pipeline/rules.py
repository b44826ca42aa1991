"""The campaign's rules for one form: pure functions of a record, the settings and a time.

No clock and no disk here: the pipeline passes in what the rules need.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from parsers import normalize
from parsers.records import FIELD_LABELS, FormRecord, Problem
from pipeline.settings import CampaignSettings

# Every field of SPEC §2 is required except honours.
REQUIRED_FIELDS = ("name", "sex", "birth", "ethnicity", "native_place", "political_status",
                   "employer_post", "home_address", "phone", "deeds")
REQUIRED_OPINIONS = ("recommender", "discipline")

# Problems editing cannot fix: the email is rejected rather than sent back for correction.
REJECTING_CODES = {"late", "unknown-sender"}

_BIRTH = re.compile(r"^(\d{4})-(\d{2})$")


def validate_form(form: FormRecord, file: str, campaign: CampaignSettings,
                  photo_in_email: bool = False, unread: list[str] = ()) -> list[Problem]:
    """Every field problem of one form, in the form's order. `unread`: fields of a scanned
    form OCR could not read with confidence — asked for once, as `scanned-only`."""
    problems = []
    if form.source == "scan":   # on a scan, an empty box may as well be one OCR could not read
        unread = [*unread, *(n for n in REQUIRED_FIELDS if not getattr(form, n).strip() and n not in unread)]
    if unread:
        labels = "、".join(FIELD_LABELS.get(name, name) for name in unread)
        problems.append(Problem("scanned-only", file, detail={"unread": labels}))
    problems += [Problem(f"missing-field:{name}", file, name)
                 for name in REQUIRED_FIELDS if not getattr(form, name).strip() and name not in unread]
    problems += _invalid_values(form, file, campaign)
    deeds_chars = normalize.count_chars(form.deeds)
    if deeds_chars > campaign.deeds_max_chars:
        problems.append(Problem("deeds-too-long", file, "deeds",
                                {"count": deeds_chars, "limit": campaign.deeds_max_chars}))
    # On a stamped form the seal is the box's signature, even with no opinion typed above it.
    problems += [Problem(f"missing-opinion:{key}", file, key) for key in REQUIRED_OPINIONS
                 if not form.opinions.get(key, "").strip() and not form.seals.get(key)
                 and key not in unread]
    if campaign.require_seals:
        problems += [Problem(f"missing-seal:{key}", file, key)
                     for key in REQUIRED_OPINIONS if not form.seals.get(key)]
    if not (form.photo or photo_in_email):
        problems.append(Problem("missing-photo", file, "photo"))
    return problems


def _invalid_values(form: FormRecord, file: str, campaign: CampaignSettings) -> list[Problem]:
    problems = []

    def invalid(name: str, **detail) -> None:
        problems.append(Problem(f"invalid-field:{name}", file, name,
                                {"value": getattr(form, name), **detail}))

    if form.sex and form.sex not in ("男", "女"):
        invalid("sex")
    if form.birth:
        age = age_at(form.birth, campaign.submission_deadline)
        if age is None:
            invalid("birth")
        elif not campaign.min_age <= age <= campaign.max_age:
            invalid("birth", age=age, min_age=campaign.min_age, max_age=campaign.max_age,
                    deadline=campaign.submission_deadline.isoformat())
    if form.ethnicity and form.ethnicity not in normalize.ETHNICITIES:
        invalid("ethnicity")
    if form.political_status and form.political_status not in normalize.POLITICAL_STATUSES:
        invalid("political_status")
    if form.phone and not normalize.is_valid_phone(form.phone):
        invalid("phone")
    return problems


def age_at(birth: str, day) -> int | None:
    """Whole years between a YYYY-MM birth month and a date; None when birth is not YYYY-MM."""
    match = _BIRTH.match(birth)
    if not match:
        return None
    year, month = int(match.group(1)), int(match.group(2))
    if not 1 <= month <= 12:
        return None
    return day.year - year - (1 if day.month < month else 0)


def status_for(problems: list[Problem]) -> str:
    """accepted, needs-correction or rejected (SPEC §4)."""
    codes = {p.code for p in problems}
    if codes & REJECTING_CODES:
        return "rejected"
    return "needs-correction" if codes else "accepted"


_SEVERITY = {"accepted": 0, "withdrawn": 0, "needs-correction": 1, "rejected": 2}


def worst_status(statuses: list[str]) -> str:
    return max(statuses, key=_SEVERITY.__getitem__) if statuses else "accepted"


# ---------------------------------------------------------------- the season across emails

# Candidates that hold one of the county's places.
ACTIVE_STATUSES = ("accepted", "needs-correction")
# Words that mark a document as a report rather than a cover letter.
REPORT_WORDS = ("报告", "总结", "论文", "调研", "研究")
REVIEW_STATUSES = ("pooled", "shortlisted", "selected", "not-selected")
# A county's email with words of its own and no document: for the contact to answer.
NEEDS_PERSON = "needs-person"

_QUERY_SUBJECTS = {"查询", "查询进度"}


def local_date(moment: dt.datetime, campaign: CampaignSettings) -> dt.date:
    return moment.astimezone(campaign.timezone).date()


def form_is_late(received_at: dt.datetime, campaign: CampaignSettings) -> bool:
    """Forms count until the end of the deadline day in the campaign's time zone."""
    return local_date(received_at, campaign) > campaign.submission_deadline


def report_is_late(received_at: dt.datetime, campaign: CampaignSettings) -> bool:
    return local_date(received_at, campaign) > campaign.report_deadline


def deadlines_ahead(moment: dt.datetime, campaign: CampaignSettings) -> list[tuple[str, dt.date]]:
    """The deadlines not yet passed on `moment`'s local date, soonest first: ("form", date),
    ("report", date); empty once both have passed."""
    day = local_date(moment, campaign)
    return [(what, deadline) for what, deadline in (("form", campaign.submission_deadline),
                                                    ("report", campaign.report_deadline))
            if day <= deadline]


def is_status_query(subject: str) -> bool:
    return _bare(subject) in _QUERY_SUBJECTS


def is_withdrawal(subject: str) -> bool:
    return _bare(subject).startswith("撤回")


def _bare(subject: str) -> str:
    """The subject without reply/forward prefixes, brackets and spaces."""
    text = re.sub(r"^(\s*(re|fw|fwd|回复|转发)\s*[:：])+", "", subject.strip(), flags=re.IGNORECASE)
    return re.sub(r"[\s【】\[\]]", "", text)


def names_in(text: str, names: list[str]) -> list[str]:
    """The candidates' names that occur in the text, in the given order."""
    compact = re.sub(r"\s", "", text)
    return [n for n in names if n and n in compact]


@dataclass
class QuotaDecision:
    name: str
    new: bool          # a candidate the county had not (or no longer) put forward
    allowed: bool      # False: it would exceed the county's places


def decide_quota(candidates: list[dict], names: list[str], places: int) -> list[QuotaDecision]:
    """Judge the forms of one email together, in the email's order: a name already holding a
    place is an update; a new name takes a free place or is refused."""
    active = {c["name"] for c in candidates if c["status"] in ACTIVE_STATUSES}
    decisions = []
    for name in names:
        if name in active:
            decisions.append(QuotaDecision(name, new=False, allowed=True))
        elif len(active) < places:
            active.add(name)
            decisions.append(QuotaDecision(name, new=True, allowed=True))
        else:
            decisions.append(QuotaDecision(name, new=True, allowed=False))
    return decisions


def missing_seals(seals: dict | None) -> list[str]:
    """The required opinion boxes no scan has shown stamped (all of them without a scan)."""
    return [key for key in REQUIRED_OPINIONS if not (seals or {}).get(key)]


def places_used(candidates: list[dict]) -> int:
    return sum(1 for c in candidates if c["status"] in ACTIVE_STATUSES)


def withdrawal_targets(subject: str, candidates: list[dict]) -> list[str]:
    """The county's active candidates named in a 撤回 subject."""
    return names_in(subject, [c["name"] for c in candidates if c["status"] in ACTIVE_STATUSES])


def is_report(title: str, filename: str, email_has_forms: bool) -> bool:
    """A text document beside forms is a cover letter unless its name says it is a report."""
    if not email_has_forms:
        return True
    return any(word in f"{title}{filename}" for word in REPORT_WORDS)


def link_report(subject: str, filename: str, head: str, candidates: list[dict]) -> str | None:
    """The one candidate a report is about: named in the subject or file name, else in the
    document's opening text. None when no candidate, or more than one, is named."""
    names = [c["name"] for c in candidates if c["status"] in ACTIVE_STATUSES]
    for text in (f"{subject} {filename}", head):
        found = names_in(text, names)
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            return None
    return None


# ---------------------------------------------------------------- reminders before a deadline

@dataclass
class Missing:
    """One thing a county still owes: no form at all, a candidate's open corrections, or a
    candidate's report."""
    code: str          # no-form | corrections | no-report
    name: str = ""


def reminder_deadlines(day: dt.date, campaign: CampaignSettings, days_before: tuple[int, ...]) -> list[tuple[str, dt.date]]:
    """The deadlines ("form", "report") that fall `days_before` days after `day`: those a
    reminder is due for on `day`. Never one already passed."""
    return [(what, deadline) for what, deadline in (("form", campaign.submission_deadline),
                                                    ("report", campaign.report_deadline))
            if (deadline - day).days in days_before]


def missing_for(what: str, candidates: list[dict]) -> list[Missing]:
    """What a county has not yet sent for the deadline `what` ("form" or "report")."""
    active = [c for c in candidates if c["status"] in ACTIVE_STATUSES]
    if what == "form":
        if not active:
            return [Missing("no-form")]
        return [Missing("corrections", c["name"]) for c in active if c["status"] == "needs-correction"]
    return [Missing("no-report", c["name"]) for c in active if not c.get("report")]
