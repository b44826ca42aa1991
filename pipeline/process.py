"""One email through intake: parse, judge, store, and queue the reply — in one transaction.

`process_message` is the only place that knows the order of the steps; each step's work lives
in the package that owns it (parsers, rules, store, outbox). Once an email's documents are read,
the next email (`read_next`) is parsed and its plain documents handed to the sandbox, so that
they are read while this one is judged, stored and answered.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import logging
from dataclasses import dataclass, field

from outbox.compose import Question, ReplyContent, compose_forward, compose_reply, reply_message_id
from outbox.bounces import record_bounce
from outbox.manners import no_reply_reason
from outbox.queue import enqueue, enqueue_reply
from outbox.wording import deadline_sentence, receipt_number
from parsers import attachments as attachments_reader
from parsers.attachments import Document, read_attachments
from parsers.auth_results import authentication_failures
from parsers.email_message import parse_email
from parsers.limits import EmailBudget
from parsers.records import Attachment, FormRecord, ParsedEmail, Problem
from parsers.reply_text import Words, read_words
from parsers.sandbox import Call
from parsers.sniff import sniff
from pipeline import rules
from pipeline.rules import NEEDS_PERSON
from pipeline.season import CountyJudgement, Received, iso, judge_county_email
from pipeline.settings import Settings

log = logging.getLogger("intake.process")

@dataclass
class Judgement:
    """Everything decided about one email's attachments."""
    forms: list[tuple[Document, FormRecord]] = field(default_factory=list)
    reports: list[Document] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)   # about the email or a file as a whole
    images: list[Document] = field(default_factory=list)
    documents: int = 0                                       # attachments a county meant us to read


READ_AHEAD_BYTES = 4 << 20   # a larger next message is not parsed ahead: a crash of the worker
                             # while parsing it would be counted against the message in hand


@dataclass
class _ReadAhead:
    """The next message, parsed, and its documents handed to the sandbox."""
    raw: bytes
    parsed: ParsedEmail
    documents: dict[bytes, Call]


_ahead: _ReadAhead | None = None   # one message at most


def process_message(raw: bytes, received_at: dt.datetime, store, settings: Settings,
                    now: dt.datetime, origin: dict | None = None, oversize: int | None = None,
                    trust_sender: bool = False, read_next: bytes | None = None) -> dict | None:
    """Record one email and queue its reply. Returns the submission, or None when this exact
    message was processed before. Call inside `store.transaction()`.

    `oversize`: the message's size when it was over the limit and only its headers were read.
    `trust_sender`: an operator released it after its sender authentication failed.
    `read_next`: the message to be processed after this one, read ahead (`read_ahead`)."""
    parsed, early = _taken_ahead(raw)
    try:
        return _process_message(raw, parsed, early, received_at, store, settings, now, origin,
                                oversize, trust_sender, read_next)
    except BaseException as exc:
        if not isinstance(exc, Exception):   # Ctrl-C, exit: the next message is not read
            read_next = None
        raise
    finally:
        _documents_read(early, read_next)


def read_ahead(raw: bytes | None) -> None:
    """Parse `raw` now and hand its plain documents to the sandbox, for `process_message(raw)`
    to take; what was read ahead before and not taken (a message that failed) is dropped."""
    global _ahead
    if raw is not None and _ahead is not None and _ahead.raw is raw:
        return
    if _ahead is not None:
        _drop(_ahead.documents)
    _ahead = None
    if raw is None or len(raw) > READ_AHEAD_BYTES:
        return
    try:
        parsed = parse_email(raw)
    except Exception:  # noqa: BLE001 — parsed again in its turn, and failed as a message then
        return
    try:
        documents = attachments_reader.read_ahead(parsed.attachments)
    except Exception:  # noqa: BLE001 — the sandbox could not take them: read in their turn
        log.warning("reading the next message's documents ahead failed", exc_info=True)
        documents = {}
    _ahead = _ReadAhead(raw, parsed, documents)


def _taken_ahead(raw: bytes) -> tuple[ParsedEmail, dict[bytes, Call]]:
    global _ahead
    if _ahead is not None and (_ahead.raw is raw or _ahead.raw == raw):
        taken, _ahead = _ahead, None
        return taken.parsed, taken.documents
    return parse_email(raw), {}


def _documents_read(early: dict[bytes, Call], read_next: bytes | None) -> None:
    """This message needs the sandbox no more: what it did not take is dropped, the next
    message's documents are handed over."""
    _drop(early)
    read_ahead(read_next)


def _drop(documents: dict[bytes, Call]) -> None:
    for call in documents.values():
        call.drop()
    documents.clear()


def _process_message(raw: bytes, parsed: ParsedEmail, early: dict[bytes, Call],
                     received_at: dt.datetime, store, settings: Settings, now: dt.datetime,
                     origin: dict | None, oversize: int | None, trust_sender: bool,
                     read_next: bytes | None) -> dict | None:
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

    if parsed.from_doubt and not trust_sender:
        # "hetang@…, evil@…", or a display name spelling a county's address: whoever sent it
        # files under no county until an operator has asked the county (`intake release`).
        return _skip(store, parsed, submission_id, digest, received_at, settings, origin,
                     f"sender unclear: {parsed.from_doubt}", status="held", county=None,
                     raw_sha256=store.files.put(raw))
    reason = no_reply_reason(parsed.headers, parsed.from_addr, settings.own_addresses())
    if reason:
        if reason == "bounce":  # a bounce of one of our replies marks it undeliverable
            record_bounce(store, parsed.headers, submission_id, now)
        return _skip(store, parsed, submission_id, digest, received_at, settings, origin, reason)

    county = settings.county_of(parsed.from_addr)
    failed_checks = [] if trust_sender else authentication_failures(parsed.headers, settings.mailbox.authserv_id)
    if county is not None and failed_checks:
        # A registered address whose mail failed SPF/DKIM/DMARC may be forged: nothing is
        # accepted or answered until an operator releases it (`intake release`).
        return _skip(store, parsed, submission_id, digest, received_at, settings, origin,
                     f"sender authentication failed ({', '.join(failed_checks)})", status="held",
                     raw_sha256=store.files.put(raw))
    if oversize is not None:
        if county is None:
            return _skip(store, parsed, submission_id, digest, received_at, settings, origin,
                         "unknown sender, message over the size limit")
        files = []
        season = CountyJudgement("submission", "needs-correction", [Problem("message-too-large", detail={
            "size_mb": round(oversize / 2**20, 1), "limit_mb": settings.mailbox.max_message_mb})])
    else:
        judgement = judge_attachments(parsed.attachments, cloud=bool(parsed.cloud_links),
                                      budget=EmailBudget(settings.mailbox.email_seconds,
                                                         settings.mailbox.email_expanded_mb << 20),
                                      ahead=early)
        _documents_read(early, read_next)
        if county is None and not judgement.documents:
            return _skip(store, parsed, submission_id, digest, received_at, settings, origin,
                         "unknown sender without documents")
        words = _words_without_documents(parsed, judgement) if county is not None else None
        if words is not None and words.verdict == "question":
            # A question, a request, an explanation: a person must read it (SPEC: needs-person).
            return pass_to_person(store, settings, parsed, submission_id, digest, received_at,
                                  origin, county, words.text, now)
        if words is not None and words.verdict == "thanks" and _answers_our_reply(parsed, store):
            # "收到，谢谢" in answer to a receipt: asking that clerk for an attachment would be rude.
            return _skip(store, parsed, submission_id, digest, received_at, settings, origin,
                         "answer to our reply without documents")
        files = [_store_file(store, a) for a in parsed.attachments]
        if county is None:
            problems = [Problem("unknown-sender", detail={"address": parsed.from_addr})]
            season = CountyJudgement("submission", "rejected", problems)
        else:
            season = judge_county_email(
                store, settings, county, Received(submission_id, parsed.subject, received_at),
                judgement.forms, judgement.reports, judgement.problems, bool(judgement.images),
                judgement.images)
    return _record_and_reply(store, settings, parsed, submission_id, digest, received_at, origin,
                             county, season, files, now)


def _words_without_documents(parsed: ParsedEmail, judgement: "Judgement") -> Words | None:
    """A county email carrying nothing to read (and no 查询 or 撤回 subject): what its writer
    typed, and whether that is a question, a forgotten attachment or a thank-you. None when
    the email has documents (or cloud links) for the rules to judge."""
    if judgement.documents or parsed.cloud_links:
        return None
    if rules.is_status_query(parsed.subject) or rules.is_withdrawal(parsed.subject):
        return None
    return read_words(parsed.text, parsed.html, parsed.subject)


def _answers_our_reply(parsed: ParsedEmail, store) -> bool:
    return any(i in store.outbox for i in [parsed.in_reply_to, *parsed.references] if i)


def pass_to_person(store, settings: Settings, parsed: ParsedEmail, submission_id: str, digest: str,
                   received_at: dt.datetime, origin: dict | None, county: str, words: str,
                   now: dt.datetime) -> dict:
    """Record the email as needing a person, tell the county whom it was passed to, and, when
    `[digest] forward_questions` is on, forward it to the contact at once."""
    submission = _submission(parsed, submission_id, digest, received_at, settings, origin,
                             county=county, status=NEEDS_PERSON, problems=[],
                             files=[_store_file(store, a) for a in parsed.attachments])
    submission.update(words=words, answered_at=None)
    submission["receipt"] = _receipt(store, settings, county)   # its reply's subject is unique too
    store.submissions.add(submission)
    campaign = settings.campaign
    local = received_at.astimezone(campaign.timezone)
    content = ReplyContent(
        to=parsed.from_addr, county=county, status=NEEDS_PERSON, received_at=local,
        original_subject=parsed.subject, original_message_id=parsed.message_id,
        references=parsed.references, kind="question", receipt=submission["receipt"],
        deadline_note=deadline_note(received_at, settings),
        contact_name=campaign.contact_name, contact_phone=campaign.contact_phone)
    held = enqueue_reply(store, compose_reply(content, settings.smtp.from_address, submission_id, now),
                         submission_id, now, settings.smtp, parsed.in_reply_to, parsed.references)
    if held:
        store.submissions.update(submission_id, reply="skipped", reason=held)
        submission.update(reply="skipped", reason=held)
    if settings.digest.forward_questions:
        question = Question(submission_id, county, parsed.from_addr, parsed.subject, local, words)
        forward_id = reply_message_id(submission_id, "forward", settings.smtp.from_address)
        enqueue(store, compose_forward(question, from_address=settings.smtp.from_address,
                                       to=settings.digest.to, contact_name=campaign.contact_name,
                                       message_id=forward_id, now=now),
                submission_id, "forward", now)
    log.info("%s from county %s: %s", submission_id, county, NEEDS_PERSON)
    return submission


def deadline_note(moment: dt.datetime, settings: Settings) -> str:
    """The sentence naming the deadline that applies on `moment`'s date."""
    return deadline_sentence(rules.deadlines_ahead(moment, settings.campaign),
                             settings.campaign.report_deadline)


def _record_and_reply(store, settings: Settings, parsed: ParsedEmail, submission_id: str, digest: str,
                      received_at: dt.datetime, origin: dict | None, county: str | None,
                      season: CountyJudgement, files: list[dict], now: dt.datetime) -> dict:
    outcomes = [*season.forms, *season.reports]
    submission = _submission(parsed, submission_id, digest, received_at, settings, origin,
                             county=county, status=season.status, files=files,
                             problems=[p.code for p in season.problems] + [p["code"] for o in outcomes for p in o.problems])
    # Numbered in this transaction: a number is never given twice, even after a crash.
    submission["receipt"] = _receipt(store, settings, county)
    store.submissions.add(submission)
    repeats = _answered_repeats(store, parsed.from_addr, files, now)
    if len(repeats) >= REPEAT_ANSWERS:
        # The same files again and again from one address, answered twice already today: a
        # robot re-sending what it gets back. Recorded and judged, not answered again.
        reason = f"repeat: the same documents were answered {len(repeats)} times in the last day"
        store.submissions.update(submission_id, reply="skipped", reason=reason)
        submission.update(reply="skipped", reason=reason)
        log.info("%s from county %s: %s, not answered (repeat)", submission_id, county, season.status)
        return submission
    # The history is read for a status query's roster only (how many versions, what is open).
    candidates = store.candidates.current(county, history=season.kind == "query") if county else []
    content = ReplyContent(
        to=parsed.from_addr, county=county, status=season.status,
        received_at=received_at.astimezone(settings.campaign.timezone),
        original_subject=parsed.subject, original_message_id=parsed.message_id,
        references=parsed.references, problems=[p.to_dict() for p in season.problems],
        forms=season.forms, reports=season.reports, kind=season.kind, withdrawn=season.withdrawn,
        roster=sorted(candidates, key=lambda c: c.get("updated_at") or "") if season.kind == "query" else [],
        places_used=rules.places_used(candidates), places_max=settings.campaign.candidates_max,
        repeat_of=_received(repeats[0], settings) if repeats else None,
        receipt=submission["receipt"],
        versions=store.candidates.version_numbers(county, submission_id) if county else {},
        deadline_note=deadline_note(received_at, settings))
    held = enqueue_reply(store, compose_reply(content, settings.smtp.from_address, submission_id, now),
                         submission_id, now, settings.smtp, parsed.in_reply_to, parsed.references)
    if held:  # recorded and judged, but a reply now could feed a loop or a flood
        store.submissions.update(submission_id, reply="skipped", reason=held)
        submission.update(reply="skipped", reason=held)
    log.info("%s from county %s: %s", submission_id, county or "(unknown sender)", season.status)
    return submission


REPEAT_WINDOW = dt.timedelta(days=1)
REPEAT_ANSWERS = 2    # answers one set of identical files gets from us per sender and day


def _answered_repeats(store, sender: str, files: list[dict], now: dt.datetime) -> list[dict]:
    """Earlier submissions from `sender`, answered in the last day, that carried exactly these
    files (the same bytes), oldest first."""
    hashes = sorted(f["sha256"] for f in files if f.get("sha256"))
    if not hashes or not sender:
        return []
    # to=: only this sender's replies are looked at (the outbox's index), not the day's.
    replies = store.outbox.recent(now - REPEAT_WINDOW, lambda r: r.get("kind") == "reply"
                                  and r["to"].strip().lower() == sender, to=sender)
    same = [r["submission_id"] for r in reversed(replies)
            if sorted(store.submissions.file_hashes(r["submission_id"])) == hashes]
    return [store.submissions.get(message_id) for message_id in same]


def _received(submission: dict, settings: Settings) -> dt.datetime:
    return dt.datetime.fromisoformat(submission["received_at"]).astimezone(settings.campaign.timezone)


def _receipt(store, settings: Settings, county: str | None) -> str:
    """The next receipt number of the county (of unregistered senders when None) this campaign."""
    year = settings.campaign.submission_deadline.year
    return receipt_number(year, county, store.counters.next(f"receipt:{year}:{county or ''}"))


def judge_attachments(attachments: list[Attachment], cloud: bool = False,
                      budget: EmailBudget | None = None, ahead: dict[bytes, Call] | None = None) -> Judgement:
    """Sort the email's documents into forms, scans and problems; files of no interest
    (signatures, text notes) are passed over. `ahead`: their reading handed to the sandbox
    ahead (parsers/attachments.py `read_ahead`)."""
    j = Judgement()
    for doc in read_attachments(attachments, budget, ahead):
        if doc.kind == "other":
            continue
        j.documents += 1
        if doc.kind == "form":   # one document may hold several candidates' forms
            j.forms += [(doc, form) for form in doc.forms]
        elif doc.kind == "image":
            j.images.append(doc)
        elif doc.kind == "report":
            j.reports.append(doc)
        elif doc.kind == "unreadable":
            j.problems.append(Problem("unreadable-file", doc.file, detail={"reason": doc.reason}))
    j.forms = _scans_as_seal_evidence(j.forms)
    j.reports = [d for d in j.reports if rules.is_report(d.report.title, d.file, bool(j.forms))]
    if not j.forms and not j.reports:
        j.problems += _nothing_read(attachments, j, cloud)
    return j


def _scans_as_seal_evidence(forms: list[tuple[Document, FormRecord]]) -> list[tuple[Document, FormRecord]]:
    """A Word (or PDF) form and the scan of the same candidate's stamped paper in one email:
    the text version is the record, the scan only lends it its seals (tied by the 姓名 read
    from the scan). A scan with no text version beside it is the record itself."""
    texts = {form.name: (doc, form) for doc, form in forms if form.source != "scan" and form.name}
    kept = []
    for doc, form in forms:
        twin = texts.get(form.name) if form.source == "scan" else None
        if twin is None:
            kept.append((doc, form))
            continue
        twin_doc, twin_form = twin
        twin_form.seals = {k: twin_form.seals.get(k, False) or v for k, v in form.seals.items()}
        twin_doc.seal_file = doc.file
        log.info("a scan was taken as the seal evidence of a text form")
    return kept


def _nothing_read(attachments: list[Attachment], j: Judgement, cloud: bool = False) -> list[Problem]:
    if not attachments:
        # a 163/QQ 超大附件 link instead of a file: the reply says why it cannot be fetched
        return [Problem("no-attachment", detail={"cloud": True} if cloud else {})]
    if j.images and not j.problems:
        return [Problem("scanned-only", "、".join(d.file for d in j.images))]
    if not j.problems:
        return [Problem("nothing-recognized", detail={"files": "、".join(a.filename for a in attachments)})]
    return []


def _store_file(store, att: Attachment) -> dict:
    return {"name": att.filename, "sha256": store.files.put(att.data), "size": len(att.data),
            "kind": sniff(att.data)}


def _skip(store, parsed: ParsedEmail, submission_id: str, digest: str, received_at: dt.datetime,
          settings: Settings, origin: dict | None, reason: str, status: str = "skipped",
          county: str | None = "", **extra) -> dict:
    """Recorded without a reply (status `skipped`, or `held` for an operator to release);
    `county` None when the sender's address cannot be trusted to name one."""
    if county == "":
        county = settings.county_of(parsed.from_addr)
    submission = _submission(parsed, submission_id, digest, received_at, settings, origin,
                             county=county, status=status,
                             files=[{"name": a.filename, "size": len(a.data)} for a in parsed.attachments],
                             problems=[], reason=reason)
    submission.update(extra)
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
        "received_at": iso(received_at, settings),
        "status": status,
        "reason": reason,
        "problems": list(dict.fromkeys(problems)),
        "files": files,
        "sha256": digest,
        "origin": origin or {},
    }
