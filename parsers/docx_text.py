"""The running text of a .docx that is not a form: a report's title and length."""
from __future__ import annotations

from io import BytesIO

from docx import Document

from parsers.errors import UnreadableFile
from parsers.normalize import count_chars
from parsers.records import ReportRecord

_HEAD_CHARS = 500   # the opening text kept for linking a report to a candidate by name


def docx_report(data: bytes) -> ReportRecord:
    try:
        doc = Document(BytesIO(data))
        paragraphs = [p.text.strip() for p in doc.paragraphs]
        for table in doc.tables:
            for row in table.rows:
                paragraphs += [cell.text.strip() for cell in row.cells]
    except Exception:  # noqa: BLE001 — any python-docx or zip error means the same to a county
        raise UnreadableFile("文件已损坏或不是有效的 Word 文档") from None
    lines = [p for p in paragraphs if p]
    text = "\n".join(lines)
    return ReportRecord(title=lines[0][:100] if lines else "", chars=count_chars(text),
                        head=text[:_HEAD_CHARS])
