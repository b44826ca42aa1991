"""Replies rendered from jinja2 templates into complete emails (SPEC §4)."""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
import secrets
import sys
import urllib.parse
from dataclasses import dataclass, field
from email.headerregistry import Address, HeaderRegistry
from email.message import EmailMessage
from email.parser import Parser
from email.policy import EmailPolicy
from email.utils import format_datetime

import jinja2

from outbox.wording import QUERY_SENTENCE, REVIEW_WORDS, describe  # noqa: F401
from parsers.records import FIELD_LABELS, FORM_FIELDS, OPINION_KEYS

STATUS_WORDS = {"accepted": "已受理", "needs-correction": "需补正", "rejected": "未受理",
                "withdrawn": "已撤回", "needs-person": "已转人工"}
# The bureau's review marks (intake mark), in the notice's words: 初选 builds the 储备库, the
# panel picks a 备选名单, from which 2-3 建议人选 go to the 领导小组.
# A candidate's standing, as a status-query reply shows it.
CANDIDATE_WORDS = {**STATUS_WORDS, "quota-exceeded": "超出名额，未计入"}

# auto_reload off: the templates ship with intake and do not change under a running one; on,
# each reply would stat its two templates again.
_env_html = jinja2.Environment(loader=jinja2.PackageLoader("outbox", "templates"),
                               autoescape=True, trim_blocks=True, lstrip_blocks=True, auto_reload=False)
_env_text = jinja2.Environment(loader=jinja2.PackageLoader("outbox", "templates"),
                               autoescape=False, trim_blocks=True, lstrip_blocks=True, auto_reload=False,
                               keep_trailing_newline=True)


@dataclass
class FormOutcome:
    """How one form in the email was judged."""
    file: str
    name: str
    status: str
    problems: list[dict] = field(default_factory=list)
    fields: dict = field(default_factory=dict)


@dataclass
class ReportOutcome:
    """How one report in the email was judged; `name` is the candidate it was tied to."""
    file: str
    name: str
    status: str
    problems: list[dict] = field(default_factory=list)
    title: str = ""
    chars: int = 0


@dataclass
class ReplyContent:
    to: str
    county: str | None
    status: str
    received_at: dt.datetime
    original_subject: str
    original_message_id: str
    references: list[str] = field(default_factory=list)
    problems: list[dict] = field(default_factory=list)     # about the email as a whole
    forms: list[FormOutcome] = field(default_factory=list)
    places_used: int = 0
    places_max: int = 3
    kind: str = "submission"          # submission | withdrawal | query | question
    reports: list[ReportOutcome] = field(default_factory=list)
    withdrawn: list[str] = field(default_factory=list)
    roster: list[dict] = field(default_factory=list)   # the county's candidates, for a query
    repeat_of: dt.datetime | None = None   # when the same files came from this sender before
    receipt: str = ""                 # 〔2022〕荷塘-003: never repeats, so no two subjects are alike
    versions: dict[str, int] = field(default_factory=dict)   # name → which version this email made
    deadline_note: str = ""           # outbox.wording.deadline_sentence(): the deadline that applies
    contact_name: str = ""            # [campaign] contact_name / contact_phone, for a passed-on question
    contact_phone: str = ""


class _ReplyPolicy(EmailPolicy):
    """policy.default, remembering the headers it has parsed and folded: most of a reply's
    headers are the same in every reply (From, Auto-Submitted, X-Intake-Status, each part's
    Content-Type, To for each county), and the standard library parses each header it is given
    and folds it again when the message is written, ~10 ms a reply, a third of its cost in a
    backlog. Header objects are immutable: sharing one between messages is safe. A short line
    of printable ASCII (Message-ID, Date, To) is written as it is, which is what folding gives;
    the bytes written are the same as policy.default's (tests/unit/test_reply_policy.py)."""

    def header_store_parse(self, name, value):
        if type(value) is str and len(value.splitlines()) <= 1:   # else the base class refuses it
            boundary = _BOUNDARY.search(value) if name.lower() == "content-type" else None
            if boundary:   # new in every reply: parsed once with the stand-in, made on demand
                template = value.replace(boundary.group(), _STAND_IN)
                parsed = _remembered(_PARSED, (self.header_factory, name, template),
                                     lambda: self.header_factory(name, template))
                if str(parsed) == template:
                    return name, _WithBoundary(name, value, lambda: self.header_factory(name, value))
            return name, _remembered(_PARSED, (self.header_factory, name, value),
                                     lambda: self.header_factory(name, value))
        if type(value) is Address:   # From: the same in every reply, but unhashable
            key = (self.header_factory, name, Address, value.display_name, value.username, value.domain)
            return name, _remembered(_PARSED, key, lambda: super(_ReplyPolicy, self).header_store_parse(name, value)[1])
        return super().header_store_parse(name, value)

    def header_max_count(self, name):
        return _remembered(_MAX_COUNT, name.lower(), lambda: super(_ReplyPolicy, self).header_max_count(name))

    def _fold(self, name, value, refold_binary=False):
        if not hasattr(value, "name"):
            return super()._fold(name, value, refold_binary)
        text = str(value)
        if (text.isascii() and text.isprintable() and "=?" not in text   # nothing to encode
                and len(name) + 2 + len(text) <= (self.max_line_length or 78)):
            return f"{name}: {text}{self.linesep}"   # what folding a short ASCII line gives
        boundary = _BOUNDARY.search(text) if name.lower() == "content-type" else None
        if boundary:   # new in every reply: folded once with a stand-in of its length and kind
            template = text.replace(boundary.group(), _STAND_IN)
            key = (name, template, self.linesep, self.max_line_length, self.utf8)
            folded = _remembered(_FOLDED, key, lambda: self.header_factory(name, template).fold(policy=self))
            return folded.replace(_STAND_IN, boundary.group())
        # By name, not the header's class: the registry makes a new class for every header.
        key = (name, text, self.linesep, self.max_line_length, self.utf8)
        return _remembered(_FOLDED, key, lambda: value.fold(policy=self))


# The boundaries _fresh_boundary writes, and one that stands in for them when folding.
_BOUNDARY = re.compile(r"={15}[0-9]{19}==")
_STAND_IN = "=" * 15 + "0" * 19 + "=="


class _WithBoundary(str):
    """A multipart Content-Type naming its fresh boundary: its text is all that composing and
    writing a reply ask of it (get_boundary, get_content_type and _fold read str()), so the
    header the registry would parse, ~0.3 ms, is only made if something asks for more. Used
    only when the same header with the stand-in boundary parses back to its own text."""

    def __new__(cls, name: str, text: str, make):
        self = super().__new__(cls, text)
        self.name, self._make, self._header = name, make, None
        return self

    def __getattr__(self, attr):   # .params, .defects...: those of the header the registry makes
        if attr.startswith("__") or attr in ("_make", "_header"):
            raise AttributeError(attr)
        if self._header is None:
            self._header = self._make()
        return getattr(self._header, attr)


class _RememberingRegistry(HeaderRegistry):
    """The standard registry makes a new class each time a header is parsed (type(), ~20 µs,
    several times a reply); the class of a name never changes, so it is made once."""

    def __init__(self):
        super().__init__()
        self._classes: dict = {}

    def __getitem__(self, name):
        key = name.lower()
        cls = self._classes.get(key)
        if cls is None:
            cls = self._classes[key] = super().__getitem__(name)
        return cls


_PARSED: dict = {}
_FOLDED: dict = {}
_MAX_COUNT: dict = {}


def _remembered(cache: dict, key, make):
    found = cache.get(key)
    if found is None:
        if len(cache) >= 2048:   # the unique ones (Subject, Message-ID, Date) would pile up
            cache.clear()
        found = cache[key] = make()
    return found


REPLY_POLICY = _ReplyPolicy(header_factory=_RememberingRegistry())


def reply_message_id(submission_id: str, kind: str, from_address: str) -> str:
    """The same submission and kind always give the same Message-ID, so a retry is one message."""
    digest = hashlib.sha256(f"{kind}\0{submission_id}".encode()).hexdigest()[:24]
    domain = from_address.rsplit("@", 1)[-1] or "intake.invalid"
    return f"<intake-{kind}-{digest}@{domain}>"


def reply_subject(content: ReplyContent) -> str:
    """Status word first; then who and what; then the receipt number and the time received, so
    no two replies share a subject (163 refuses a subject it has seen a few times as spam)."""
    return f"{_subject_head(content)}{_receipt_tail(content)}"


def _receipt_tail(content: ReplyContent) -> str:
    if not content.receipt:
        return ""
    at = content.received_at
    return f" {content.receipt} {at.month}月{at.day}日{at:%H:%M}收到"


def _subject_head(content: ReplyContent) -> str:
    if content.kind == "query":
        return f"【进度查询】{content.county} 信息技术能手推荐情况"
    if content.kind == "question":
        return f"【已转交】{content.county} 来信已转市工信局联系人"
    named = [*content.withdrawn, *(_versioned(f.name, content) for f in content.forms),
             *(r.name for r in content.reports)]
    # A name is what the county typed: a line break in it must not start a header of its own.
    names = "、".join(dict.fromkeys(" ".join(n.split()) for n in named if n and n.strip()))
    if content.kind == "withdrawal":
        what = "信息技术能手推荐人选"
    elif content.forms:
        what = "信息技术能手推荐表"
    elif content.reports:
        what = "信息技术能手调研报告"
    else:
        what = "信息技术能手推荐材料"
    parts = [f"【{STATUS_WORDS[content.status]}】", content.county or "", names, what]
    return " ".join(p for p in parts if p).replace("】 ", "】")


def _versioned(name: str, content: ReplyContent) -> str:
    number = content.versions.get(name, 0)
    return f"{name}（第{number}次报送）" if name and number > 1 else name


def compose_reply(content: ReplyContent, from_address: str, submission_id: str,
                  now: dt.datetime) -> EmailMessage:
    ctx = _template_context(content)
    msg = EmailMessage(policy=REPLY_POLICY)
    msg["From"] = Address("株洲市工信局信息技术能手评选", addr_spec=from_address)
    msg["To"] = content.to
    msg["Subject"] = reply_subject(content)
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = reply_message_id(submission_id, "reply", from_address)
    if content.original_message_id:
        msg["In-Reply-To"] = content.original_message_id
        msg["References"] = " ".join([*content.references, content.original_message_id][-10:])
    msg["Auto-Submitted"] = "auto-replied"
    msg["X-Auto-Response-Suppress"] = "All"
    msg["X-Intake-Status"] = content.status
    codes = _all_codes(content)
    if codes:
        msg["X-Intake-Problems"] = ", ".join(codes)
    template = {"query": "status", "question": "question"}.get(content.kind, "reply")
    # base64 named, not guessed: the standard library would quoted-printable-encode each part's
    # first lines to find base64 shorter, as it always is for Chinese text (~0.1 ms a reply).
    msg.set_content(_env_text.get_template(f"{template}.txt.j2").render(ctx), cte="base64")
    msg.add_alternative(_env_html.get_template(f"{template}.html.j2").render(ctx), subtype="html",
                        cte="base64")
    msg.set_boundary(_fresh_boundary(msg))
    return msg


def _fresh_boundary(msg: EmailMessage) -> str:
    """A boundary of the form the email generator gives (=…= and 19 random digits), found in
    none of the parts. Left to the generator, each reply compiled a regex for its own random
    boundary, which re's cache never keeps: ~0.5 ms a reply."""
    texts = [str(v) for part in msg.walk() for v in (*part.values(), part.get_payload())
             if isinstance(v, str)]
    while True:
        boundary = "=" * 15 + f"{secrets.randbelow(sys.maxsize):019d}" + "=="
        if not any(f"--{boundary}" in text for text in texts):
            return boundary


def _all_codes(content: ReplyContent) -> list[str]:
    codes = [p["code"] for p in content.problems]
    for outcome in [*content.forms, *content.reports]:
        codes += [p["code"] for p in outcome.problems]
    return list(dict.fromkeys(codes))


def _moment_words(local: dt.datetime) -> str:
    return f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}"


def _template_context(content: ReplyContent) -> dict:
    local = content.received_at
    return {
        "c": content,
        "status_word": STATUS_WORDS[content.status],
        "greeting": f"{content.county}科工信局" if content.county else "您好",
        "received": f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}",
        "repeat_of": _moment_words(content.repeat_of) if content.repeat_of else "",
        "email_problems": [describe(p) for p in content.problems],
        "forms": [_form_view(f) for f in content.forms],
        "reports": [_report_view(r) for r in content.reports],
        "withdrawn": "、".join(content.withdrawn),
        "roster": [_candidate_view(c) for c in content.roster],
        "places_left": max(content.places_max - content.places_used, 0),
        "deadline_note": content.deadline_note,
        "footer": content.deadline_note + QUERY_SENTENCE,
    }


def _form_view(form: FormOutcome) -> dict:
    rows = [(FIELD_LABELS[k], form.fields.get(k, "")) for k in FORM_FIELDS]
    opinions = form.fields.get("opinions") or {}
    rows += [(FIELD_LABELS[k], opinions.get(k, "")) for k in OPINION_KEYS]
    rows.append(("照片", "有" if form.fields.get("photo") else "无"))
    return {"file": form.file, "name": form.name or "（未填写姓名）",
            "status_word": STATUS_WORDS.get(form.status, form.status), "status": form.status,
            "sentences": [describe(p) for p in form.problems], "rows": rows,
            "scan": form.fields.get("source") == "scan", "scan_rows": _scan_rows(form.fields),
            "seals": _seal_words(form.fields.get("seals") or {})}


# What a county is shown of a form read from its scan, to check against the paper.
SCAN_ROWS = ("name", "sex", "birth", "ethnicity", "political_status", "employer_post", "phone")


def _scan_rows(fields: dict) -> list[tuple[str, str]]:
    rows = [(FIELD_LABELS[k], fields.get(k, "")) for k in SCAN_ROWS]
    deeds = (fields.get("deeds") or "").strip()
    rows.append(("主要事迹（首行）", deeds.split("\n", 1)[0][:60]))
    return rows


def _seal_words(seals: dict) -> str:
    """"推荐单位意见、纪检监察部门意见栏已盖章；成员单位意见、审批意见栏未见印章"."""
    stamped = [FIELD_LABELS[k] for k in OPINION_KEYS if seals.get(k)]
    bare = [FIELD_LABELS[k] for k in OPINION_KEYS if not seals.get(k)]
    parts = [f"{'、'.join(stamped)}栏已盖章"] if stamped else []
    parts += [f"{'、'.join(bare)}栏未见印章"] if bare else []
    return "；".join(parts)


def _report_view(report: ReportOutcome) -> dict:
    return {"file": report.file, "name": report.name, "title": report.title or report.file,
            "chars": report.chars, "status": report.status,
            "status_word": "已收到" if report.status == "accepted" else STATUS_WORDS[report.status],
            "sentences": [describe(p) for p in report.problems]}


def _candidate_view(candidate: dict) -> dict:
    """One line of a status-query reply: where the candidate stands and what is still open."""
    latest = (candidate.get("versions") or [{}])[-1]
    report = candidate.get("report")
    return {"name": candidate["name"],
            "status_word": CANDIDATE_WORDS.get(candidate["status"], candidate["status"]),
            "updated": (candidate.get("updated_at") or "")[:16].replace("T", " "),
            "versions": len(candidate.get("versions") or []),
            "sentences": [] if candidate["status"] in ("accepted", "withdrawn")
            else [describe(p) for p in latest.get("problems", [])],
            "report": f"已收到《{report['title'] or report['file']}》（{report['chars']}字）" if report else "尚未收到"}


def add_attachment(msg: EmailMessage, filename: str, data: bytes, mimetype: str) -> None:
    """Attach `data` under a name every client shows: RFC 2231 `filename*` (the standard) and an
    RFC 2047 `name=` on the Content-Type (what QQ mail and older Outlook read; without it QQ
    shows "tcmime.bin"). The headers are written by hand because the email package re-encodes
    `name=` as RFC 2231 and mangles long MIME types when it folds them."""
    head = (f"Content-Type: {mimetype};\n name=\"{_encoded_words(filename)}\"\n"
            f"Content-Disposition: attachment;\n {_rfc2231_param('filename', filename)}\n"
            "Content-Transfer-Encoding: base64\n\n")
    # Headers taken from source are kept as written rather than refolded (they are folded here).
    msg.policy = msg.policy.clone(refold_source="none")
    part = Parser(policy=msg.policy).parsestr(head + base64.encodebytes(data).decode("ascii"))
    if msg.get_content_type() != "multipart/mixed":
        msg.make_mixed()
    msg.attach(part)


def _encoded_words(text: str, max_bytes: int = 39) -> str:
    """RFC 2047 base64 words of at most 66 characters, one per folded line, never splitting a
    character's UTF-8 bytes."""
    words, chunk = [], ""
    for char in text:
        if len((chunk + char).encode("utf-8")) > max_bytes:
            words.append(chunk)
            chunk = ""
        chunk += char
    words.append(chunk)
    encoded = [f"=?utf-8?B?{base64.b64encode(w.encode('utf-8')).decode('ascii')}?=" for w in words]
    return "\n  ".join(encoded)


def _rfc2231_param(name: str, value: str, max_chars: int = 54) -> str:
    """name*=utf-8''... split into RFC 2231 continuations (name*0*=, name*1*=) of short lines."""
    quoted = urllib.parse.quote(value, safe="")
    pieces, rest = [], quoted
    while rest:
        cut = min(max_chars, len(rest))
        while cut < len(rest) and "%" in rest[max(cut - 2, 0):cut]:
            cut -= 1  # never split a %XX escape
        pieces.append(rest[:cut])
        rest = rest[cut:]
    if len(pieces) == 1:
        return f"{name}*=utf-8''{pieces[0]}"
    return ";\n ".join(f"{name}*{i}*={'utf-8' + chr(39) * 2 if i == 0 else ''}{p}"
                        for i, p in enumerate(pieces))


# ------------------------------------------------------- a county's question to the contact

@dataclass
class Question:
    """A county's email that needs a person: who wrote, when, and their own words."""
    message_id: str
    county: str
    sender: str
    subject: str
    received_at: dt.datetime      # in the campaign's time zone
    words: str


def compose_forward(question: Question, *, from_address: str, to: tuple[str, ...] | list[str],
                    contact_name: str, message_id: str, now: dt.datetime) -> EmailMessage:
    """The question forwarded to the contact at once; Reply-To is the county, so answering
    this email answers the clerk."""
    local = question.received_at
    ctx = {"q": question, "contact_name": contact_name,
           "received": f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}"}
    msg = EmailMessage()
    msg["From"] = Address("株洲市工信局信息技术能手评选", addr_spec=from_address)
    msg["To"] = ", ".join(to)
    msg["Reply-To"] = question.sender
    msg["Subject"] = f"【县市区来信】{question.county}：{' '.join(question.words.split())[:24]}"
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = message_id
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    msg["X-Intake-Question"] = question.message_id
    msg.set_content(_env_text.get_template("forward.txt.j2").render(ctx))
    msg.add_alternative(_env_html.get_template("forward.html.j2").render(ctx), subtype="html")
    return msg
