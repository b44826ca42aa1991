"""Read a recommendation form (.docx) into a FormRecord.

Fields are found by their printed labels, never by cell position: counties re-type, merge,
nest and re-space the table, and fill in values next to the label or inside the label cell.
"""
from __future__ import annotations

import zipfile
from io import BytesIO

from docx import Document
from lxml import etree

from parsers.errors import UnreadableFile
from parsers.form_fields import form_from_tables
from parsers.normalize import clean_text
from parsers.records import FormRecord

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_MC_FALLBACK = "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"
_NS = {
    "a": "http://schemas.openxmlformats.org/drawingml/2006/main",
    "r": "http://schemas.openxmlformats.org/officeDocument/2006/relationships",
    "v": "urn:schemas-microsoft-com:vml",
}
_OLE2_MAGIC = b"\xd0\xcf\x11\xe0"

CORRUPT = "文件已损坏或不是有效的 Word 文档"
TOO_BIG = "Word 文件解压后内容过大（可能是异常文件），无法读取"
MAX_EXPANDED = 200 << 20   # a .docx whose parts declare more than this is a zip bomb
ENCRYPTED_OR_DOC = "文件设置了打开密码，或是旧版 Word（.doc）文件，无法读取；请取消密码并另存为 .docx 后重新发送"


def parse_form(data: bytes) -> FormRecord:
    """The form in a .docx file. Raises UnreadableFile or NotAForm."""
    doc = _open(data)
    record = form_from_tables(_table_rows(doc.element.body))
    record.photo_image, record.photo_ext = _photo(doc)
    record.photo = record.photo_image is not None
    return record


def _open(data: bytes):
    if data[:4] == _OLE2_MAGIC:   # encrypted OOXML and legacy .doc are both OLE2 containers
        raise UnreadableFile(ENCRYPTED_OR_DOC)
    if _expanded_size(data) > MAX_EXPANDED:
        raise UnreadableFile(TOO_BIG)
    try:
        doc = Document(BytesIO(data))
    except Exception as exc:   # zipfile, lxml, KeyError, ValueError...: all mean "can't open"
        raise UnreadableFile(CORRUPT) from exc
    if doc.element.body is None:   # a main part with no <w:body> is as broken as a bad zip
        raise UnreadableFile(CORRUPT)
    return doc


def _expanded_size(data: bytes) -> int:
    """The declared size of every part; zipfile never inflates a part beyond its declared size."""
    try:
        with zipfile.ZipFile(BytesIO(data)) as zf:
            return sum(info.file_size for info in zf.infolist())
    except Exception:  # noqa: BLE001 — python-docx will report the damage
        return 0


# ---- walking the tables -------------------------------------------------------------------

def _table_rows(body):
    """Each table (nested ones too) as rows of cell texts."""
    for tbl in _tables(body):
        yield [_row_texts(tr) for tr in _own(tbl, "tr", "tbl")]


def _tables(body):
    # Text boxes are stored twice (DrawingML and a VML fallback); read only the first copy.
    return [tbl for tbl in body.iter(f"{_W}tbl")
            if next(tbl.iterancestors(_MC_FALLBACK), None) is None]


def _own(parent, tag: str, boundary: str):
    """`tag` descendants of `parent` not inside a nested `boundary` (rows of this table, not of
    a table nested in one of its cells); also finds rows and cells wrapped in content controls."""
    return [el for el in parent.iter(f"{_W}{tag}")
            if next(el.iterancestors(f"{_W}{boundary}")) is parent]


def _row_texts(tr) -> list[str]:
    """The text of each cell of a row, left to right. A cell continuing a vertical merge is
    part of the cell above, so it is left out."""
    return [clean_text(_cell_text(tc)) for tc in _own(tr, "tc", "tr") if not _continues_merge(tc)]


def _continues_merge(tc) -> bool:
    vmerge = tc.find(f"{_W}tcPr/{_W}vMerge")
    return vmerge is not None and vmerge.get(f"{_W}val", "continue") == "continue"


# ---- cell text ------------------------------------------------------------------------------

# Revisions that are deleted, a nested table (read on its own), and the VML copy of a text box.
_SKIPPED = {f"{_W}del", f"{_W}moveFrom", f"{_W}tbl", _MC_FALLBACK}


def _cell_text(tc) -> str:
    """A cell's text as Word shows it with tracked changes accepted: content controls and
    insertions included, deletions and empty placeholders left out, paragraphs joined by "\\n"."""
    parts: list[str] = []
    for child in tc:
        _collect(child, parts)
    return "".join(parts)


def _collect(el, parts: list[str]):
    tag = el.tag
    if tag in _SKIPPED or (tag == f"{_W}sdt" and _showing_placeholder(el)):
        return
    if tag == f"{_W}t":
        parts.append(el.text or "")
    elif tag in (f"{_W}br", f"{_W}cr"):
        parts.append("\n")
    elif tag == f"{_W}tab":
        parts.append("\t")
    for child in el:
        _collect(child, parts)
    if tag == f"{_W}p":
        parts.append("\n")


def _showing_placeholder(sdt) -> bool:
    # A content control still showing "单击此处输入文字" was never filled in.
    return sdt.find(f"{_W}sdtPr/{_W}showingPlcHdr") is not None


# ---- photo --------------------------------------------------------------------------------

# DrawingML pictures (inline and floating) and legacy VML ones.
_IMAGE_REFS = etree.XPath(".//a:blip/@r:embed | .//v:imagedata/@r:id", namespaces=_NS)
_EXTENSIONS = {"image/jpeg": "jpeg", "image/png": "png", "image/gif": "gif", "image/bmp": "bmp",
               "image/tiff": "tiff", "image/x-emf": "emf", "image/x-wmf": "wmf"}


def _photo(doc) -> tuple[bytes | None, str]:
    """The first image embedded in the document body, with its extension."""
    related = doc.part.related_parts
    for rel_id in _IMAGE_REFS(doc.element.body):
        part = related.get(rel_id)
        if part is not None and part.content_type.startswith("image/"):
            ext = _EXTENSIONS.get(part.content_type) or part.partname.ext
            return part.blob, ext
    return None, ""
