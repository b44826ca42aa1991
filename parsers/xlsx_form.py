"""Read the recommendation forms in a spreadsheet (.xlsx; .xls and .et arrive here converted).

Counties that re-make the form in Excel or WPS 表格 keep its labels in merged cells. Every
sheet's cells, row by row and left to right, become text blocks for the same label logic as
.docx (a merged range holds its value in its top-left cell only, so it is read once), and a
picture floating over the sheet counts as the photo.
"""
from __future__ import annotations

import datetime as dt
import re
import zipfile
from io import BytesIO

from parsers.errors import NotAForm, UnreadableFile
from parsers.form_fields import Block, forms_from_blocks
from parsers.normalize import clean_text
from parsers.records import FormRecord

CORRUPT = "表格文件已损坏或不是有效的 Excel 文件"
TOO_BIG = "表格文件解压后内容过大（可能是异常文件），无法读取"
MAX_EXPANDED = 100 << 20   # a form is a few KB of XML; more than this declared is a zip bomb
MAX_CELLS = 20_000         # a form has under a hundred cells; a sheet filled far beyond is not one


def parse_sheet_forms(data: bytes) -> list[FormRecord]:
    """Every form in an .xlsx file, in sheet order. Raises UnreadableFile or NotAForm."""
    workbook = _open(data)
    blocks = [block for sheet in workbook.worksheets for block in _sheet_blocks(sheet)]
    records = []
    for record, images in forms_from_blocks(blocks):
        image = images[0] if images else None
        record.photo_image, record.photo_ext = (image, _image_ext(image)) if image else (None, "")
        record.photo = image is not None
        records.append(record)
    return records


def _open(data: bytes):
    import openpyxl   # only when a spreadsheet arrives: it takes a while to import

    try:
        with zipfile.ZipFile(BytesIO(data)) as zf:
            if sum(info.file_size for info in zf.infolist()) > MAX_EXPANDED:
                raise UnreadableFile(TOO_BIG)
        return openpyxl.load_workbook(BytesIO(data), data_only=True)
    except UnreadableFile:
        raise
    except Exception:  # noqa: BLE001 — zip, XML and openpyxl's own errors all mean "damaged"
        raise UnreadableFile(CORRUPT) from None


def _sheet_blocks(sheet) -> list[Block]:
    """The sheet's non-empty cells and its pictures, in reading order."""
    items: list[tuple[int, int, Block]] = []
    for row in sheet.iter_rows():
        for cell in row:
            if cell.value is not None:
                text = clean_text(_text(cell))
                if text:
                    items.append((cell.row, cell.column, Block(text, True)))
                    if len(items) > MAX_CELLS:
                        raise NotAForm("表格内容过多，不是推荐表")
    for image in getattr(sheet, "_images", []):
        row, col = _anchor(image)
        items.append((row, col, Block("", True, [_image_bytes(image)])))
    return [block for *_, block in sorted(items, key=lambda item: item[:2])]


def _text(cell) -> str:
    """A cell's value as the clerk sees it: a date as a date, "1985.10" not 1985.1."""
    value = cell.value
    if isinstance(value, dt.datetime):
        if value.time() == dt.time() and value.day == 1 and "d" not in (cell.number_format or ""):
            return f"{value.year}年{value.month}月"
        return f"{value.year}年{value.month}月{value.day}日"
    if isinstance(value, dt.date):
        return f"{value.year}年{value.month}月{value.day}日"
    if isinstance(value, float):
        decimals = re.fullmatch(r"0\.(0+)", cell.number_format or "")
        if decimals:
            return f"{value:.{len(decimals.group(1))}f}"
        return str(int(value)) if value.is_integer() else str(value)
    return str(value)


def _anchor(image) -> tuple[int, int]:
    """The 1-based (row, column) of a picture's top-left corner."""
    marker = getattr(image.anchor, "_from", None)
    if marker is None:
        return 1, 1
    return marker.row + 1, marker.col + 1


def _image_bytes(image) -> bytes:
    return image._data()


def _image_ext(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "png"
    if data.startswith(b"\xff\xd8"):
        return "jpeg"
    if data[:4] in (b"GIF8",):
        return "gif"
    return "bmp" if data.startswith(b"BM") else "png"
