"""One email through intake: parse, judge, store, and queue the reply — in one transaction.

`process_message` is the only place that knows the order of the steps; each step's work lives
in the package that owns it (parsers, rules, store, outbox).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import logging
from dataclasses import dataclass, field

from outbox.compose import FormOutcome, ReplyContent, compose_reply
from outbox.manners import no_reply_reason
from outbox.queue import enqueue
from parsers.attachments import Document, read_attachments
from parsers.email_message import parse_email
from parsers.records import Attachment, FormRecord, ParsedEmail, Problem
from parsers.sniff import sniff
from pipeline import rules
from pipeline.settings import Settings

log = logging.getLogger("intake.process")

@dataclass
class Judgement:
    """Everything decided about one email's attachments."""
    forms: list[tuple[Document, FormRecord]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)   # about the email or a file as a whole
    images: list[Document] = field(default_factory=list)
    documents: int = 0                                       # attachments a county meant us to read


def process_message(raw: bytes, received_at: dt.datetime, store, settings: Settings,
                    now: dt.datetime, origin: dict | None = None) -> dict | None:
    """Record one email and queue its reply. Returns the submission, or None when this exact
    message was processed before. Call inside `store.transaction()`."""
    parsed = parse_email(raw)
    digest = hashlib.sha256(raw).hexdigest()
    submission_id = parsed.message_id
    earlier = store.submissions.get(submission_id)
    if earlier is not None:
        if earlier.get("sha256") == digest:
            return None
        submission_id = f"{parsed.message_id}#{digest[:12]}"
        if store.submissions.get(submission_id) is not None:
            return None
        return _skip(store, parsed, submission_id, digest, received_at, settings, origin, "duplicate")

    reason = no_reply_reason(parsed.headers, parsed.from_addr, settings.own_addresses())
    if reason:
        return _skip(store, parsed, submission_id, digest, received_at, settings, origin, reason)

    county = settings.county_of(parsed.from_addr)
    judgement = judge_attachments(parsed.attachments)
    if county is None and not judgement.documents:
        return _skip(store, parsed, submission_id, digest, received_at, settings, origin,
                     "unknown sender without documents")

    files = [_store_file(store, a) for a in parsed.attachments]
    if county is None:
        problems = [Problem("unknown-sender", detail={"address": parsed.from_addr})]
        outcomes: list[FormOutcome] = []
    else:
        problems = judgement.problems
        outcomes = [_judge_form(store, settings, county, att, form, bool(judgement.images),
                                submission_id, received_at) for att, form in judgement.forms]
    status = rules.worst_status([rules.status_for(problems), *(o.status for o in outcomes)])
    submission = _submission(parsed, submission_id, digest, received_at, settings, origin,
                             county=county, status=status, files=files,
                             problems=[p.code for p in problems] + [p["code"] for o in outcomes for p in o.problems])
    store.submissions.add(submission)
    content = ReplyContent(
        to=parsed.from_addr, county=county, status=status,
        received_at=received_at.astimezone(settings.campaign.timezone),
        original_subject=parsed.subject, original_message_id=parsed.message_id,
        references=parsed.references, problems=[p.to_dict() for p in problems], forms=outcomes,
        places_used=_places_used(store, county), places_max=settings.campaign.candidates_max)
    enqueue(store, compose_reply(content, settings.smtp.from_address, submission_id, now),
            submission_id, "reply", now)
    log.info("%s from county %s: %s", submission_id, county or "(unknown sender)", status)
    return submission


def judge_attachments(attachments: list[Attachment]) -> Judgement:
    """Sort the email's documents into forms, scans and problems; files of no interest
    (signatures, text notes) are passed over."""
    j = Judgement()
    for doc in read_attachments(attachments):
        if doc.kind == "other":
            continue
        j.documents += 1
        if doc.kind == "form":
            j.forms.append((doc, doc.form))
        elif doc.kind == "image":
            j.images.append(doc)
        elif doc.kind == "unreadable":
            j.problems.append(Problem("unreadable-file", doc.file, detail={"reason": doc.reason}))
    if not j.forms:
        j.problems += _nothing_read(attachments, j)
    return j


def _nothing_read(attachments: list[Attachment], j: Judgement) -> list[Problem]:
    if not attachments:
        return [Problem("no-attachment")]
    if j.images and not j.problems:
        return [Problem("scanned-only", "、".join(d.file for d in j.images))]
    if not j.problems:
        return [Problem("nothing-recognized", detail={"files": "、".join(a.filename for a in attachments)})]
    return []


def _judge_form(store, settings: Settings, county: str, doc: Document, form: FormRecord,
                photo_in_email: bool, submission_id: str, received_at: dt.datetime) -> FormOutcome:
    problems = rules.validate_form(form, doc.file, settings.campaign, photo_in_email)
    status = rules.status_for(problems)
    fields = form.fields()
    fields["photo"] = form.photo or photo_in_email
    outcome = FormOutcome(doc.file, form.name, status, [p.to_dict() for p in problems], fields)
    if form.name:
        _record_version(store, county, outcome, doc, form, submission_id, received_at, settings)
    return outcome


def _record_version(store, county: str, outcome: FormOutcome, doc: Document, form: FormRecord,
                    submission_id: str, received_at: dt.datetime, settings: Settings) -> None:
    """The form becomes the candidate's current version; earlier versions are kept."""
    earlier = store.candidates.get(county, form.name) or {}
    version = {
        "message_id": submission_id,
        "received_at": _iso(received_at, settings),
        "file": doc.file,
        "sha256": hashlib.sha256(doc.data).hexdigest(),
        "status": outcome.status,
        "problems": outcome.problems,
        "fields": outcome.fields,
    }
    photo_sha = store.files.put(form.photo_image) if form.photo_image else earlier.get("photo_file")
    store.candidates.put({
        **outcome.fields,
        "county": county,
        "status": outcome.status,
        "problems": [p["code"] for p in outcome.problems],
        "versions": [*earlier.get("versions", []), version],
        "report": earlier.get("report"),
        "photo_file": photo_sha,
        "updated_at": version["received_at"],
    })


def _places_used(store, county: str | None) -> int:
    if county is None:
        return 0
    return sum(1 for c in store.candidates.current(county) if c["status"] != "withdrawn")


def _store_file(store, att: Attachment) -> dict:
    return {"name": att.filename, "sha256": store.files.put(att.data), "size": len(att.data),
            "kind": sniff(att.data)}


def _skip(store, parsed: ParsedEmail, submission_id: str, digest: str, received_at: dt.datetime,
          settings: Settings, origin: dict | None, reason: str) -> dict:
    submission = _submission(parsed, submission_id, digest, received_at, settings, origin,
                             county=settings.county_of(parsed.from_addr), status="skipped",
                             files=[{"name": a.filename, "size": len(a.data)} for a in parsed.attachments],
                             problems=[], reason=reason)
    store.submissions.add(submission)
    log.info("%s skipped: %s", submission_id, reason)
    return submission


def _submission(parsed: ParsedEmail, submission_id: str, digest: str, received_at: dt.datetime,
                settings: Settings, origin: dict | None, *, county, status, files, problems,
                reason: str = "") -> dict:
    return {
        "message_id": submission_id,
        "from": parsed.from_addr,
        "county": county,
        "subject": parsed.subject,
        "received_at": _iso(received_at, settings),
        "status": status,
        "reason": reason,
        "problems": list(dict.fromkeys(problems)),
        "files": files,
        "sha256": digest,
        "origin": origin or {},
    }


def _iso(moment: dt.datetime, settings: Settings) -> str:
    return moment.astimezone(settings.campaign.timezone).isoformat(timespec="seconds")
