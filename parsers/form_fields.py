"""From the cells of a form's table to a FormRecord, whatever file the table came from.

A table is given as rows of cell texts (left to right, a vertically merged cell only in its
first row); .docx and PDF readers each build those rows their own way and share everything
after. Fields are found by their printed labels, never by cell position.
"""
from __future__ import annotations

import re
from typing import Iterable

from parsers.errors import NotAForm
from parsers.normalize import (
    clean_text, normalize_birth, normalize_ethnicity, normalize_name, normalize_phone,
    normalize_political_status, normalize_sex,
)
from parsers.records import OPINION_KEYS, FormRecord

NOT_A_FORM = "文档中没有找到推荐表的栏目（姓名、性别、出生年月等）"

# Printed labels (and the variants counties use) → record keys; opinions use OPINION_KEYS.
LABELS = {
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
MIN_LABELS = 3   # fewer recognised fields than this: some other document

Rows = list[list[str]]


def _label_pattern(label: str) -> re.Pattern:
    # Any spacing inside the label ("姓  名", "工作单位\n及职务"); then a separator, so that a
    # value that merely starts with a label's characters ("民族地区……") is not a label;
    # then optional notes like （600字以内） and a colon.
    chars = r"\s*".join(map(re.escape, label))
    return re.compile(
        rf"^\s*{chars}(?=$|[\s:：（(])\s*(?:[（(][^（）()]*[）)]\s*)*[:：]?\s*(.*)$", re.S)


# Longest label first: "所获荣誉情况" must not be read as "所获荣誉" followed by "情况".
_PATTERNS = sorted(((len(label), _label_pattern(label), key, label[0])
                    for key, labels in LABELS.items() for label in labels),
                   key=lambda item: -item[0])
# Labels by their first character: most cells hold values, and this rules them out at once.
_BY_FIRST: dict[str, list] = {}
for _length, _pattern, _key, _first in _PATTERNS:
    _BY_FIRST.setdefault(_first, []).append((_pattern, _key))

_NORMALIZERS = {
    "name": normalize_name, "sex": normalize_sex, "birth": normalize_birth,
    "ethnicity": normalize_ethnicity, "political_status": normalize_political_status,
    "phone": normalize_phone,
}


def form_from_tables(tables: Iterable[Rows]) -> FormRecord:
    """The form held by these tables (photo left unset). Raises NotAForm."""
    values = labelled_values(tables)
    if len(values.keys() - {"photo"}) < MIN_LABELS:
        raise NotAForm(NOT_A_FORM)
    return _record(values)


def labelled_values(tables: Iterable[Rows]) -> dict[str, str]:
    """Every labelled value in the tables. A label seen twice keeps its first non-empty value;
    labels with no value map to ""."""
    found: dict[str, str] = {}
    for rows in tables:
        for i, row in enumerate(rows):
            below = rows[i + 1] if i + 1 < len(rows) else []
            for key, value in _row_values(row, below):
                if not found.get(key):
                    found[key] = value
    return found


def _record(values: dict[str, str]) -> FormRecord:
    record = FormRecord()
    for key, raw in values.items():
        if key in OPINION_KEYS:
            record.opinions[key] = opinion_text(raw)
        elif key != "photo":
            setattr(record, key, _NORMALIZERS.get(key, clean_text)(raw))
    return record


def _row_values(row: list[str], below: list[str]):
    """(key, raw value) for each label in a row. The value is what follows the label in its own
    cell, else the next cell, else — for a label alone at the end of its row — the row below."""
    matches = [match_label(text) for text in row]
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
        elif below and not any(map(match_label, below)):
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
    return bool(opinion_text(rest) if key in OPINION_KEYS else rest)


def match_label(text: str):
    """(key, remainder) when the cell starts with a label, else None."""
    for pattern, key in _BY_FIRST.get(text.lstrip()[:1], ()):
        m = pattern.match(text)
        if m:
            return key, m.group(1).strip()
    return None


# The printed template under each opinion: （盖章）, and a date still waiting for its digits.
_STAMP = re.compile(r"[（(][^（）()]*?(?:签\s*字|签\s*名|签\s*章|盖\s*章|公\s*章)[^（）()]*[）)]")
_BLANK_DATE = re.compile(r"(?<![\d〇零一二三四五六七八九十])\s*年\s*月\s*日")


def opinion_text(raw: str) -> str:
    """An opinion box with the template text removed; "" when only the template is there."""
    return clean_text(_BLANK_DATE.sub("", _STAMP.sub("", raw)))
