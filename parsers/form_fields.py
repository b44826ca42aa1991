"""From a document's text blocks to its FormRecords, whatever file the blocks came from.

A document is given as a sequence of blocks in reading order: the cells of every table (row by
row, left to right, a merged cell once) and the paragraphs between them. .docx, PDF and
spreadsheet readers each build that sequence their own way and share everything after.

Fields are found by their printed labels (parsers/labels.py), never by position: each label
takes everything up to the next label, and all the pieces of one field are joined in document
order — the 主要事迹 row of the form's first table and the one that opens its second table make
one value. The label sequence starting again at 姓名 starts the next candidate's form.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable

from parsers.errors import NotAForm
from parsers.labels import (
    IGNORED, is_note, is_title, match_label, split_glued_opinions, split_labelled_line,
)
from parsers.normalize import (
    clean_text, is_valid_phone, normalize_birth, normalize_ethnicity, normalize_name,
    normalize_phone, normalize_political_status, normalize_sex,
)
from parsers.records import OPINION_KEYS, FormRecord

NOT_A_FORM = "文档中没有找到推荐表的栏目（姓名、性别、出生年月等）"

MIN_LABELS = 3        # fewer recognised fields than this: some other document
MIN_UNTITLED = 8      # labels only in running text, no title: this many before it is a form


@dataclass
class Block:
    """A table cell's or a paragraph's text."""
    text: str
    in_table: bool = False
    images: list = field(default_factory=list)   # pictures standing here, as the reader names them


_NORMALIZERS = {
    "name": normalize_name, "sex": normalize_sex, "birth": normalize_birth,
    "ethnicity": normalize_ethnicity, "political_status": normalize_political_status,
    "phone": normalize_phone,
}


@dataclass
class _Form:
    pieces: dict[str, list[str]] = field(default_factory=dict)
    images: list = field(default_factory=list)

    def labels(self) -> set[str]:
        return self.pieces.keys() - IGNORED

    def add(self, key: str, text: str) -> None:
        self.pieces.setdefault(key, [])
        text = clean_text(text)
        if text and not is_note(text):
            self.pieces[key].append(text)


def forms_from_blocks(blocks: Iterable[Block]) -> list[tuple[FormRecord, list]]:
    """Every form in the document, in document order, each with the pictures that stand in
    it (the reader sets the photo from them). Raises NotAForm."""
    forms, evidence = _read_sequence(blocks)
    labels = set().union(*(f.labels() for f in forms))
    if len(labels) < MIN_LABELS or not (evidence or len(labels) >= MIN_UNTITLED):
        raise NotAForm(NOT_A_FORM)
    return [(_record(form), form.images) for form in forms]


def _read_sequence(blocks: Iterable[Block]) -> tuple[list[_Form], bool]:
    """The forms the label sequence holds, and whether the document shows it is the form:
    its title, or labels in table cells."""
    forms = [_Form()]
    key: str | None = None        # the field the text being read belongs to
    evidence = False
    for block in _paragraphs_joined(blocks):
        if is_title(block.text):
            evidence, key = True, None
            continue
        forms[-1].images += block.images
        for label, text in _pieces(block.text) if block.in_table else _running_pieces(block.text):
            if label is None:
                if key is not None:
                    forms[-1].add(key, text)
                continue
            if label == "name" and _complete_enough(forms[-1]):
                forms.append(_Form())
            evidence = evidence or (block.in_table and label not in IGNORED)
            key = label
            forms[-1].add(key, text)
    return _fragments_folded(forms), evidence


def _paragraphs_joined(blocks: Iterable[Block]):
    """Consecutive paragraphs outside tables as one block of running text (a title line stays
    on its own): a label lost in conversion may be spread over several of them."""
    run: list[Block] = []
    for block in blocks:
        lines = [block] if block.in_table else _lines(block)
        for line in lines:
            if line.in_table or is_title(line.text):
                if run:
                    yield _joined(run)
                    run = []
                yield line
            else:
                run.append(line)
    if run:
        yield _joined(run)


def _lines(block: Block) -> list[Block]:
    first, *rest = block.text.split("\n")
    return [Block(first, False, block.images), *(Block(text, False) for text in rest)]


def _joined(run: list[Block]) -> Block:
    return Block("\n".join(b.text for b in run), False, [i for b in run for i in b.images])


def _running_pieces(text: str) -> list[tuple[str | None, str]]:
    """The pieces of running text: labels at the start of lines, and opinion labels glued
    into the text where a lost table's cells ran together."""
    out: list[tuple[str | None, str]] = []
    for key, segment in split_glued_opinions(text):
        pieces = _pieces(segment)
        if key is not None:
            if pieces[0][0] is None:
                pieces[0] = (key, pieces[0][1])
            else:
                pieces.insert(0, (key, ""))
        out += pieces
    return out


def _complete_enough(form: _Form) -> bool:
    """A form that already has a name and enough fields: 姓名 again is the next form."""
    return "name" in form.pieces and len(form.labels()) >= MIN_LABELS


def _fragments_folded(forms: list[_Form]) -> list[_Form]:
    """A trailing piece too small to be a form of its own belongs to the form before it."""
    out = [forms[0]]
    for form in forms[1:]:
        if len(form.labels()) >= MIN_LABELS:
            out.append(form)
        else:
            for key, texts in form.pieces.items():
                out[-1].pieces.setdefault(key, []).extend(texts)
            out[-1].images += form.images
    return out


def _pieces(text: str) -> list[tuple[str | None, str]]:
    """(label key or None, text) in the order they stand in a block. A label may open the
    block (spread over lines: "纪检监察\\n部门\\n意见") or any line; a line that opens with a
    label may hold further ones ("姓名：张三 性别：男")."""
    first = match_label(text)
    if first is None and "\n" not in text:   # most cells: one line of value
        return [(None, text)]
    out: list[tuple[str | None, str]] = []
    lines = text.split("\n")
    if first is not None:
        key, rest = first
        head, *lines = rest.split("\n")
        out += _first_piece_labelled(key, split_labelled_line(head))
    for line in lines:
        match = match_label(line)
        if match is None:
            out.append((None, line))
        else:
            out += _first_piece_labelled(match[0], split_labelled_line(match[1]))
    return _continuations_joined(out)


def _continuations_joined(pieces: list[tuple[str | None, str]]) -> list[tuple[str | None, str]]:
    """Lines without a label continue the piece before them, blank lines and all."""
    out = pieces[:1]
    for key, text in pieces[1:]:
        if key is None:
            out[-1] = (out[-1][0], f"{out[-1][1]}\n{text}")
        else:
            out.append((key, text))
    return out


def _first_piece_labelled(key: str, pieces: list[tuple[str | None, str]]):
    (_, text), *rest = pieces
    return [(key, text), *rest]


def _record(form: _Form) -> FormRecord:
    record = FormRecord()
    for key, texts in form.pieces.items():
        raw = "\n".join(texts)
        if key == "phone" and len(texts) > 1:
            record.phone = _one_phone(texts, raw)
        elif key in OPINION_KEYS:
            record.opinions[key] = opinion_text(raw)
        elif key not in IGNORED:
            setattr(record, key, _NORMALIZERS.get(key, clean_text)(raw))
    return record


def _one_phone(texts: list[str], raw: str) -> str:
    """Two numbers under two phone labels (联系电话 and 手机): the first valid one is the phone;
    otherwise all of it, for validation to quote back."""
    numbers = [normalize_phone(text) for text in texts]
    return next((n for n in numbers if is_valid_phone(n)), normalize_phone(raw))


# The printed template under each opinion: （盖章）, and a date still waiting for its digits.
_STAMP = re.compile(r"[（(][^（）()]*?(?:签\s*字|签\s*名|签\s*章|盖\s*章|公\s*章)[^（）()]*[）)]")
_BLANK_DATE = re.compile(r"(?<![\d〇零一二三四五六七八九十])\s*年\s*月\s*日")


def opinion_text(raw: str) -> str:
    """An opinion box with the template text removed; "" when only the template is there."""
    return clean_text(_BLANK_DATE.sub("", _STAMP.sub("", raw)))
