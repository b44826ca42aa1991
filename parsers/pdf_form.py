"""Read a PDF: a form exported from Word/WPS/LibreOffice, a report, or a scan.

Forms are read by position: pdfplumber finds the tables' cells from their ruling lines, each
character goes to the cell holding its centre, and the cells (row by row) and the lines of text
outside them, in reading order page after page, go through the same label logic as .docx.
(extract_table is not used: it splits merged cells.)
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from io import BytesIO

import pdfplumber
from pdfminer.pdfdocument import PDFPasswordIncorrect

from parsers.errors import NotAForm, UnreadableFile
from parsers.form_fields import Block, forms_from_blocks
from parsers.labels import match_label
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
    blocks: list[Block] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    chars: int = 0
    bad_chars: int = 0
    images: int = 0


def read_pdf(data: bytes) -> tuple[str, list[FormRecord] | ReportRecord | None]:
    """("form", [FormRecord, ...]) | ("report", ReportRecord) | ("scan", None).
    Raises UnreadableFile."""
    pages = _pages(data)
    chars = sum(p.chars for p in pages)
    if chars == 0:
        if any(p.images for p in pages):
            return "scan", None
        raise UnreadableFile(EMPTY)
    if sum(p.bad_chars for p in pages) > chars * _BAD_SHARE:
        raise UnreadableFile(GARBLED)
    try:
        forms = forms_from_blocks(block for page in pages for block in page.blocks)
    except NotAForm:
        return "report", _report(pages)
    for record, photos in forms:
        record.photo = bool(photos)
    return "form", [record for record, _ in forms]


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
            blocks=_blocks(cells, chars, [im for im in images if _is_photo(im, cells)],
                           page.height),
            lines=[_line_text(line) for line in _lines(chars)],
            chars=len(visible),
            bad_chars=sum(1 for c in visible if c["text"].startswith("(cid:") or "\ufffd" in c["text"]),
            images=len(images),
        )
    finally:
        page.close()


def _is_photo(image: dict, cells: list) -> bool:
    """A picture of a photo's size, in a cell of the form (or anywhere, on a page without
    a table: a form typed as paragraphs)."""
    if image["width"] < _PHOTO_MIN_PT or image["height"] < _PHOTO_MIN_PT:
        return False
    return not cells or any(_inside(*_centre(image), cell) for cell in cells)


def _centre(obj: dict) -> tuple[float, float]:
    return (obj["x0"] + obj["x1"]) / 2, (obj["top"] + obj["bottom"]) / 2


def _inside(x: float, y: float, bbox) -> bool:
    x0, top, x1, bottom = bbox
    return x0 <= x <= x1 and top <= y <= bottom


# ---- the page as blocks of text ------------------------------------------------------------

def _blocks(cells: list, chars: list, photos: list, height: float) -> list[Block]:
    """The page's cells and the lines outside them, top to bottom: cells sharing a top edge
    form a row, left to right; a cell spanning several rows comes with its first row, as in
    .docx. A row that a page break split simply goes on with the next page's blocks. Lines
    in the header and footer margins (a running header, page numbers) are left out: they
    would run on into the field being read."""
    held: dict[tuple, list] = {tuple(c): [] for c in cells}
    smallest_first = sorted(held, key=lambda c: (c[2] - c[0]) * (c[3] - c[1]))
    outside = []
    for ch in chars:
        cell = _innermost(smallest_first, *_centre(ch))
        (held[cell] if cell is not None else outside).append(ch)
    pictures: dict[tuple, list] = {}
    for image in photos:
        pictures.setdefault(_innermost(smallest_first, *_centre(image)), []).append(True)
    items: list[tuple[float, float, Block | list]] = []
    rows: list[float] = []
    for cell in sorted(held, key=lambda c: (c[1], c[0])):
        top = next((t for t in rows if abs(t - cell[1]) < 2), cell[1])
        if top not in rows:
            rows.append(top)
        items.append((top, cell[0], Block(_cell_text(held[cell]), True, pictures.get(cell, []))))
    body = (height * _MARGIN, height * (1 - _MARGIN))
    for line in _lines(outside):
        text = clean_text(_line_text(line))
        inside = body[0] <= line[0]["top"] and line[0]["bottom"] <= body[1]
        if text and inside and not _PAGE_NUMBER.match(text):
            items.append((line[0]["top"], line[0]["x0"], line))
    blocks = _running_text_joined([item for *_, item in sorted(items, key=lambda i: i[:2])])
    if None in pictures:   # a photo outside any cell: a page without a table
        blocks.append(Block("", False, pictures[None]))
    return blocks


def _running_text_joined(items: list) -> list[Block]:
    """Cells as they are; each run of lines between them as one block, its wrapped lines
    joined as in a cell (a line opening with a label is never joined to the one before)."""
    blocks: list[Block] = []
    run: list[list] = []
    for item in [*items, None]:
        if isinstance(item, list):
            run.append(item)
            continue
        if run:
            blocks.append(Block(_cell_text([ch for line in run for ch in line], _opens_field), False))
            run = []
        if item is not None:
            blocks.append(item)
    return blocks


def _opens_field(text: str) -> bool:
    return match_label(text) is not None


def _innermost(smallest_first: list, x: float, y: float):
    # the smallest cell holding the point: an outer table's cell also contains a nested table's
    return next((c for c in smallest_first if _inside(x, y, c)), None)


_MARGIN = 0.06   # of the page's height: Word puts headers and footers 1.5 cm from the edge
# "1", "- 2 -", "第 3 页", "第1页 共2页", "1/2": page numbers in a header or footer.
_PAGE_NUMBER = re.compile(r"^[-—\s]*(?:第\s*)?\d+\s*(?:页)?\s*(?:(?:/|共)\s*\d+\s*页?)?[-—\s]*$")


def _cell_text(chars: list, opens_paragraph=lambda text: False) -> str:
    """A cell's text: wrapped lines of one paragraph joined, paragraphs separated by "\\n"."""
    lines = _lines(chars)
    if not lines:
        return ""
    size = lines[0][0]["size"] or 10
    left = min(line[0]["x0"] for line in lines)
    flush_left = [line for line in lines if line[0]["x0"] <= left + size / 2]
    # The text's right margin, from left-aligned lines only: the right-aligned （盖章） and date
    # lines reach further. A line was wrapped when what opens the next one could not have
    # fitted after it: a character, with the closing marks and digits that cannot be parted
    # from it ("门、1200" moves down whole).
    right = max(line[-1]["x1"] for line in flush_left)
    out = _line_text(lines[0])
    for prev, line in zip(lines, lines[1:]):
        text = _line_text(line)
        wrapped = (prev[-1]["x1"] + _opening_width(line) >= right - size / 2
                   and prev[0]["x0"] <= left + size / 2 and line[0]["x0"] <= left + size / 2
                   and not opens_paragraph(text))
        out += ("" if wrapped else "\n") + text
    return clean_text(out)


_NO_BREAK_BEFORE = set("、，。；：！？）》」』”’,.;:!?)%")


def _opening_width(line: list) -> float:
    """The width of a line's first unbreakable run: its first character and the closing
    marks, digits and letters glued to it."""
    end = 1
    while end < len(line) and (line[end]["text"] in _NO_BREAK_BEFORE
                               or line[end]["text"].isascii() and line[end]["text"].isalnum()):
        end += 1
    return line[end - 1]["x1"] - line[0]["x0"]


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
