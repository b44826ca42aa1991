"""The parts of a .docx that a form reader needs, read straight from the zip with lxml.

python-docx parses every part of the package (styles, numbering, theme, fonts) before it hands
over the body: most of the cost of reading a form. Here only the main document and its
relationships are parsed, with a parser that expands no entities and fetches nothing, so a
billion-laughs or XXE document costs nothing and reads nothing from disk or network.
"""
from __future__ import annotations

import posixpath
import zipfile
from dataclasses import dataclass
from io import BytesIO

from lxml import etree

_PKG_RELS = "{http://schemas.openxmlformats.org/package/2006/relationships}Relationship"
_OFFICE_DOCUMENT = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"
_SAFE = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                        remove_blank_text=False)
_IMAGE_TYPES = {"jpeg": "jpeg", "jpg": "jpeg", "png": "png", "gif": "gif", "bmp": "bmp",
                "tif": "tiff", "tiff": "tiff", "emf": "emf", "wmf": "wmf"}


class BadPackage(Exception):
    """Not a readable .docx: missing parts, bad zip, bad XML."""


class TooBig(Exception):
    """The parts declare more than the limit when expanded: a zip bomb, or not a form."""


@dataclass
class DocxPackage:
    zf: zipfile.ZipFile
    main: str                       # the main document part's name, e.g. word/document.xml
    root: etree._Element
    _rels: dict[str, str] | None = None

    @property
    def rels(self) -> dict[str, str]:
        """Relationship id → part name, read when a picture is first looked up."""
        if self._rels is None:
            try:
                self._rels = _relationships(self.zf, self.main)
            except (KeyError, ValueError, etree.XMLSyntaxError, zipfile.BadZipFile, OSError):
                self._rels = {}
        return self._rels

    @property
    def body(self):
        return self.root.find("{http://schemas.openxmlformats.org/wordprocessingml/2006/main}body")

    def image(self, rel_id: str) -> tuple[bytes, str] | None:
        """An embedded picture's bytes and extension, by relationship id."""
        name = self.rels.get(rel_id)
        ext = name.rsplit(".", 1)[-1].lower() if name and "." in name else ""
        if not name or ext not in _IMAGE_TYPES:
            return None
        try:
            return self.zf.read(name), _IMAGE_TYPES[ext]
        except KeyError:
            return None


def open_docx(data: bytes, max_expanded: int) -> DocxPackage:
    try:
        zf = zipfile.ZipFile(BytesIO(data))
        # zipfile never inflates a part beyond its declared size, so the declared sizes bound it.
        if sum(info.file_size for info in zf.infolist()) > max_expanded:
            raise TooBig()
        main = _main_part(zf)
        root = etree.fromstring(zf.read(main), _SAFE)
        if root.getroottree().docinfo.doctype:
            # Word never writes a DOCTYPE; one here only serves entity tricks (XXE, bombs).
            raise BadPackage("a document type declaration")
        return DocxPackage(zf, main, root)
    except (zipfile.BadZipFile, KeyError, ValueError, etree.XMLSyntaxError, OSError,
            EOFError, NotImplementedError, RuntimeError) as exc:
        raise BadPackage(str(exc) or type(exc).__name__) from None


def _main_part(zf: zipfile.ZipFile) -> str:
    if "word/document.xml" in zf.NameToInfo:   # where Word, WPS and LibreOffice all put it
        return "word/document.xml"
    for rel in etree.fromstring(zf.read("_rels/.rels"), _SAFE).iter(_PKG_RELS):
        if rel.get("Type") == _OFFICE_DOCUMENT:
            return rel.get("Target", "").lstrip("/")
    raise KeyError("no main document")


def _relationships(zf: zipfile.ZipFile, main: str) -> dict[str, str]:
    folder, name = posixpath.split(main)
    try:
        xml = zf.read(posixpath.join(folder, "_rels", name + ".rels"))
    except KeyError:
        return {}
    rels = {}
    for rel in etree.fromstring(xml, _SAFE).iter(_PKG_RELS):
        if rel.get("TargetMode") == "External":
            continue
        target = rel.get("Target", "")
        rels[rel.get("Id")] = (target.lstrip("/") if target.startswith("/")
                               else posixpath.normpath(posixpath.join(folder, target)))
    return rels
