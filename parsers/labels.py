"""The printed labels of 《株洲市“十大能手”评选推荐表》 and the wordings counties' copies use.

One table for every reader (.docx, PDF, spreadsheet, paragraph layout): each record key with
the labels seen on real copies of the form. A label is found at the start of a block or line
("姓名", "姓  名", "工作单位\\n及职务", "主要事迹（600字以内）：") and, on a line that already
starts with a label, after a space when a colon follows ("姓名：张三　性别：男").
"""
from __future__ import annotations

import re

LABELS = {
    "name": ("姓名",),
    "sex": ("性别",),
    "birth": ("出生年月", "出生年月日", "出生日期", "出生时间"),
    "ethnicity": ("民族",),
    "native_place": ("籍贯", "出生地"),
    "political_status": ("政治面貌",),
    "employer_post": ("工作单位及职务", "工作单位及职位", "工作单位及职称", "工作单位及职务职称",
                      "工作单位和职务", "工作单位与职务", "单位及职务", "工作单位职务"),
    "home_address": ("家庭地址", "家庭住址", "家庭详细地址", "住址"),
    "phone": ("联系电话", "联系方式", "手机", "手机号码", "手机号", "联系手机", "电话"),
    "honours": ("所获荣誉情况", "所获荣誉", "获得荣誉情况", "荣誉情况", "获奖情况", "曾获荣誉"),
    "deeds": ("主要事迹", "先进事迹", "主要先进事迹", "事迹简介"),
    "recommender": ("推荐单位意见", "推荐意见", "推荐单位推荐意见"),
    "discipline": ("纪检监察部门意见", "纪检监察机关意见", "纪委监委意见"),
    "member_unit": ("成员单位意见",),
    "approval": ("审批意见", "审批单位意见"),
    "photo": ("一寸免冠照片", "免冠照片", "照片", "一寸照片", "近期免冠照片"),
    # Printed on the form, but no field of the record: they end the field before them.
    "category": ("类别",),
    "note": ("注", "备注", "填表说明"),
}
IGNORED = frozenset({"photo", "category", "note"})   # labels that carry no value we keep

_NOTES = r"(?:[（(][^（）()\n]*[）)][ \t\u3000]*)*"


def _chars(label: str, space: str) -> str:
    return space.join(map(re.escape, label))


def _start_pattern(label: str) -> re.Pattern:
    # Any spacing inside the label ("姓  名", "工作单位\n及职务"); then a separator, so that a
    # value that merely starts with a label's characters ("民族地区……") is not a label;
    # then optional notes like （600字以内） and a colon. "(类别：…)" may open with a bracket.
    lead = r"[（(]?\s*" if label == "类别" else ""
    # Short words that also open sentences are labels only with a colon, or alone in their cell.
    colon_needed = label in ("注", "电话", "住址")
    after = r"\s*" + _NOTES + (r"(?:[:：]|$)" if colon_needed else r"[:：]?")
    chars = _chars(label, r"\s*")
    return re.compile(rf"^\s*{lead}{chars}(?=$|[\s:：（(]){after}[ \t\u3000]*", re.S)


# Longest label first: "所获荣誉情况" must not be read as "所获荣誉" followed by "情况".
_ALL = sorted(((label, key) for key, labels in LABELS.items() for label in labels),
              key=lambda item: -len(item[0]))
_BY_FIRST: dict[str, list] = {}   # most blocks are values: ruled out by their first character
for _label, _key in _ALL:
    _BY_FIRST.setdefault(_label[0], []).append((_start_pattern(_label), _key))
_KEY_OF = {label: key for label, key in _ALL}
# Inside a line: after a space, spaces inside the label allowed, and a colon required.
_INLINE = re.compile(
    r"(?<=[ \t\u3000])(" + "|".join(_chars(label, r"[ \t\u3000]*") for label, _ in _ALL) + r")"
    r"[ \t\u3000]*" + _NOTES + r"[:：][ \t\u3000]*")


def match_label(text: str) -> tuple[str, str] | None:
    """(key, remainder) when `text` starts with a label, else None."""
    stripped = text.lstrip()
    first = stripped[:1]
    if first and first in "（(":   # "(类别：信息技术能手)"
        first = stripped[1:].lstrip()[:1]
    for pattern, key in _BY_FIRST.get(first, ()):
        m = pattern.match(text)
        if m:
            return key, text[m.end():]
    return None


def split_labelled_line(line: str) -> list[tuple[str | None, str]]:
    """A line that starts with a value, cut where further labels stand: "张三　性别：男" →
    [(None, "张三"), ("sex", "男")]."""
    pieces: list[tuple[str | None, str]] = []
    key, start = None, 0
    for m in _INLINE.finditer(line):
        pieces.append((key, line[start:m.start()]))
        key, start = _KEY_OF[re.sub(r"[ \t\u3000]", "", m.group(1))], m.end()
    pieces.append((key, line[start:]))
    return pieces


# When a .doc's table is lost in conversion, its cells run together as paragraphs: "（600字以内）
# 推荐单位", "意见同意推荐。", "年 月 日纪检监察". The opinion labels are then found inside a line
# too, spread over lines and glued to the text around them — but only at a line's start or
# right after the box's printed template (（盖章）, 年 月 日, （600字以内）), never mid-sentence.
_GLUED_KEYS = ("recommender", "discipline", "member_unit", "approval")
_GLUED_LABELS = sorted(((label, key) for key in _GLUED_KEYS for label in LABELS[key]),
                       key=lambda item: -len(item[0]))
_GLUED = re.compile(r"(?:^|(?<=日)|(?<=[）)]))[ \t\u3000]*("
                    + "|".join(_chars(label, r"\s*") for label, _ in _GLUED_LABELS)
                    + r")\s*[:：]?", re.M)
_GLUED_KEY_OF = {label: key for label, key in _GLUED_LABELS}


def split_glued_opinions(text: str) -> list[tuple[str | None, str]]:
    """Running text cut where an opinion label stands, glued or not: [(None, text before),
    (key, text after), ...]."""
    pieces: list[tuple[str | None, str]] = []
    key, start = None, 0
    for m in _GLUED.finditer(text):
        pieces.append((key, text[start:m.start()]))
        key, start = _GLUED_KEY_OF[re.sub(r"\s", "", m.group(1))], m.end()
    pieces.append((key, text[start:]))
    return pieces


# A label's printed note left on its own once the label has been read: "（600字以内）".
_NOTE_ONLY = re.compile(r"^\s*[（(][^（）()]*字以内[^（）()]*[）)]\s*$")


def is_note(text: str) -> bool:
    return "字以内" in text and bool(_NOTE_ONLY.match(text))   # the test first: most text is none


# The form's title, alone in its paragraph or cell: "株洲市“十大能手”评选推荐表", "附件1：……推荐表",
# "（信息技术能手）推荐表".
_TITLE = re.compile(r"^(?:附\s*件\s*\d*\s*[:：]?\s*)?[^\n]{0,30}推\s*荐\s*表\s*[)）]?$")


def is_title(text: str) -> bool:
    return "荐" in text and bool(_TITLE.match(text.strip()))   # the test first: most text is none
