"""Outlook's winmail.dat (TNEF): the files it wraps, named as the sender named them."""
from __future__ import annotations

import logging

from tnefparse.tnef import TNEF

from parsers.archives import Budget
from parsers.errors import UnreadableFile

CORRUPT = "Outlook 附件包（winmail.dat）已损坏，无法读取；请在 Outlook 中改用 HTML 或纯文本格式发送"

# tnefparse warns about every attribute it does not know; that is noise for an operator.
logging.getLogger("tnefparse").setLevel(logging.ERROR)


def tnef_members(data: bytes, budget: Budget) -> list[tuple[str, bytes]]:
    """(file name, bytes) for each attachment wrapped in the TNEF stream."""
    try:
        tnef = TNEF(data, do_checksum=False)
    except Exception:  # noqa: BLE001 — struct errors and ValueError on truncated streams
        raise UnreadableFile(CORRUPT) from None
    found = [(_name(att, i), att.data) for i, att in enumerate(tnef.attachments, 1)
             if att.data]
    budget.spend(len(found), sum(len(d) for _, d in found))
    return found


def _name(att, number: int) -> str:
    """The long (Unicode) name when Outlook wrote one, else the 8.3 title in the sender's
    code page (GBK on a Chinese Windows)."""
    for value in (_long_name(att), att._name):
        if isinstance(value, bytes):
            value = _decode(value.rstrip(b"\x00"), att.codepage)
        if value and value.strip("\x00").strip():
            return value.strip("\x00").strip()
    return f"winmail附件{number}"


def _long_name(att):
    try:
        return att.long_filename()
    except Exception:  # noqa: BLE001
        return None


def _decode(raw: bytes, codepage: str | None) -> str:
    for encoding in ("utf-8", codepage or "gb18030", "gb18030"):
        try:
            return raw.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            continue
    return raw.decode("gb18030", errors="replace")
