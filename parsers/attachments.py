"""Every attachment of an email read into a Document: a form, a report, an image, or a file
that cannot be read and why. Routing is by content (magic bytes), never by the file's name."""
from __future__ import annotations

from dataclasses import dataclass

from parsers.docx_form import parse_form
from parsers.docx_text import docx_report
from parsers.errors import NotAForm, UnreadableFile
from parsers.records import Attachment, FormRecord, ReportRecord
from parsers.sniff import DOCUMENT_EXTENSIONS, extension, sniff

# What a county is told for a document format intake does not read yet.
UNSUPPORTED = "系统目前只能读取 Word（.docx）格式的推荐表"
EMPTY = "文件为空（0 字节）"


@dataclass
class Document:
    file: str                      # the attachment's display name
    kind: str                      # form | report | image | unreadable | other
    data: bytes
    form: FormRecord | None = None
    report: ReportRecord | None = None
    reason: str = ""               # for unreadable: a short Chinese phrase for the reply


def read_attachments(attachments: list[Attachment]) -> list[Document]:
    return [read_attachment(a) for a in attachments]


def read_attachment(att: Attachment) -> Document:
    kind = sniff(att.data)
    ext = extension(att.filename)
    if kind == "image":
        return Document(att.filename, "image", att.data)
    if kind == "docx":
        return _read_docx(att)
    if kind == "empty" and ext in DOCUMENT_EXTENSIONS:
        return Document(att.filename, "unreadable", att.data, reason=EMPTY)
    if kind in ("pdf", "ole", "rtf", "zip", "rar", "7z", "tnef") or ext in DOCUMENT_EXTENSIONS:
        return Document(att.filename, "unreadable", att.data, reason=UNSUPPORTED)
    return Document(att.filename, "other", att.data)


def _read_docx(att: Attachment) -> Document:
    try:
        return Document(att.filename, "form", att.data, form=parse_form(att.data))
    except UnreadableFile as exc:
        return Document(att.filename, "unreadable", att.data, reason=exc.reason)
    except NotAForm:
        pass
    try:
        return Document(att.filename, "report", att.data, report=docx_report(att.data))
    except UnreadableFile as exc:
        return Document(att.filename, "unreadable", att.data, reason=exc.reason)
