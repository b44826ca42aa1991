"""What an attachment really is, from its first bytes rather than its name."""
from __future__ import annotations

import io
import struct
import zipfile

_MAGIC = (
    (b"%PDF-", "pdf"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "ole"),       # .doc, .wps, .xls, .et, encrypted .docx
    (b"{\\rtf", "rtf"),
    (b"\x89PNG\r\n\x1a\n", "image"),
    (b"\xff\xd8\xff", "image"),
    (b"GIF87a", "image"),
    (b"GIF89a", "image"),
    (b"BM", "image"),
    (b"II*\x00", "image"),
    (b"MM\x00*", "image"),
    (b"Rar!\x1a\x07", "rar"),
    (b"7z\xbc\xaf\x27\x1c", "7z"),
    (b"\x78\x9f\x3e\x22", "tnef"),
)

# Names that mark a file as a document a county meant us to read, whatever its content.
DOCUMENT_EXTENSIONS = {"doc", "docx", "wps", "wpt", "rtf", "pdf", "zip", "rar", "7z", "odt",
                       "dot", "dotx", "docm", "jpg", "jpeg", "png", "bmp", "tif", "tiff", "gif",
                       "dat", "xls", "xlsx", "et"}

# An OLE2 file holding a password-protected .docx names these streams (UTF-16 directory).
_ENCRYPTED_STREAMS = ("EncryptionInfo".encode("utf-16-le"), "EncryptedPackage".encode("utf-16-le"))
# Excel's and WPS 表格's binary workbooks keep their sheets in a stream named Workbook (or Book
# for Excel 5); a Word or WPS 文字 file has a WordDocument stream instead.
_WORD_STREAM = "WordDocument".encode("utf-16-le")
_SHEET_STREAMS = ("Workbook".encode("utf-16-le"), "Book\0".encode("utf-16-le"))


def sniff(data: bytes) -> str:
    """One of docx, xlsx, odt, office, zip, pdf, ole, ole-encrypted, xls, rtf, image, rar, 7z, tnef,
    html, empty, unknown."""
    if not data:
        return "empty"
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            return _ole_kind(data) if kind == "ole" else kind
    if data.startswith(b"PK\x03\x04") or data.startswith(b"PK\x05\x06"):
        return _zip_kind(data)
    head = data[:512].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")):
        return "html"
    return "unknown"


def extension(filename: str) -> str:
    return filename.rsplit(".", 1)[-1].lower() if "." in filename else ""


def _ole_kind(data: bytes) -> str:
    if all(name in data for name in _ENCRYPTED_STREAMS):
        return "ole-encrypted"
    if _WORD_STREAM not in data and any(name in data for name in _SHEET_STREAMS):
        return "xls"
    return "ole"


def _zip_kind(data: bytes) -> str:
    names = _central_names(data)
    if "word/document.xml" in names:   # the common case, without building a ZipFile
        return "docx"
    if "xl/workbook.xml" in names:
        return "xlsx"
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = set(zf.namelist())
            mimetype = zf.read("mimetype")[:100] if "mimetype" in names else b""
    except (zipfile.BadZipFile, ValueError, OSError, NotImplementedError, RuntimeError):
        # damaged: a name ending .docx goes to the Word reader, anything else to the archive
        # reader, and each says what is wrong
        return "zip"
    if "word/document.xml" in names:
        return "docx"
    if "xl/workbook.xml" in names:
        return "xlsx"
    if mimetype.startswith(b"application/vnd.oasis.opendocument.text"):
        return "odt"
    if "[Content_Types].xml" in names or mimetype.startswith(b"application/vnd.oasis"):
        return "office"   # a spreadsheet or slides: a zip inside, but not an archive to open
    return "zip"


_EOCD = b"PK\x05\x06"
_CENTRAL = b"PK\x01\x02"


def _central_names(data: bytes) -> set[str]:
    """The member names in a zip's central directory, read with struct alone; an empty set
    when the directory is not where it should be (zipfile then looks harder)."""
    end = data.rfind(_EOCD, max(0, len(data) - 65557))
    if end < 0 or end + 22 > len(data):
        return set()
    count, size, offset = struct.unpack_from("<HII", data, end + 10)
    names, pos = set(), offset
    for _ in range(count):
        if data[pos:pos + 4] != _CENTRAL or pos + 46 > len(data):
            return set()
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", data, pos + 28)
        names.add(data[pos + 46:pos + 46 + name_len].decode("utf-8", "replace"))
        pos += 46 + name_len + extra_len + comment_len
    return names
