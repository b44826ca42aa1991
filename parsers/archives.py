"""The files inside an archive (.zip, .rar, .7z), within limits so that a zip bomb costs
milliseconds: a cap on members, on bytes expanded (in total and per byte of archive), read
in blocks and abandoned the moment a cap is passed.

Zip names are decoded the way Windows archivers wrote them: without the UTF-8 flag they are
in the county's code page (GBK), which zipfile has misread as cp437.
"""
from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

import ctypes

import libarchive
from libarchive import ffi
from libarchive.exception import ArchiveError

from parsers.errors import UnreadableFile

ENCRYPTED = "压缩包设置了密码，无法解压；请取消密码后重新发送，或直接发送文件"
CORRUPT = "压缩包已损坏，无法解压"
UNSUPPORTED = "压缩包使用了系统不支持的压缩方式，请改用 .zip 格式重新打包"
TOO_BIG = "压缩包解压后内容过大或文件过多（可能是异常文件），请直接发送所需文件"

MAX_MEMBERS = 50
MAX_TOTAL = 200 << 20      # bytes expanded from all the archives of one email
MAX_RATIO = 100            # expanded bytes per archive byte; documents rarely pass 10
RATIO_FLOOR = 10 << 20     # small archives may expand to this whatever the ratio
_BLOCK = 1 << 16
_JUNK = ("__MACOSX/", ".DS_Store", "Thumbs.db", "desktop.ini")


@dataclass
class Budget:
    """What is left to expand for one email, shared by nested archives."""
    members: int = MAX_MEMBERS
    bytes: int = MAX_TOTAL

    def spend(self, members: int = 0, size: int = 0) -> None:
        self.members -= members
        self.bytes -= size
        if self.members < 0 or self.bytes < 0:
            raise UnreadableFile(TOO_BIG)


def members(data: bytes, kind: str, budget: Budget) -> list[tuple[str, bytes]]:
    """(path inside the archive, bytes) for each file, directories and Mac/Windows junk left
    out. Raises UnreadableFile for encrypted, damaged, unsupported or oversized archives."""
    cap = min(budget.bytes, max(RATIO_FLOOR, MAX_RATIO * len(data)))
    limit = Budget(members=budget.members, bytes=cap)
    found = _zip_members(data, limit) if kind == "zip" else _libarchive_members(data, kind, limit)
    budget.spend(len(found), sum(len(d) for _, d in found))
    return found


def _junk(name: str) -> bool:
    return name.endswith("/") or any(part in _JUNK for part in name.split("/")) \
        or name.startswith("__MACOSX/") or "/__MACOSX/" in name


# ---- zip ----------------------------------------------------------------------------------

def _zip_members(data: bytes, limit: Budget) -> list[tuple[str, bytes]]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = [i for i in zf.infolist() if not _junk(zip_name(i))]
            limit.spend(len(infos), sum(i.file_size for i in infos))   # declared sizes first
            return [(zip_name(i), _zip_read(zf, i)) for i in infos]
    except UnreadableFile:
        raise
    except NotImplementedError:
        raise UnreadableFile(UNSUPPORTED) from None
    except RuntimeError as exc:   # zipfile: "File ... is encrypted, password required"
        raise UnreadableFile(ENCRYPTED if "encrypted" in str(exc) else CORRUPT) from None
    except Exception:  # noqa: BLE001 — BadZipFile, zlib.error, EOFError, OSError...
        raise UnreadableFile(CORRUPT) from None


def zip_name(info: zipfile.ZipInfo) -> str:
    """The member's name as the county's archiver meant it."""
    if info.flag_bits & 0x800:
        return info.filename
    raw = info.filename.encode("cp437")
    for encoding in ("utf-8", "gb18030"):   # some Mac and Linux archivers omit the flag
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return info.filename


def _zip_read(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    if info.flag_bits & 0x1:
        raise UnreadableFile(ENCRYPTED)
    out = bytearray()
    with zf.open(info) as stream:   # never yields more than the declared size
        while block := stream.read(_BLOCK):
            out += block
    return bytes(out)


# ---- rar, 7z (libarchive) -----------------------------------------------------------------

def _libarchive_format(data: bytes, kind: str) -> str:
    # Named, never "all": with auto-detection a damaged .rar holding a .docx is read as the
    # .docx's own zip parts.
    if kind == "7z":
        return "7zip"
    return "rar5" if data.startswith(b"Rar!\x1a\x07\x01\x00") else "rar"


def _libarchive_members(data: bytes, kind: str, limit: Budget) -> list[tuple[str, bytes]]:
    found = []
    spent = Budget(members=limit.members, bytes=limit.bytes)
    try:
        with libarchive.memory_reader(data, format_name=_libarchive_format(data, kind)) as archive:
            for entry in archive:
                name = entry.pathname or ""
                # 7-Zip may store a file with no type bits at all: skip only what is not a file
                if entry.isdir or entry.issym or entry.islnk or _junk(name):
                    continue
                if _encrypted(entry):
                    raise UnreadableFile(ENCRYPTED)
                spent.spend(members=1)
                found.append((name, _entry_bytes(entry, spent)))
    except UnreadableFile:
        raise
    except ArchiveError as exc:
        raise UnreadableFile(_archive_error(str(exc))) from None
    except Exception:  # noqa: BLE001 — libarchive-c surfaces odd archives as assorted errors
        raise UnreadableFile(CORRUPT) from None
    return found


_is_encrypted = ffi.libarchive.archive_entry_is_encrypted
_is_encrypted.argtypes, _is_encrypted.restype = [ctypes.c_void_p], ctypes.c_int


def _encrypted(entry) -> bool:
    """libarchive marks encrypted members but, for stored ones, would hand out the ciphertext;
    libarchive-c does not wrap the flag, hence ctypes."""
    return _is_encrypted(entry._entry_p) > 0


def _entry_bytes(entry, spent: Budget) -> bytes:
    out = bytearray()
    for block in entry.get_blocks(_BLOCK):
        spent.spend(size=len(block))   # sizes in headers can lie: count what really comes out
        out += block
    return bytes(out)


def _archive_error(message: str) -> str:
    lowered = message.lower()
    if "encrypt" in lowered or "passphrase" in lowered or "password" in lowered:
        return ENCRYPTED
    if "unsupported" in lowered or "not supported" in lowered:
        return UNSUPPORTED
    return CORRUPT
