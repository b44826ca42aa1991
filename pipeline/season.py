"""A registered county's email applied to its season: forms (quota, deadline, versions),
reports, withdrawals and status queries.

The decisions are the pure rules of pipeline/rules.py; this module reads the county's
candidates from the store, applies the decisions and writes the candidates back.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from outbox.compose import FormOutcome, ReportOutcome
from parsers.attachments import Document
from parsers.records import FormRecord, Problem
from pipeline import rules
from pipeline.settings import Settings


@dataclass
class CountyJudgement:
    kind: str                                    # submission | withdrawal | query
    status: str
    problems: list[Problem] = field(default_factory=list)   # about the email as a whole
    forms: list[FormOutcome] = field(default_factory=list)
    reports: list[ReportOutcome] = field(default_factory=list)
    withdrawn: list[str] = field(default_factory=list)


@dataclass
class Received:
    """What the season needs to know about the email being judged."""
    submission_id: str
    subject: str
    at: dt.datetime
    scans: list[dict] = field(default_factory=list)   # {file, sha256} of the scans beside the forms


def judge_county_email(store, settings: Settings, county: str, email: Received,
                       forms: list[tuple[Document, FormRecord]], reports: list[Document],
                       problems: list[Problem], photo_in_email: bool,
                       scans: list[Document] = ()) -> CountyJudgement:
    """`scans`: the images and image-only PDFs that came with the forms (the stamped paper
    form, a photo); kept beside each form's version for the originals export."""
    if rules.is_status_query(email.subject) and not forms and not reports:
        return CountyJudgement("query", "accepted")
    if rules.is_withdrawal(email.subject):
        return _withdraw(store, settings, county, email)
    email.scans = [{"file": d.file, "sha256": store.files.put(d.data)} for d in scans] if forms else []
    form_outcomes = [_form(store, settings, county, email, doc, form, decision, photo_in_email)
                     for (doc, form), decision in _decisions(store, settings, county, email, forms)]
    report_outcomes = [_report(store, settings, county, email, doc) for doc in reports]
    status = rules.worst_status([rules.status_for(problems), *(o.status for o in form_outcomes),
                                 *(o.status for o in report_outcomes)])
    return CountyJudgement("submission", status, problems, form_outcomes, report_outcomes)


def _decisions(store, settings: Settings, county: str, email: Received, forms):
    """Pair each form with its quota decision (None for forms that are late or nameless)."""
    if rules.form_is_late(email.at, settings.campaign):
        return [(pair, None) for pair in forms]
    named = [form.name for _, form in forms if form.name]
    decisions = iter(rules.decide_quota(store.candidates.current(county), named,
                                        settings.campaign.candidates_max))
    return [(pair, next(decisions) if pair[1].name else None) for pair in forms]


def _form(store, settings: Settings, county: str, email: Received, doc: Document, form: FormRecord,
          decision: rules.QuotaDecision | None, photo_in_email: bool) -> FormOutcome:
    fields = {**form.fields(), "photo": form.photo or photo_in_email,
              "source": form.source, "seals": dict(form.seals)}
    if rules.form_is_late(email.at, settings.campaign):
        late = _late(doc.file, "推荐表", settings.campaign.submission_deadline, email.at, settings)
        return FormOutcome(doc.file, form.name, "rejected", [late.to_dict()], fields)
    if decision is not None and not decision.allowed:
        return _over_quota(store, settings, county, email, doc, form, fields)
    problems = rules.validate_form(form, doc.file, settings.campaign, photo_in_email, doc.unread or [])
    outcome = FormOutcome(doc.file, form.name, rules.status_for(problems),
                          [p.to_dict() for p in problems], fields)
    if form.name:
        _record_version(store, county, outcome, outcome.status, doc, form, email, settings)
    return outcome


def _over_quota(store, settings, county, email, doc, form, fields) -> FormOutcome:
    """Kept for the record, but holding no place."""
    used = rules.places_used(store.candidates.current(county))
    problem = Problem("quota-exceeded", doc.file, detail={
        "used": used, "limit": settings.campaign.candidates_max, "name": form.name})
    outcome = FormOutcome(doc.file, form.name, "needs-correction", [problem.to_dict()], fields)
    _record_version(store, county, outcome, "quota-exceeded", doc, form, email, settings)
    return outcome


def _record_version(store, county: str, outcome: FormOutcome, status: str, doc: Document,
                    form: FormRecord, email: Received, settings: Settings) -> None:
    """The form becomes the candidate's current version; earlier versions are kept (added to,
    not read: a county resending a form costs the same at its 2nd version as at its 200th)."""
    earlier = store.candidates.get(county, form.name, history=False) or {}
    version = {
        "message_id": email.submission_id,
        "received_at": iso(email.at, settings),
        "file": doc.file,
        "sha256": store.files.put(doc.data),   # the form as received, even from inside an archive
        "scans": email.scans,
        "status": status,
        "problems": outcome.problems,
        "fields": outcome.fields,
    }
    photo_sha = store.files.put(form.photo_image) if form.photo_image else earlier.get("photo_file")
    # A seal once seen on a scan stays evidence when a Word version later replaces the values.
    seals = {k: bool(v or (earlier.get("seals") or {}).get(k)) for k, v in outcome.fields["seals"].items()}
    seal_file = doc.seal_file if any(outcome.fields["seals"].values()) else earlier.get("seal_file")
    store.candidates.put({
        **earlier,
        **outcome.fields,
        "seals": seals,
        "seal_file": seal_file,
        "county": county,
        "status": status,
        "problems": [p["code"] for p in outcome.problems],
        "report": earlier.get("report"),
        "photo_file": photo_sha,
        "updated_at": version["received_at"],
    }, new_version=version)


def _report(store, settings: Settings, county: str, email: Received, doc: Document) -> ReportOutcome:
    report = doc.report
    if rules.report_is_late(email.at, settings.campaign):
        late = _late(doc.file, "调研报告", settings.campaign.report_deadline, email.at, settings)
        return ReportOutcome(doc.file, "", "rejected", [late.to_dict()], report.title, report.chars)
    name = rules.link_report(email.subject, doc.file, report.head, store.candidates.current(county))
    if name is None:
        problem = Problem("report-unmatched", doc.file)
        return ReportOutcome(doc.file, "", "needs-correction", [problem.to_dict()], report.title, report.chars)
    candidate = store.candidates.get(county, name)
    entry = {"title": report.title, "chars": report.chars, "file": doc.file,
             "sha256": store.files.put(doc.data), "message_id": email.submission_id,
             "received_at": iso(email.at, settings)}
    earlier = candidate.get("reports") or ([candidate["report"]] if candidate.get("report") else [])
    store.candidates.put({**candidate, "report": entry, "reports": [*earlier, entry]})
    return ReportOutcome(doc.file, name, "accepted", [], report.title, report.chars)


def _withdraw(store, settings: Settings, county: str, email: Received) -> CountyJudgement:
    candidates = store.candidates.current(county)
    targets = rules.withdrawal_targets(email.subject, candidates)
    if not targets:
        active = [c["name"] for c in candidates if c["status"] in rules.ACTIVE_STATUSES]
        problem = Problem("withdraw-unmatched", detail={"subject": email.subject,
                                                        "names": "、".join(active) or "无"})
        return CountyJudgement("withdrawal", "needs-correction", [problem])
    for name in targets:
        candidate = store.candidates.get(county, name)
        event = {"status": "withdrawn", "message_id": email.submission_id,
                 "at": iso(email.at, settings)}
        store.candidates.put({**candidate, "status": "withdrawn", "problems": [],
                              "withdrawals": [*candidate.get("withdrawals", []), event],
                              "updated_at": event["at"]})
    return CountyJudgement("withdrawal", "withdrawn", withdrawn=targets)


def _late(file: str, what: str, deadline: dt.date, at: dt.datetime, settings: Settings) -> Problem:
    local = at.astimezone(settings.campaign.timezone)
    return Problem("late", file, detail={
        "what": what, "deadline": deadline.isoformat(),
        "received": f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}"})


def iso(moment: dt.datetime, settings: Settings) -> str:
    return moment.astimezone(settings.campaign.timezone).isoformat(timespec="seconds")
