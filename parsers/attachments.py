"""Every attachment of an email read into Documents: a form, a report, an image, or a file
that cannot be read and why. Routing is by content (magic bytes), never by the file's name.

Containers (.zip, .rar, .7z, winmail.dat) are opened first — one level of nesting — and each
file inside becomes a Document named "材料.zip/张三.docx". Legacy documents (.doc, .wps, .rtf,
.odt) of the whole email then go to LibreOffice in one batch, and everything is read — every
document through one entry point (`_read_document`): within the email's budget of time and
expanded bytes (parsers/limits.py), in a sandboxed child (parsers/sandbox.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from parsers import archives
from parsers.archives import Budget
from parsers.convert import to_docx
from parsers.docx_form import parse_form
from parsers.docx_text import docx_report
from parsers.errors import NotAForm, UnreadableFile
from parsers.normalize import looks_garbled
from parsers.pdf_form import read_pdf
from parsers.records import Attachment, FormRecord, ReportRecord
from parsers.limits import MIN_SECONDS, OUT_OF_TIME, XML_TOO_BIG, EmailBudget, xml_too_big
from parsers.sandbox import WALL_SECONDS, run_limited
from parsers.sniff import DOCUMENT_EXTENSIONS, extension, sniff
from parsers.tnef import tnef_members

UNSUPPORTED = "文件格式无法识别，推荐表请使用 Word（.docx/.doc）或 PDF 格式"
EMPTY = "文件为空（0 字节）"
ENCRYPTED = "文件设置了打开密码，无法读取；请取消密码后重新发送"
TOO_DEEP = "压缩包内又套有多层压缩包，请解压后直接发送文件"
NO_TEXT = "文档中没有任何文字"
GARBLED = "文件内容无法识别（可能已损坏），请检查后重新发送"

CONTAINERS = {"zip", "rar", "7z", "tnef"}
LEGACY = {"ole": "doc", "rtf": "rtf", "odt": "odt"}   # sniffed kind → extension for soffice
_WORD_EXTENSIONS = {"doc", "docx", "docm", "dotx", "dot", "wps", "wpt", "rtf"}
MAX_DEPTH = 2          # an attachment (0), a file in an archive (1), in an archive in it (2)


@dataclass
class Document:
    file: str                      # the attachment's display name; "材料.zip/张三.docx" inside one
    kind: str                      # form | report | image | unreadable | other
    data: bytes
    form: FormRecord | None = None
    report: ReportRecord | None = None
    reason: str = ""               # for unreadable: a short Chinese phrase for the reply
    format: str = ""               # what the bytes are: docx, doc, rtf, pdf, image, ...
    scan: bool = False             # an image, or a PDF whose pages carry no text


@dataclass
class _File:
    name: str
    data: bytes
    kind: str          # as sniffed
    depth: int


def read_attachments(attachments: list[Attachment], budget: EmailBudget | None = None) -> list[Document]:
    """Every file of the email read within `budget` (the email's time and expanded bytes):
    files it does not reach are unreadable, saying so."""
    budget = budget or EmailBudget()
    archive_budget = Budget()
    files: list[_File | Document] = []
    for att in attachments:
        files += _unpacked(att.filename, att.data, 0, archive_budget)
    converted = _converted([f for f in files if isinstance(f, _File) and _legacy(f)], budget)
    return [f if isinstance(f, Document) else _read(f, converted, budget) for f in files]


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


def _converted(files: list[_File], budget: EmailBudget) -> dict[int, bytes | UnreadableFile]:
    """id(file) → its .docx bytes or why it could not be converted: one soffice call in all,
    stopped when the email's time runs out."""
    if files and budget.seconds_left() < MIN_SECONDS:
        return {id(f): UnreadableFile(OUT_OF_TIME) for f in files}
    results = to_docx([(f.data, LEGACY.get(f.kind, "html")) for f in files],
                      max_seconds=budget.seconds_left())
    return {id(f): result for f, result in zip(files, results)}


# ---- reading one file ------------------------------------------------------------------------

def _read(f: _File, converted: dict, budget: EmailBudget) -> Document:
    if f.kind == "image":
        return Document(f.name, "image", f.data, format="image", scan=True)
    if f.kind in ("docx", "pdf"):
        return _read_document(f.name, f.data, f.data, f.kind, budget)
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


def _read_document(name: str, original: bytes, data: bytes, fmt: str, budget: EmailBudget) -> Document:
    """The one way a document is parsed: within the email's budget, in a sandboxed child
    (memory, CPU and wall-clock limits), whatever its format. `data` is what is read (the
    .docx a .doc was converted to), `original` what the county sent."""
    refusal = budget.refusal(data)
    if refusal:
        return _unreadable(name, original, refusal, fmt)
    try:
        kind, record = run_limited(_parse_document, data, wall=min(WALL_SECONDS, budget.seconds_left()))
    except UnreadableFile as exc:
        return _unreadable(name, original, exc.reason, fmt)
    if kind == "scan":
        return Document(name, "image", original, format=fmt, scan=True)
    if kind == "form":
        return Document(name, "form", original, form=record, format=fmt)
    if not record.chars:
        return _unreadable(name, original, NO_TEXT, fmt)
    if looks_garbled(record.head):   # LibreOffice imports a file it cannot parse as text
        return _unreadable(name, original, GARBLED, fmt)
    return Document(name, "report", original, report=record, format=fmt)


def _parse_document(data: bytes) -> tuple[str, FormRecord | ReportRecord | None]:
    """In the sandbox: ("form", FormRecord) | ("report", ReportRecord) | ("scan", None) by
    what the bytes are. Raises UnreadableFile."""
    if sniff(data) == "pdf":
        return read_pdf(data)
    if xml_too_big(data):   # checked from the zip's directory, before any XML is parsed
        raise UnreadableFile(XML_TOO_BIG)
    try:
        return "form", parse_form(data)
    except NotAForm:
        return "report", docx_report(data)
