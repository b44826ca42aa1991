"""Read a PDF: a form exported from Word/WPS/LibreOffice, a report, or a scan.

Forms are read by position: pdfplumber finds the table's cells from its ruling lines, each
character goes to the cell holding its centre, and the rows of cell texts go through the same
label logic as .docx. (extract_table is not used: it splits merged cells.)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from io import BytesIO

import pdfplumber
from pdfminer.pdfdocument import PDFPasswordIncorrect

from parsers.errors import NotAForm, UnreadableFile
from parsers.form_fields import Rows, form_from_tables
from parsers.normalize import clean_text, count_chars
from parsers.records import FormRecord, ReportRecord

MAX_BYTES = 30 << 20
MAX_PAGES = 200
CORRUPT = "PDF 文件已损坏，无法打开"
ENCRYPTED = "PDF 文件设置了打开密码，无法读取；请取消密码后重新发送"
GARBLED = "PDF 中的文字无法识别（导出时字体未嵌入文字编码），请改为发送 Word 文件"
EMPTY = "PDF 中没有任何文字或图像"
TOO_BIG = f"PDF 文件过大（超过 {MAX_BYTES >> 20} MB）"
TOO_MANY_PAGES = f"PDF 页数过多（超过 {MAX_PAGES} 页）"

_BAD_SHARE = 0.05        # more unmapped glyphs than this: the text layer is not trustworthy
_PHOTO_MIN_PT = 30       # smaller images are logos or stamps' decorations, not a 一寸 photo
_HEAD_CHARS = 500


@dataclass
class _Page:
    tables: list[Rows] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    chars: int = 0
    bad_chars: int = 0
    photos: int = 0
    images: int = 0


def read_pdf(data: bytes) -> tuple[str, FormRecord | ReportRecord | None]:
    """("form", FormRecord) | ("report", ReportRecord) | ("scan", None). Raises UnreadableFile."""
    pages = _pages(data)
    chars = sum(p.chars for p in pages)
    if chars == 0:
        if any(p.images for p in pages):
            return "scan", None
        raise UnreadableFile(EMPTY)
    if sum(p.bad_chars for p in pages) > chars * _BAD_SHARE:
        raise UnreadableFile(GARBLED)
    try:
        record = form_from_tables(_joined_tables(pages))
    except NotAForm:
        return "report", _report(pages)
    record.photo = any(p.photos for p in pages)
    return "form", record


def _pages(data: bytes) -> list[_Page]:
    if len(data) > MAX_BYTES:
        raise UnreadableFile(TOO_BIG)
    try:
        pdf = pdfplumber.open(BytesIO(data))
    except Exception as exc:  # noqa: BLE001 — pdfminer's many syntax errors all mean "damaged"
        raise UnreadableFile(ENCRYPTED if _password_error(exc) else CORRUPT) from None
    with pdf:
        try:
            if len(pdf.pages) > MAX_PAGES:
                raise UnreadableFile(TOO_MANY_PAGES)
            return [_read_page(page) for page in pdf.pages]
        except PDFPasswordIncorrect:
            raise UnreadableFile(ENCRYPTED) from None
        except UnreadableFile:
            raise
        except Exception:  # noqa: BLE001
            raise UnreadableFile(CORRUPT) from None


def _password_error(exc: BaseException) -> bool:
    """pdfplumber wraps pdfminer's PDFPasswordIncorrect in its own exception."""
    return isinstance(exc, PDFPasswordIncorrect) or any(
        isinstance(arg, PDFPasswordIncorrect) for arg in exc.args)


def _read_page(page) -> _Page:
    """What one page holds; the page's cached objects are freed before the next is read."""
    try:
        clean = page.dedupe_chars()   # fake bold prints every glyph twice
        chars = clean.chars   # spaces too: a line wrapped at a space keeps it
        visible = [c for c in chars if c["text"].strip()]
        cells = [cell for table in clean.find_tables() for cell in table.cells]
        images = [im for im in clean.images if im["width"] >= 1 and im["height"] >= 1]
        return _Page(
            tables=[_rows(cells, chars)] if cells else [],
            lines=[_line_text(line) for line in _lines(chars)],
            chars=len(visible),
            bad_chars=sum(1 for c in visible if c["text"].startswith("(cid:") or "\ufffd" in c["text"]),
            photos=sum(1 for im in images if _is_photo(im, cells)),
            images=len(images),
        )
    finally:
        page.close()


def _is_photo(image: dict, cells: list) -> bool:
    if image["width"] < _PHOTO_MIN_PT or image["height"] < _PHOTO_MIN_PT:
        return False
    cx, cy = (image["x0"] + image["x1"]) / 2, (image["top"] + image["bottom"]) / 2
    return any(_inside(cx, cy, cell) for cell in cells)


def _inside(x: float, y: float, bbox) -> bool:
    x0, top, x1, bottom = bbox
    return x0 <= x <= x1 and top <= y <= bottom


# ---- cells → rows of texts ----------------------------------------------------------------

def _rows(cells: list, chars: list) -> Rows:
    """The page's table as rows of cell texts: cells sharing a top edge form a row, left to
    right; a cell spanning several rows appears in its first row only, as in .docx."""
    held: dict[tuple, list] = {tuple(c): [] for c in cells}
    smallest_first = sorted(held, key=lambda c: (c[2] - c[0]) * (c[3] - c[1]))
    for ch in chars:
        # the innermost cell: an outer table's cell also contains a nested table's cells
        cx, cy = (ch["x0"] + ch["x1"]) / 2, (ch["top"] + ch["bottom"]) / 2
        cell = next((c for c in smallest_first if _inside(cx, cy, c)), None)
        if cell is not None:
            held[cell].append(ch)
    rows: dict[int, list] = {}
    for cell in sorted(held, key=lambda c: (c[1], c[0])):
        top = next((t for t in rows if abs(t - cell[1]) < 2), round(cell[1]))
        rows.setdefault(top, []).append(_cell_text(held[cell]))
    return [rows[top] for top in sorted(rows)]


def _joined_tables(pages: list[_Page]) -> list[Rows]:
    """Tables as Word laid them out: a page's first table continues the previous page's last
    one, and a row split at the page break (its label cell empty) is glued back together."""
    tables: list[Rows] = []
    for page in pages:
        for i, rows in enumerate(page.tables):
            if i == 0 and tables and rows:
                previous = tables[-1]
                if _continues(previous, rows[0]):
                    previous[-1] = [_glued(a, b) for a, b in zip(previous[-1], rows[0])]
                    rows = rows[1:]
                previous.extend(rows)
            else:
                tables.append(list(rows))
    return tables


def _glued(above: str, below: str) -> str:
    return f"{above}\n{below}" if above and below else above or below


def _continues(previous: Rows, first: list[str]) -> bool:
    return bool(previous) and len(previous[-1]) == len(first) and not first[0].strip()


def _cell_text(chars: list) -> str:
    """A cell's text: wrapped lines of one paragraph joined, paragraphs separated by "\\n"."""
    lines = _lines(chars)
    if not lines:
        return ""
    size = lines[0][0]["size"] or 10
    left = min(line[0]["x0"] for line in lines)
    flush_left = [line for line in lines if line[0]["x0"] <= left + size / 2]
    # The text's right margin, from left-aligned lines only: the right-aligned （盖章） and date
    # lines reach further. A wrapped line may stop a character short (a closing mark cannot
    # start a line), hence the tolerance.
    right = max(line[-1]["x1"] for line in flush_left)
    out = _line_text(lines[0])
    for prev, line in zip(lines, lines[1:]):
        wrapped = (prev[-1]["x1"] >= right - 1.5 * size and prev[0]["x0"] <= left + size / 2
                   and line[0]["x0"] <= left + size / 2)
        out += ("" if wrapped else "\n") + _line_text(line)
    return clean_text(out)


def _lines(chars: list) -> list[list]:
    """Characters grouped into lines (by vertical overlap), each sorted left to right."""
    lines: list[list] = []
    for ch in sorted(chars, key=lambda c: (c["top"], c["x0"])):
        mid = (ch["top"] + ch["bottom"]) / 2
        if lines and lines[-1][0]["top"] <= mid <= lines[-1][0]["bottom"]:
            lines[-1].append(ch)
        else:
            lines.append([ch])
    return [sorted(line, key=lambda c: c["x0"]) for line in lines]


def _line_text(line: list) -> str:
    """One line's text; a visible gap between two glyphs is a space."""
    out = line[0]["text"]
    for prev, ch in zip(line, line[1:]):
        if ch["x0"] - prev["x1"] > 0.3 * (ch["size"] or 10):
            out += " "
        out += ch["text"]
    return out


def _report(pages: list[_Page]) -> ReportRecord:
    lines = [clean_text(text) for page in pages for text in page.lines]
    text = "\n".join(line for line in lines if line)
    return ReportRecord(title=text.split("\n", 1)[0][:100], chars=count_chars(text),
                        head=text[:_HEAD_CHARS])
