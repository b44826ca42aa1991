"""What reading may cost: per file (the XML an Office file expands to, checked from its zip
directory before anything is parsed) and per email (wall-clock seconds and expanded bytes over
all its files), so that a hostile email holds the worker for a bounded time and every county
behind it waits at most that long.
"""
from __future__ import annotations

import time
import zipfile
from dataclasses import dataclass, field
from io import BytesIO

MAX_XML_BYTES = 16 << 20    # an Office file's XML parts expanded: a real form's are under 1 MB
EMAIL_SECONDS = 50
EMAIL_EXPANDED_BYTES = 300 << 20
MIN_SECONDS = 2.0           # a file is not started with less than this left

XML_TOO_BIG = f"文件解压后的文字内容过大（超过 {MAX_XML_BYTES >> 20} MB，可能是异常文件），无法读取"
OUT_OF_TIME = "本邮件的附件过多或过于复杂，系统处理时间已用完，此文件未读取；请将此文件单独发送"
OUT_OF_BYTES = "本邮件的附件解压后内容总量过大，此文件未读取；请将此文件单独发送"


@dataclass
class EmailBudget:
    """What is left for one email's files: a wall-clock deadline and expanded bytes."""
    seconds: float = EMAIL_SECONDS
    bytes: int = EMAIL_EXPANDED_BYTES
    deadline: float = field(init=False)

    def __post_init__(self) -> None:
        self.deadline = time.monotonic() + self.seconds

    def seconds_left(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def refusal(self, data: bytes) -> str:
        """Why a file may not be read now ("" when it may), spending its expanded size."""
        if self.seconds_left() < MIN_SECONDS:
            return OUT_OF_TIME
        size = max(len(data), zip_expanded(data) or 0)
        if size > self.bytes:
            return OUT_OF_BYTES
        self.bytes -= size
        return ""


def zip_expanded(data: bytes, suffixes: tuple[str, ...] = ()) -> int | None:
    """The bytes a zip package's members (those ending with `suffixes`, or all) declare
    expanded; None when the data is not a readable zip. zipfile never inflates a member beyond
    its declared size, so this bounds what reading it costs."""
    if data[:2] != b"PK":
        return None
    try:
        with zipfile.ZipFile(BytesIO(data)) as zf:
            return sum(i.file_size for i in zf.infolist()
                       if not suffixes or i.filename.lower().endswith(suffixes))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError):
        return None


def xml_too_big(data: bytes) -> bool:
    """An Office file (.docx, .xlsx) whose XML parts expand beyond MAX_XML_BYTES."""
    return (zip_expanded(data, (".xml", ".rels")) or 0) > MAX_XML_BYTES
