"""Plain values that parsers hand to the rest of intake: a parsed email, its attachments, a form."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:   # a type only: `intake status` reads the field labels without the email package
    from email.message import Message

OPINION_KEYS = ("recommender", "discipline", "member_unit", "approval")

# Export field names of SPEC §2, in the form's order.
FORM_FIELDS = (
    "name", "sex", "birth", "ethnicity", "native_place", "political_status",
    "employer_post", "home_address", "phone", "honours", "deeds",
)


@dataclass
class Attachment:
    filename: str          # decoded and sanitised; for display only, never a path
    content_type: str      # as declared by the sender, lower-case
    data: bytes


@dataclass
class ParsedEmail:
    message_id: str        # "<...>"; a synthetic "<sha256@intake.invalid>" when the email has none
    from_addr: str         # lower-case address, "" when unparseable
    from_name: str
    to: list[str]
    subject: str
    in_reply_to: str
    references: list[str]
    content_type: str      # of the top-level part, lower-case
    headers: Message       # the raw headers, for RFC 3834 checks
    attachments: list[Attachment] = field(default_factory=list)
    text: str = ""         # the plain-text body, best effort
    html: str = ""         # the HTML body, best effort (HTML-only clients write no text part)
    cloud_links: list[str] = field(default_factory=list)   # 163/QQ 超大附件 download links
    from_doubt: str = ""   # why From names no single sender (several mailboxes, an address in
                           # the display name); "" for an ordinary From


@dataclass
class FormRecord:
    """One recommendation form. Values are trimmed and normalised where SPEC §2 says so;
    a value that cannot be normalised is kept as written, for validation to report."""
    name: str = ""
    sex: str = ""
    birth: str = ""
    ethnicity: str = ""
    native_place: str = ""
    political_status: str = ""
    employer_post: str = ""
    home_address: str = ""
    phone: str = ""
    honours: str = ""
    deeds: str = ""
    opinions: dict[str, str] = field(default_factory=lambda: {k: "" for k in OPINION_KEYS})
    photo: bool = False
    photo_image: bytes | None = None   # the embedded photo's bytes, when there is one
    photo_ext: str = ""                # its extension: "png", "jpeg", ...
    source: str = "document"           # "scan": the values were read by OCR from a scan
    seals: dict[str, bool] = field(default_factory=lambda: {k: False for k in OPINION_KEYS})

    def fields(self) -> dict:
        """The SPEC §2 fields as a plain dict (no image bytes)."""
        out = {k: getattr(self, k) for k in FORM_FIELDS}
        out["opinions"] = dict(self.opinions)
        out["photo"] = self.photo
        return out


# The form's own wording of each field, for replies and exports.
FIELD_LABELS = {
    "name": "姓名", "sex": "性别", "birth": "出生年月", "ethnicity": "民族",
    "native_place": "籍贯", "political_status": "政治面貌", "employer_post": "工作单位及职务",
    "home_address": "家庭地址", "phone": "联系电话", "honours": "所获荣誉情况",
    "deeds": "主要事迹", "photo": "一寸免冠照片",
    "recommender": "推荐单位意见", "discipline": "纪检监察部门意见",
    "member_unit": "成员单位意见", "approval": "审批意见",
}


@dataclass
class Problem:
    """One thing wrong with a submission: a stable code (SPEC §3) and what the reply needs to
    explain it — the file, the field and details such as the value or a count."""
    code: str
    file: str = ""
    field: str = ""
    detail: dict = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"code": self.code, "file": self.file, "field": self.field, "detail": dict(self.detail)}


@dataclass
class ReportRecord:
    """A research report (项目总结/调研报告/研究论文): what linking and the roster need."""
    title: str
    chars: int            # length without whitespace
    head: str = ""        # the opening text, where a candidate's name is looked for
