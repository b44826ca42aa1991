"""Read the recommendation forms in a .docx into FormRecords.

The document becomes a sequence of text blocks in reading order — paragraphs, and the cells
of every table (nested ones inside their cell's place) — and parsers/form_fields.py finds the
fields by their printed labels: counties re-type, merge, split and re-space the table, fill in
values next to the label or inside the label cell, or type the form without a table at all.
"""
from __future__ import annotations

from lxml import etree

from parsers.errors import UnreadableFile
from parsers.form_fields import Block, forms_from_blocks
from parsers.normalize import clean_text
from parsers.ooxml import BadPackage, DocxPackage, TooBig, open_docx
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
    """The (first) form in a .docx file. Raises UnreadableFile or NotAForm."""
    return parse_forms(data)[0]


def parse_forms(data: bytes) -> list[FormRecord]:
    """Every form in a .docx file, in document order. Raises UnreadableFile or NotAForm."""
    doc = _open(data)
    records = []
    for record, images in forms_from_blocks(_blocks(doc.body)):
        record.photo_image, record.photo_ext = _first_image(doc, images)
        record.photo = record.photo_image is not None
        records.append(record)
    return records


def _open(data: bytes) -> DocxPackage:
    if data[:4] == _OLE2_MAGIC:   # encrypted OOXML and legacy .doc are both OLE2 containers
        raise UnreadableFile(ENCRYPTED_OR_DOC)
    try:
        doc = open_docx(data, MAX_EXPANDED)
    except TooBig:
        raise UnreadableFile(TOO_BIG) from None
    except BadPackage as exc:
        raise UnreadableFile(CORRUPT) from exc
    if doc.body is None:   # a main part with no <w:body> is as broken as a bad zip
        raise UnreadableFile(CORRUPT)
    return doc


# ---- the document as blocks of text ---------------------------------------------------------

_P, _TBL = f"{_W}p", f"{_W}tbl"


def _blocks(parent, in_table: bool = False):
    """Paragraphs and table cells in reading order; content controls and other wrappers are
    looked through, the VML copy of a text box is skipped."""
    for child in parent:
        if child.tag == _P:
            content = _content(child)
            if content is None:   # something to leave out, maybe a table in a text box
                yield Block(clean_text(_cell_text_skipping(child)), in_table, _IMAGE_REFS(child))
                for tbl in _tables(child):   # a table in a text box within the paragraph
                    yield from _table_blocks(tbl)
            else:
                yield Block(clean_text(content[0]), in_table, content[1])
        elif child.tag == _TBL:
            yield from _table_blocks(child)
        elif child.tag != _MC_FALLBACK and len(child):
            yield from _blocks(child, in_table)


def _table_blocks(tbl):
    """Each cell once, row by row and left to right: a cell spanning columns is one w:tc, and
    a cell continuing a vertical merge is part of the cell above, so it is left out. A table
    nested in a cell follows that cell's own text."""
    for tr in _own(tbl, "tr", "tbl"):
        for tc in _own(tr, "tc", "tr"):
            if _continues_merge(tc):
                continue
            content = _content(tc)
            if content is None:   # something to leave out, maybe a nested table
                yield Block(clean_text(_cell_text_skipping(tc)), True, _IMAGE_REFS(tc))
                for nested in _own(tc, "tbl", "tbl"):
                    yield from _table_blocks(nested)
            else:   # nothing left out, so no table nested in it either
                yield Block(clean_text(content[0]), True, content[1])


def _tables(element):
    # Text boxes are stored twice (DrawingML and a VML fallback); read only the first copy.
    return [tbl for tbl in element.iter(_TBL)
            if next(tbl.iterancestors(_MC_FALLBACK), None) is None
            and next(tbl.iterancestors(_TBL), None) is None]


def _own(parent, tag: str, boundary: str) -> list:
    """`tag` descendants of `parent` not inside a nested `boundary` (rows of this table, not of
    a table nested in one of its cells); also finds rows and cells wrapped in content controls."""
    return _descend(parent, f"{_W}{tag}", f"{_W}{boundary}")


def _descend(parent, tag: str, boundary: str) -> list:
    found = []
    for child in parent:
        if child.tag == tag:
            found.append(child)
        elif child.tag != boundary and len(child):
            found += _descend(child, tag, boundary)
    return found


def _continues_merge(tc) -> bool:
    # The first w:tcPr child and its first w:vMerge child, found by plain loops: a path search
    # or a tag filter costs more to set up than the two or three children they look through.
    for props in tc:
        if props.tag == _TCPR:
            for vmerge in props:
                if vmerge.tag == _VMERGE:
                    return vmerge.get(_VAL, "continue") == "continue"
            return False
    return False


_TCPR, _VMERGE, _VAL = f"{_W}tcPr", f"{_W}vMerge", f"{_W}val"


# ---- cell text ------------------------------------------------------------------------------

# Revisions that are deleted, a nested table (read on its own), and the VML copy of a text box.
_SKIPPED = {f"{_W}del", f"{_W}moveFrom", f"{_W}tbl", _MC_FALLBACK}


def _content(el) -> tuple[str, list[str]] | None:
    """A cell's or paragraph's text and pictures in one pass over it, for the common element
    that holds nothing to leave out; None when it does (then _cell_text_skipping and
    _IMAGE_REFS read it). The text is as _cell_text_skipping's without the "\n" its first
    paragraph puts before it, which clean_text would drop anyway. The walk is unfiltered: lxml
    sets up a tag filter anew on every call, which costs more than the few elements of a cell."""
    parts: list[str] = []
    images: list[str] = []
    for node in el.iter():
        what = _SCANNED.get(node.tag)
        if what is None:
            continue
        if what is _TEXT:
            parts.append(node.text or "")
        elif what is _SKIP:
            if node is not el and _skipped(node):
                return None
        elif what is _PICTURE:
            ref = node.get(_PICTURE_REF[node.tag])
            if ref is not None:
                images.append(ref)
        else:
            parts.append(what)
    text = "".join(parts)
    return (text[1:] if text[:1] == "\n" else text), images


def _cell_text_skipping(tc) -> str:
    """A cell's text as Word shows it with tracked changes accepted: content controls and
    insertions included, deletions and empty placeholders left out, paragraphs joined by "\n".
    A paragraph's "\n" goes before it rather than after: clean_text drops the first one."""
    parts: list[str] = []
    walker = etree.iterwalk(tc, events=("start",))
    for _, el in walker:
        if el is not tc and _skipped(el):
            walker.skip_subtree()
        elif el.tag in _TEXT_TAGS:
            parts.append(_TEXT_OF.get(el.tag) or el.text or "")
    return "".join(parts)


def _skipped(el) -> bool:
    return el.tag in _SKIPPED or (el.tag == _SDT and _showing_placeholder(el))


_SDT = f"{_W}sdt"
_SKIP_TAGS = (*_SKIPPED, _SDT)
# What each text-bearing element contributes; w:t gives its own text.
_TEXT_OF = {f"{_W}p": "\n", f"{_W}br": "\n", f"{_W}cr": "\n", f"{_W}tab": "\t", f"{_W}t": ""}
_TEXT_TAGS = tuple(_TEXT_OF)
# DrawingML pictures (inline and floating) and legacy VML ones: the attribute naming the part.
_PICTURE_REF = {f"{{{_NS['a']}}}blip": f"{{{_NS['r']}}}embed",
                f"{{{_NS['v']}}}imagedata": f"{{{_NS['r']}}}id"}
# What _content does with each element it meets: take its text, add this text, note its
# picture, or check whether it is left out.
_TEXT, _SKIP, _PICTURE = object(), object(), object()
_SCANNED = {**{tag: text or _TEXT for tag, text in _TEXT_OF.items()},
            **dict.fromkeys(_PICTURE_REF, _PICTURE), **dict.fromkeys(_SKIP_TAGS, _SKIP)}


def _showing_placeholder(sdt) -> bool:
    # A content control still showing "单击此处输入文字" was never filled in.
    return sdt.find(f"{_W}sdtPr/{_W}showingPlcHdr") is not None


# ---- photos --------------------------------------------------------------------------------

# The same pictures as _PICTURE_REF, where _content cannot be used.
_IMAGE_REFS = etree.XPath(".//a:blip/@r:embed | .//v:imagedata/@r:id", namespaces=_NS)


def _first_image(doc: DocxPackage, rel_ids: list[str]) -> tuple[bytes | None, str]:
    """The first of these embedded pictures that the package holds, with its extension."""
    for rel_id in rel_ids:
        image = doc.image(rel_id)
        if image is not None:
            return image
    return None, ""
