"""A scanned or photographed form read into a FormRecord, with its seals.

Each page: decoded under limits; turned upright (a landscape picture of the portrait form is
turned a quarter, an upside-down one half — the text-direction classifier decides); the form's
table is found as the largest ruled outline and warped flat (this straightens a scan fed in
askew and a phone photo's perspective alike) at a fixed scale; its cells come from the ruling
lines; seals are found in the red ink, and the text — read once, from the red channel alone,
in which red ink fades to paper — goes line by line to the cell holding its centre. The rows of cell texts go through the same label
logic as .docx and PDF (parsers/form_fields.py); a seal belongs to the opinion box whose row
holds it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from io import BytesIO

import cv2
import numpy as np
from PIL import Image, ImageOps

from parsers import ocr, seals
from parsers.errors import NotAForm, UnreadableFile
from parsers.form_fields import Block, forms_from_blocks
from parsers.labels import match_label
from parsers.normalize import clean_text
from parsers.records import FORM_FIELDS, OPINION_KEYS, FormRecord

Rows = list[list[str]]         # a page's table: its rows of cell texts
MAX_PAGES = 6                  # a form is two pages; a longer scan is some other document
MAX_PIXELS = 40_000_000        # a 48-megapixel phone photo is still read (it is scaled down first)
MIN_SIDE = 500                # pixels: a form page even at 60 dpi is wider than this
MAX_SIDE = 3000               # pixels: pages are scaled down to this before anything else
WORK_DPI = 150                 # the table is warped to this scale before reading
TABLE_WIDTH_MM = 170           # the form's table across an A4 page with 2 cm margins
LOW_CONFIDENCE = 0.80          # a text line the recogniser is less sure of is not trusted
UNREAD = "\u25a1"              # stands for each character of an untrusted line: "□□□"

# The sandbox for OCR: onnxruntime's arenas need far more than the PDF reader's 768 MB, and a
# page takes 5–15 s of CPU on an idle core (several times that on a loaded machine).
OCR_MEMORY = 2 << 30
OCR_CPU_SECONDS = 120
OCR_WALL_SECONDS = 240

# A label's printed note half read: "主要事迹（600字以□□" — the recogniser unsure of "内）". It is
# the form's own print, not the clerk's value, so it is dropped instead of poisoning the field.
_NOTE_REMNANT = re.compile("^\\s*[（(][\\d０-９" + UNREAD + "]*字?以?[内" + UNREAD + "]*[）)]?\\s*$")
_DATE_REMNANT = re.compile(r"(?<![\d〇零一二三四五六七八九十])\s*年?\s*月\s*日\s*$")

TOO_BIG = "图片尺寸过大，无法处理"
CORRUPT = "图片已损坏，无法打开"


@dataclass
class ScanPage:
    rows: Rows
    seals: set[str] = field(default_factory=set)     # opinion keys holding a seal
    photo: bool = False                              # a picture fills a cell of the 姓名 row


@dataclass
class ScanForm:
    record: FormRecord
    seals: dict[str, bool]
    unread: list[str]            # required fields that could not be read with confidence


def read_scan_pages(data: bytes, kind: str) -> list[ScanPage]:
    """Every page of an image ("image") or a scanned PDF ("pdf"), read. Runs in the sandbox."""
    return [read_page(rgb) for rgb in page_images(data, kind)]


def form_from_pages(pages: list[ScanPage]) -> ScanForm:
    """The form on these pages (page 2 of the form continues page 1). Raises NotAForm."""
    # The same label logic as .docx and PDF: the cells in reading order, page 2 continuing page 1.
    blocks = [Block(_without_note_remnant(text), in_table=True)
              for page in pages for row in page.rows for text in row]
    record = forms_from_blocks(blocks)[0][0]
    found = set().union(*(page.seals for page in pages))
    record.seals = {key: key in found for key in OPINION_KEYS}
    record.source = "scan"
    record.photo = any(page.photo for page in pages)
    unread = []
    for name in FORM_FIELDS:   # a value read in part is not kept: the county is asked for it
        if UNREAD in getattr(record, name):
            setattr(record, name, "")
            unread.append(name)
    for key, text in record.opinions.items():
        # The printed date template partly hidden by the seal ("月 日" without its 年) and
        # marks left where the seal's ink hid a line are not the opinion.
        cleaned = clean_text(_DATE_REMNANT.sub("", text.replace(UNREAD, "")))
        if UNREAD in text and not cleaned and not record.seals[key]:
            unread.append(key)
        record.opinions[key] = cleaned
    return ScanForm(record, record.seals, unread)


def _without_note_remnant(text: str) -> str:
    """A label cell whose printed note was half read keeps the label alone."""
    label = match_label(text)
    if label is None or UNREAD not in label[1] or not _NOTE_REMNANT.match(label[1]):
        return text
    return text[:len(text) - len(label[1])]


def starts_form(page: ScanPage) -> bool:
    """Whether the page is a form's first page: it holds the 姓名 label."""
    return any((match_label(text) or ("",))[0] == "name" for row in page.rows for text in row)


def sandbox_limits(data: bytes, kind: str) -> dict:
    """run_limited's limits for OCR: the models' working memory, and time by the page."""
    pages = _page_count(data) if kind == "pdf" else 1
    return {"memory": OCR_MEMORY, "cpu": OCR_CPU_SECONDS * pages, "wall": OCR_WALL_SECONDS * pages}


def _page_count(data: bytes) -> int:
    import pypdfium2
    try:
        pdf = pypdfium2.PdfDocument(data)
    except Exception:  # noqa: BLE001
        return 1
    try:
        return max(1, min(len(pdf), MAX_PAGES))
    finally:
        pdf.close()


# ---- decoding ------------------------------------------------------------------------------

def page_images(data: bytes, kind: str) -> list[np.ndarray]:
    if kind == "pdf":
        return _pdf_pages(data)
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        image = Image.open(BytesIO(data))
        image = ImageOps.exif_transpose(image).convert("RGB")   # phones record their rotation
    except Image.DecompressionBombError:
        raise UnreadableFile(TOO_BIG) from None
    except Exception:  # noqa: BLE001 — PIL's many decoder errors all mean "damaged"
        raise UnreadableFile(CORRUPT) from None
    return [np.asarray(image)]


def _pdf_pages(data: bytes) -> list[np.ndarray]:
    import pypdfium2   # pdfplumber's renderer

    pdf = pypdfium2.PdfDocument(data)
    try:
        if len(pdf) > MAX_PAGES:
            raise NotAForm("扫描件页数过多")
        return [np.asarray(_rendered(pdf[i]).convert("RGB")) for i in range(len(pdf))]
    finally:
        pdf.close()


def _rendered(page):
    """A scanned PDF page at 200 dpi, or smaller when its long side would pass MAX_SIDE."""
    width, height = page.get_size()   # points
    scale = min(200 / 72, MAX_SIDE / max(width, height, 1))
    return page.render(scale=scale).to_pil()


# ---- one page ------------------------------------------------------------------------------

def read_page(rgb: np.ndarray) -> ScanPage:
    """One page read. A picture too small to be a page, or with no ruled table (a photo, a
    logo, a certificate), is not read at all: it holds no form."""
    if min(rgb.shape[:2]) < MIN_SIDE:
        return ScanPage([])
    page = _upright(_shrunk(rgb))
    quad = _table_quad(_ink(page))
    if quad is None:
        return ScanPage([])
    table = _flattened_table(page, quad)
    clean = seals.without_red(table)
    boxes, flipped = ocr.read_boxes(clean)
    if flipped:   # the page came upside down: its table was flattened as it lay
        table, clean = (np.ascontiguousarray(a[::-1, ::-1]) for a in (table, clean))
    page_seals = seals.find_seals(table, WORK_DPI)
    rows, where = _rows(_cells(clean), boxes)
    keys = {_opinion_of(rows, where, s.x, s.y) for s in page_seals}
    return ScanPage(rows, {k for k in keys if k}, _has_photo(clean, rows, where))


def _shrunk(rgb: np.ndarray) -> np.ndarray:
    """No side longer than MAX_SIDE: a phone photo needs no more to be read."""
    h, w = rgb.shape[:2]
    scale = MAX_SIDE / max(h, w)
    if scale >= 1:
        return rgb
    return cv2.resize(rgb, (int(w * scale), int(h * scale)), interpolation=cv2.INTER_AREA)


def _upright(rgb: np.ndarray) -> np.ndarray:
    """A landscape picture of the portrait form lies on its side: a quarter turn makes it
    upright or upside down (which the text reader then sees and turns)."""
    h, w = rgb.shape[:2]
    if w > h * 1.1:
        rgb = cv2.rotate(rgb, cv2.ROTATE_90_CLOCKWISE)
    return rgb


def _ink(rgb: np.ndarray) -> np.ndarray:
    gray = np.ascontiguousarray(seals.without_red(rgb)[:, :, 0])
    return cv2.adaptiveThreshold(gray, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, 31, 15)


def _flattened_table(rgb: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """The page warped so that the form's table (its corners `quad`) is an upright rectangle
    at WORK_DPI, with a margin around it (seals overhang the table's edge)."""
    tl, tr, br, bl = quad
    width_px = (np.linalg.norm(tr - tl) + np.linalg.norm(br - bl)) / 2
    height_px = (np.linalg.norm(bl - tl) + np.linalg.norm(br - tr)) / 2
    width = TABLE_WIDTH_MM / 25.4 * WORK_DPI
    height = width * height_px / width_px
    margin = 0.04 * width
    target = np.float32([[margin, margin], [margin + width, margin],
                         [margin + width, margin + height], [margin, margin + height]])
    matrix = cv2.getPerspectiveTransform(np.float32(quad), target)
    size = (int(width + 2 * margin), int(height + 2 * margin))
    return cv2.warpPerspective(rgb, matrix, size, flags=cv2.INTER_AREA, borderValue=(255, 255, 255))


def _table_quad(ink: np.ndarray) -> np.ndarray | None:
    """The corners (tl, tr, br, bl) of the form's table: its ruling lines all touch, so it is
    one connected stroke of ink, however the page is skewed or seen in perspective. Of the
    big strokes the innermost is taken: a photo's page edge can make a larger ring round it."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    if count < 2:
        return None
    areas = stats[1:, cv2.CC_STAT_WIDTH] * stats[1:, cv2.CC_STAT_HEIGHT]
    wide = [i + 1 for i in range(count - 1) if stats[i + 1, cv2.CC_STAT_WIDTH] >= ink.shape[1] * 0.4
            and areas[i] >= areas.max() * 0.08]
    if not wide:
        return None
    table = min(wide, key=lambda i: areas[i - 1])
    points = cv2.findNonZero((labels == table).astype(np.uint8))
    hull = cv2.convexHull(points)
    approx = cv2.approxPolyDP(hull, 0.02 * cv2.arcLength(hull, True), True).reshape(-1, 2)
    points = approx if len(approx) == 4 else cv2.boxPoints(cv2.minAreaRect(hull))
    return _ordered(np.float32(points))


def _ordered(points: np.ndarray) -> np.ndarray:
    s, d = points.sum(axis=1), np.diff(points, axis=1).ravel()
    return np.float32([points[np.argmin(s)], points[np.argmin(d)], points[np.argmax(s)], points[np.argmax(d)]])


def _grid(ink: np.ndarray, length: int) -> np.ndarray:
    """The ruling lines: long horizontal and vertical runs of ink. A short kernel also keeps
    lines a few degrees off the axes (a scan fed askew, a phone photo)."""
    length = max(length, 15)
    horizontal = cv2.morphologyEx(ink, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (length, 1)))
    vertical = cv2.morphologyEx(ink, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (1, length)))
    grid = cv2.bitwise_or(horizontal, vertical)
    return cv2.dilate(grid, cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3)))


# ---- cells and rows ------------------------------------------------------------------------

Cell = tuple[int, int, int, int]   # x0, y0, x1, y1


def _cells(rgb: np.ndarray) -> list[Cell]:
    """The table's cells: the regions the ruling lines enclose."""
    grid = _grid(_ink(rgb), 40)
    count, _, stats, _ = cv2.connectedComponentsWithStats(cv2.bitwise_not(grid), connectivity=4)
    h, w = grid.shape
    cells = []
    for x, y, cw, ch, _area in stats[1:count]:
        if x <= 0 or y <= 0 or x + cw >= w or y + ch >= h:
            continue   # the page around the table
        if cw < 20 or ch < 15:
            continue
        cells.append((int(x), int(y), int(x + cw), int(y + ch)))
    return cells


def _rows(cells: list[Cell], boxes: list[ocr.TextBox]) -> tuple[Rows, list[list[Cell]]]:
    """Rows of cell texts as pdf_form builds them (cells sharing a top edge, left to right),
    and the cells themselves in the same shape."""
    held: dict[Cell, list[ocr.TextBox]] = {c: [] for c in cells}
    for box in boxes:
        cell = next((c for c in cells if c[0] <= box.cx <= c[2] and c[1] <= box.cy <= c[3]), None)
        if cell is not None:
            held[cell].append(box)
    tops: dict[int, list[Cell]] = {}
    for cell in sorted(cells, key=lambda c: (c[1], c[0])):
        top = next((t for t in tops if abs(t - cell[1]) < 12), cell[1])
        tops.setdefault(top, []).append(cell)
    where = [sorted(tops[t]) for t in sorted(tops)]
    return [[_cell_text(held[c], c) for c in row] for row in where], where


def _cell_text(boxes: list[ocr.TextBox], cell: Cell) -> str:
    """A cell's lines top to bottom; a line that runs to the cell's right edge wrapped, so
    the next one continues it (as in pdf_form), otherwise a new paragraph starts."""
    lines: list[list[ocr.TextBox]] = []
    for box in sorted(boxes, key=lambda b: b.cy):
        if lines and abs(lines[-1][0].cy - box.cy) < (box.y1 - box.y0) / 2:
            lines[-1].append(box)
        else:
            lines.append([box])
    out = ""
    for i, line in enumerate(sorted(line, key=lambda b: b.x0) for line in lines):
        if i:
            size = line[0].y1 - line[0].y0
            out += "" if previous_end >= cell[2] - 2.5 * size else "\n"
        out += " ".join(_trusted(b) for b in line)
        previous_end = line[-1].x1
    return out


def _trusted(box: ocr.TextBox) -> str:
    """The line's text, or one UNREAD mark per character when the recogniser is unsure —
    so that a half-read value is never taken for the value. Labels are kept as read."""
    if box.score >= LOW_CONFIDENCE or match_label(box.text):
        return box.text
    return UNREAD * max(1, len(box.text))


def _has_photo(rgb: np.ndarray, rows: Rows, where: list[list[Cell]]) -> bool:
    """A photo glued (or printed) in the 姓名 row: a cell with no value text that is mostly
    not white paper."""
    for texts, cells in zip(rows, where):
        keys = [(match_label(t) or ("",))[0] for t in texts]
        if "name" not in keys:
            continue
        for text, key, (x0, y0, x1, y1) in zip(texts, keys, cells):
            if text and key != "photo":
                continue
            gray = cv2.cvtColor(rgb[y0 + 3:y1 - 3, x0 + 3:x1 - 3], cv2.COLOR_RGB2GRAY)
            if gray.size and np.count_nonzero(gray < 200) > 0.3 * gray.size:
                return True
    return False


def _opinion_of(rows: Rows, where: list[list[Cell]], x: float, y: float) -> str | None:
    """The opinion box (its key) whose table row holds the point."""
    for texts, cells in zip(rows, where):
        top, bottom = min(c[1] for c in cells), max(c[3] for c in cells)
        if top <= y <= bottom:
            for text in texts:
                match = match_label(text)
                if match and match[0] in OPINION_KEYS:
                    return match[0]
    return None
