"""Read a recommendation form (.docx) into a FormRecord.

Fields are found by their printed labels, never by cell position: counties re-type, merge,
nest and re-space the table, and fill in values next to the label or inside the label cell.
"""
from __future__ import annotations

import re
from io import BytesIO

from docx import Document
from lxml import etree

from parsers.errors import NotAForm, UnreadableFile
from parsers.normalize import (
    clean_text, normalize_birth, normalize_ethnicity, normalize_name, normalize_phone,
    normalize_political_status, normalize_sex,
)
from parsers.records import OPINION_KEYS, FormRecord

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_MC_FALLBACK = "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"
_NS = {
    "a": "http://schemas.openxmlformats.org/drawingml/2006/main",
    "r": "http://schemas.openxmlformats.org/officeDocument/2006/relationships",
    "v": "urn:schemas-microsoft-com:vml",
}
_OLE2_MAGIC = b"\xd0\xcf\x11\xe0"

CORRUPT = "文件已损坏或不是有效的 Word 文档"
ENCRYPTED_OR_DOC = "文件设置了打开密码，或是旧版 Word（.doc）文件，无法读取；请取消密码并另存为 .docx 后重新发送"

# Printed labels (and the variants counties use) → record keys; opinions use OPINION_KEYS.
_LABELS = {
    "name": ("姓名",),
    "sex": ("性别",),
    "birth": ("出生年月", "出生年月日", "出生日期"),
    "ethnicity": ("民族",),
    "native_place": ("籍贯",),
    "political_status": ("政治面貌",),
    "employer_post": ("工作单位及职务", "工作单位及职位", "单位及职务"),
    "home_address": ("家庭地址", "家庭住址"),
    "phone": ("联系电话", "联系方式", "手机"),
    "honours": ("所获荣誉情况", "所获荣誉"),
    "deeds": ("主要事迹",),
    "recommender": ("推荐单位意见",),
    "discipline": ("纪检监察部门意见",),
    "member_unit": ("成员单位意见",),
    "approval": ("审批意见",),
    "photo": ("一寸免冠照片", "免冠照片", "照片"),
}
_MIN_LABELS = 3   # fewer recognised fields than this: some other document


def _label_pattern(label: str) -> re.Pattern:
    # Any spacing inside the label ("姓  名", "工作单位\n及职务"); then a separator, so that a
    # value that merely starts with a label's characters ("民族地区……") is not a label;
    # then optional notes like （600字以内） and a colon.
    chars = r"\s*".join(map(re.escape, label))
    return re.compile(
        rf"^\s*{chars}(?=$|[\s:：（(])\s*(?:[（(][^（）()]*[）)]\s*)*[:：]?\s*(.*)$", re.S)


# Longest label first: "所获荣誉情况" must not be read as "所获荣誉" followed by "情况".
_PATTERNS = sorted(((len(label), _label_pattern(label), key)
                    for key, labels in _LABELS.items() for label in labels),
                   key=lambda item: -item[0])

_NORMALIZERS = {
    "name": normalize_name, "sex": normalize_sex, "birth": normalize_birth,
    "ethnicity": normalize_ethnicity, "political_status": normalize_political_status,
    "phone": normalize_phone,
}


def parse_form(data: bytes) -> FormRecord:
    """The form in a .docx file. Raises UnreadableFile or NotAForm."""
    doc = _open(data)
    values = _labelled_values(doc.element.body)
    if len(values.keys() - {"photo"}) < _MIN_LABELS:
        raise NotAForm("文档中没有找到推荐表的栏目（姓名、性别、出生年月等）")
    record = _record(values)
    record.photo_image, record.photo_ext = _photo(doc)
    record.photo = record.photo_image is not None
    return record


def _open(data: bytes):
    if data[:4] == _OLE2_MAGIC:   # encrypted OOXML and legacy .doc are both OLE2 containers
        raise UnreadableFile(ENCRYPTED_OR_DOC)
    try:
        doc = Document(BytesIO(data))
    except Exception as exc:   # zipfile, lxml, KeyError, ValueError...: all mean "can't open"
        raise UnreadableFile(CORRUPT) from exc
    if doc.element.body is None:   # a main part with no <w:body> is as broken as a bad zip
        raise UnreadableFile(CORRUPT)
    return doc


def _record(values: dict[str, str]) -> FormRecord:
    record = FormRecord()
    for key, raw in values.items():
        if key in OPINION_KEYS:
            record.opinions[key] = _opinion(raw)
        elif key != "photo":
            setattr(record, key, _NORMALIZERS.get(key, clean_text)(raw))
    return record


# ---- walking the tables -------------------------------------------------------------------

def _labelled_values(body) -> dict[str, str]:
    """Every labelled value in every table (nested ones too). A label seen twice keeps its
    first non-empty value; labels with no value map to ""."""
    found: dict[str, str] = {}
    for tbl in _tables(body):
        rows = [_row_texts(tr) for tr in _own(tbl, "tr", "tbl")]
        for i, row in enumerate(rows):
            below = rows[i + 1] if i + 1 < len(rows) else []
            for key, value in _row_values(row, below):
                if not found.get(key):
                    found[key] = value
    return found


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


def _row_values(row: list[str], below: list[str]):
    """(key, raw value) for each label in a row. The value is what follows the label in its own
    cell, else the next cell, else — for a label alone at the end of its row — the row below."""
    matches = [_match_label(text) for text in row]
    consumed = set()
    for j, match in enumerate(matches):
        if match is None or j in consumed:
            continue
        key, rest = match
        if _meaningful(key, rest):
            yield key, rest
        elif j + 1 < len(row):
            consumed.add(j + 1)
            yield key, _value_cell(key, row[j + 1], matches[j + 1])
        elif below and not any(map(_match_label, below)):
            yield key, "\n".join(text for text in below if text)
        else:
            yield key, ""


def _value_cell(key: str, text: str, match) -> str:
    """A neighbouring cell's value: "" if it is another bare label, the remainder if the clerk
    repeated this label in it ("联系电话 | 手机：138…"), else its text."""
    if match is None:
        return text
    other_key, rest = match
    if not rest:
        return ""
    return rest if other_key == key else text


def _meaningful(key: str, rest: str) -> bool:
    return bool(_opinion(rest) if key in OPINION_KEYS else rest)


def _match_label(text: str):
    """(key, remainder) when the cell starts with a label, else None."""
    for _, pattern, key in _PATTERNS:
        m = pattern.match(text)
        if m:
            return key, m.group(1).strip()
    return None


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


# ---- opinions -----------------------------------------------------------------------------

# The printed template under each opinion: （盖章）, and a date still waiting for its digits.
_STAMP = re.compile(r"[（(][^（）()]*?(?:签\s*字|签\s*名|签\s*章|盖\s*章|公\s*章)[^（）()]*[）)]")
_BLANK_DATE = re.compile(r"(?<![\d〇零一二三四五六七八九十])\s*年\s*月\s*日")


def _opinion(raw: str) -> str:
    """An opinion box with the template text removed; "" when only the template is there."""
    return clean_text(_BLANK_DATE.sub("", _STAMP.sub("", raw)))


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
