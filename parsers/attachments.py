"""Every attachment of an email read into Documents: forms, a report, an image, or a file
that cannot be read and why. Routing is by content (magic bytes), never by the file's name.

Containers (.zip, .rar, .7z, winmail.dat) are opened first — one level of nesting — and each
file inside becomes a Document named "材料.zip/张三.docx". Legacy documents (.doc, .wps, .rtf,
.odt) of the whole email then go to LibreOffice in one batch, binary spreadsheets (.xls, .et)
in another, and everything is read — every document through one entry point
(`_read_document`): within the email's budget of time and expanded bytes (parsers/limits.py),
in a sandboxed child (parsers/sandbox.py). A document may hold several candidates' forms.

An email's plain documents (.docx, .pdf, .xlsx attached as themselves) may be handed to the
sandbox ahead (`read_ahead`), while the worker is busy with the email before; reading then takes
their results, decided by the same limits, budget checks and order as if read then.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from parsers import archives, ocr, sandbox
from parsers.archives import Budget
from parsers.convert import to_docx, to_xlsx
from parsers.errors import NotAForm, UnreadableFile
from parsers.normalize import looks_garbled
from parsers.records import Attachment, FormRecord, ReportRecord
from parsers.limits import MIN_SECONDS, OUT_OF_TIME, XML_TOO_BIG, EmailBudget, xml_too_big
from parsers.sandbox import WALL_SECONDS, run_limited
from parsers.sniff import DOCUMENT_EXTENSIONS, extension, sniff
from parsers.tnef import tnef_members

UNSUPPORTED = "文件格式无法识别，推荐表请使用 Word（.docx/.doc）、Excel（.xlsx/.xls）或 PDF 格式"
EMPTY = "文件为空（0 字节）"
ENCRYPTED = "文件设置了打开密码，无法读取；请取消密码后重新发送"
TOO_DEEP = "压缩包内又套有多层压缩包，请解压后直接发送文件"
NO_TEXT = "文档中没有任何文字"
GARBLED = "文件内容无法识别（可能已损坏），请检查后重新发送"

CONTAINERS = {"zip", "rar", "7z", "tnef"}
LEGACY = {"ole": "doc", "rtf": "rtf", "odt": "odt"}   # sniffed kind → extension for soffice
_SOFFICE_EXTENSION = {**LEGACY, "xls": "xls"}
_WORD_EXTENSIONS = {"doc", "docx", "docm", "dotx", "dot", "wps", "wpt", "rtf"}
MAX_DEPTH = 2          # an attachment (0), a file in an archive (1), in an archive in it (2)
_PLAIN = ("docx", "pdf", "xlsx")   # read by `_read_document` as they are: may be read ahead


@dataclass
class Document:
    file: str                      # the attachment's display name; "材料.zip/张三.docx" inside one
    kind: str                      # form | report | image | unreadable | other
    data: bytes
    form: FormRecord | None = None   # the first of `forms`
    report: ReportRecord | None = None
    reason: str = ""               # for unreadable: a short Chinese phrase for the reply
    format: str = ""               # what the bytes are: docx, doc, rtf, pdf, image, ...
    scan: bool = False             # an image, or a PDF whose pages carry no text
    forms: list[FormRecord] = field(default_factory=list)   # every form, in document order
    pages: list | None = None      # a scan's pages as OCR read them (None: not read)
    unread: list[str] | None = None   # a scanned form's required fields read without confidence
    seal_file: str = ""            # the scan whose seals this form's `seals` come from

    def __post_init__(self):
        if self.form is not None and not self.forms:
            self.forms = [self.form]
        elif self.forms and self.form is None:
            self.form = self.forms[0]


@dataclass
class _File:
    name: str
    data: bytes
    kind: str          # as sniffed
    depth: int


def read_attachments(attachments: list[Attachment], budget: EmailBudget | None = None,
                     ahead: dict[bytes, sandbox.Call] | None = None) -> list[Document]:
    """Every file of the email read within `budget` (the email's time and expanded bytes):
    files it does not reach are unreadable, saying so. `ahead`: from `read_ahead`; the calls
    taken are removed from it (the caller drops the rest)."""
    budget = budget or EmailBudget()
    ahead = {} if ahead is None else ahead
    archive_budget = Budget()
    files: list[_File | Document] = []
    for att in attachments:
        files += _unpacked(att.filename, att.data, 0, archive_budget)
    pending = [f for f in files if isinstance(f, _File)]
    converted = {**_converted([f for f in pending if _legacy(f)], to_docx, budget),
                 **_converted([f for f in pending if f.kind == "xls"], to_xlsx, budget)}
    return _scanned_forms([f if isinstance(f, Document) else _read(f, converted, budget, ahead)
                           for f in files])


def read_ahead(attachments: list[Attachment]) -> dict[bytes, sandbox.Call]:
    """The email's plain documents handed to the sandbox now, without waiting (when it is idle,
    as many as its pipe holds), keyed by their bytes, for `read_attachments`. Their time is not
    the email's: the budget starts when the email is read, and each document is then allowed
    what it would be allowed if read then, counted from when the sandbox started it."""
    plain = list(dict.fromkeys(a.data for a in attachments if sniff(a.data) in _PLAIN))
    return dict(zip(plain, sandbox.read_ahead(_parse_document, [(data,) for data in plain])))


# ---- containers -----------------------------------------------------------------------------

def _unpacked(name: str, data: bytes, depth: int, budget: Budget) -> list[_File | Document]:
    kind = sniff(data)
    if kind == "zip" and extension(name) in _WORD_EXTENSIONS:
        kind = "docx"   # a damaged Word file: the Word reader says what is wrong with it
    if kind not in CONTAINERS:
        return [_File(name, data, kind, depth)]
    if depth >= MAX_DEPTH:
        return [_unreadable(name, data, TOO_DEEP, kind)]
    try:
        inner = (tnef_members(data, budget) if kind == "tnef"
                 else archives.members(data, kind, budget))
    except UnreadableFile as exc:
        return [_unreadable(name, data, exc.reason, kind)]
    out: list[_File | Document] = []
    for inner_name, inner_data in inner:
        out += _unpacked(f"{name}/{_display(inner_name)}", inner_data, depth + 1, budget)
    return out


def _display(path: str) -> str:
    """A member's own name, without the folders it sat in or characters a mail client hides."""
    base = path.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    return "".join(ch for ch in base if ch.isprintable()).strip() or "未命名文件"


# ---- legacy documents ------------------------------------------------------------------------

def _legacy(f: _File) -> bool:
    return f.kind in LEGACY or (f.kind == "html" and extension(f.name) in _WORD_EXTENSIONS)


def _converted(files: list[_File], convert, budget: EmailBudget) -> dict[int, bytes | UnreadableFile]:
    """id(file) → its .docx (or .xlsx) bytes or why it could not be converted: one soffice
    call for all the files of one kind, stopped when the email's time runs out."""
    if files and budget.seconds_left() < MIN_SECONDS:
        return {id(f): UnreadableFile(OUT_OF_TIME) for f in files}
    results = convert([(f.data, _SOFFICE_EXTENSION.get(f.kind, "html")) for f in files],
                      max_seconds=budget.seconds_left())
    return {id(f): result for f, result in zip(files, results)}


# ---- reading one file ------------------------------------------------------------------------

def _read(f: _File, converted: dict, budget: EmailBudget, ahead: dict) -> Document:
    if f.kind == "image":
        return _read_scan(Document(f.name, "image", f.data, format="image", scan=True), budget)
    if f.kind in _PLAIN:
        return _read_document(f.name, f.data, f.data, f.kind, budget, ahead.pop(f.data, None))
    if f.kind == "ole-encrypted":
        return _unreadable(f.name, f.data, ENCRYPTED, "docx")
    if id(f) in converted:
        result = converted[id(f)]
        if isinstance(result, UnreadableFile):
            return _unreadable(f.name, f.data, result.reason, f.kind)
        return _read_document(f.name, f.data, result, extension(f.name) or f.kind, budget)
    if f.kind == "empty" and extension(f.name) in DOCUMENT_EXTENSIONS:
        return _unreadable(f.name, f.data, EMPTY, "empty")
    if f.kind in ("empty", "office") or f.depth > 0 and _junk_member(f):
        return Document(f.name, "other", f.data, format=f.kind)
    if extension(f.name) in DOCUMENT_EXTENSIONS or f.depth > 0:
        return _unreadable(f.name, f.data, UNSUPPORTED, f.kind)
    return Document(f.name, "other", f.data, format=f.kind)


def _junk_member(f: _File) -> bool:
    """Files archivers and Windows leave next to the documents: passed over, not complained of."""
    return extension(f.name) in ("txt", "ini", "db", "url", "lnk", "md", "html", "htm", "xml")


def _unreadable(name: str, data: bytes, reason: str, fmt: str) -> Document:
    return Document(name, "unreadable", data, reason=reason, format=fmt)


def _read_document(name: str, original: bytes, data: bytes, fmt: str, budget: EmailBudget,
                   early: sandbox.Call | None = None) -> Document:
    """The one way a document is parsed: within the email's budget, in a sandboxed child
    (memory, CPU and wall-clock limits), whatever its format. `data` is what is read (the
    .docx a .doc was converted to), `original` what the county sent; `early`, its reading
    handed to the sandbox ahead."""
    refusal = budget.refusal(data)
    if refusal:
        if early is not None:
            early.drop()
        return _unreadable(name, original, refusal, fmt)
    wall = min(WALL_SECONDS, budget.seconds_left())
    try:
        kind, record = (early.result(wall) if early is not None
                        else run_limited(_parse_document, data, wall=wall))
    except UnreadableFile as exc:
        return _unreadable(name, original, exc.reason, fmt)
    if kind == "scan":
        return _read_scan(Document(name, "image", original, format=fmt, scan=True), budget)
    if kind == "form":
        return Document(name, "form", original, forms=record, format=fmt)
    if kind == "other":       # a spreadsheet that is no form (a list, a budget): passed over
        return Document(name, "other", original, format=fmt)
    if not record.chars:
        return _unreadable(name, original, NO_TEXT, fmt)
    if looks_garbled(record.head):   # LibreOffice imports a file it cannot parse as text
        return _unreadable(name, original, GARBLED, fmt)
    return Document(name, "report", original, report=record, format=fmt)


def _parse_document(data: bytes) -> tuple[str, list[FormRecord] | ReportRecord | None]:
    """In the sandbox: ("form", [FormRecord, ...]) | ("report", ReportRecord) | ("scan", None)
    | ("other", None) by what the bytes are. Raises UnreadableFile."""
    from parsers.readers import docx_report, parse_forms, parse_sheet_forms, read_pdf

    kind = sniff(data)
    if kind == "pdf":
        return read_pdf(data)
    if xml_too_big(data):   # checked from the zip's directory, before any XML is parsed
        raise UnreadableFile(XML_TOO_BIG)
    if kind == "xlsx":
        try:
            return "form", parse_sheet_forms(data)
        except NotAForm:
            return "other", None
    try:
        return "form", parse_forms(data)
    except NotAForm:
        return "report", docx_report(data)


# ---- scans ---------------------------------------------------------------------------------

def _read_scan(doc: Document, budget: EmailBudget) -> Document:
    """A scan's pages read by OCR in the sandbox, when OCR is installed, within what is left of
    the email's time. A scan that cannot be read (or not in time) stays what it was before OCR:
    evidence, or the candidate's photo."""
    if budget.seconds_left() < MIN_SECONDS or not ocr.available():   # loads the models here,
        return doc                                                   # before the sandbox forks
    from parsers import scan_form   # OpenCV and numpy: only with the [ocr] extra

    sandbox.share_loaded()   # the process that reads it shares them

    limits = scan_form.sandbox_limits(doc.data, doc.format)
    limits["wall"] = min(limits["wall"], budget.seconds_left())
    try:
        doc.pages = run_limited(scan_form.read_scan_pages, doc.data, doc.format, **limits)
    except (UnreadableFile, NotAForm):
        pass
    return doc


def _scanned_forms(docs: list[Document]) -> list[Document]:
    """Scanned pages that hold a form, as form Documents: a page with the 姓名 row starts a
    form, and the pages after it (the form's page 2, as another picture or PDF page) continue
    it. Pages that hold no form stay images."""
    if not any(doc.pages for doc in docs):
        return docs
    from parsers import scan_form

    out: list[Document] = []
    group: list[tuple[Document, list]] = []
    for doc in docs + [None]:
        pages = doc.pages if doc is not None and doc.pages else None
        if pages and group and not scan_form.starts_form(pages[0]):
            group.append((doc, pages))
            continue
        out += _scan_group(group)
        group = []
        if pages:
            group = [(doc, pages)]
        elif doc is not None:
            out.append(doc)
    return out


def _scan_group(group: list[tuple[Document, list]]) -> list[Document]:
    if not group:
        return []
    from parsers import scan_form

    if not scan_form.starts_form(group[0][1][0]):   # a form's page 2 alone: evidence only
        return [doc for doc, _ in group]
    try:
        scanned = scan_form.form_from_pages([page for _, pages in group for page in pages])
    except NotAForm:
        return [doc for doc, _ in group]
    first = group[0][0]
    name = "、".join(dict.fromkeys(doc.file for doc, _ in group))
    return [Document(name, "form", first.data, form=scanned.record, format="scan", scan=True,
                     pages=[p for _, pages in group for p in pages], unread=scanned.unread,
                     seal_file=name)]
