"""The roster in the formats people open: .csv (Excel on Windows), .xlsx (Excel and WPS) and a
.docx review pack for the panel. Each writer is a function of records and settings; only the
review pack reads the store, for the photos."""
from __future__ import annotations

import copy
import csv
import datetime as dt
import io
import json
import re
from dataclasses import dataclass
from typing import Callable

from docx import Document
from docx.enum.section import WD_SECTION
from docx.enum.table import WD_ROW_HEIGHT_RULE, WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml.ns import qn
from docx.shared import Cm, Pt
from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from openpyxl.worksheet.properties import PageSetupProperties

from outbox.compose import REVIEW_WORDS, STATUS_WORDS
from outbox.wording import describe, problem_label
from parsers.records import FIELD_LABELS, FORM_FIELDS, OPINION_KEYS
from pipeline.form_layout import FORM_LAYOUT
from pipeline.rules import missing_seals
from pipeline.roster import CountyRow, export_roster, in_county_order, latest_problems, rows_for
from pipeline.settings import Settings

SKIP_REASONS = {
    "auto-reply": "自动回复", "bounce": "退信", "list": "邮件列表", "bulk": "群发邮件",
    "own address": "本邮箱发出", "duplicate": "重复邮件", "no sender address": "无发件地址",
    "unknown sender without documents": "未登记的发件人（无附件）",
}


@dataclass(frozen=True)
class Column:
    header: str
    width: int                      # in Excel's character widths
    value: Callable[[dict], object]


def _field(key: str) -> Callable[[dict], object]:
    return lambda c: c.get(key) or ""


def _opinion(key: str) -> Callable[[dict], object]:
    return lambda c: (c.get("opinions") or {}).get(key) or ""


def _report(key: str) -> Callable[[dict], object]:
    return lambda c: (c.get("report") or {}).get(key) or ""


# Narrow enough that the sheet, printed landscape one page wide, stays legible: long texts wrap
# into taller rows instead of widening the page.
_WIDTHS = {"name": 8, "sex": 5, "birth": 9, "ethnicity": 7, "native_place": 10,
           "political_status": 10, "employer_post": 20, "home_address": 18, "phone": 14,
           "honours": 22, "deeds": 40}

# The form's order (SPEC §2), then what intake knows about each candidate.
CANDIDATE_COLUMNS = (
    Column("县市区", 7, _field("county")),
    *(Column(FIELD_LABELS[k], _WIDTHS[k], _field(k)) for k in FORM_FIELDS),
    *(Column(FIELD_LABELS[k], 12, _opinion(k)) for k in OPINION_KEYS),
    Column("照片", 5, lambda c: "有" if c.get("photo") else "无"),
    # ✔: a scan showed the seals of 推荐单位意见 and 纪检监察部门意见
    Column("盖章件", 6, lambda c: "✘" if missing_seals(c.get("seals")) else "✔"),
    Column("状态", 7, lambda c: STATUS_WORDS.get(c["status"], c["status"])),
    Column("问题", 30, lambda c: "\n".join(problem_sentences(c))),
    Column("评审", 12, lambda c: _review(c)),
    Column("版本数", 5, lambda c: c["version_count"] if "version_count" in c else len(c.get("versions") or [])),
    Column("报告题目", 16, _report("title")),
    Column("报告字数", 7, _report("chars")),
    Column("最近报送时间", 16, lambda c: _local(c.get("updated_at") or _last_version_time(c))),
)

SUBMISSION_COLUMNS = (
    Column("收到时间", 18, lambda s: _local(s["received_at"])),
    Column("发件人", 26, _field("from")),
    Column("县市区", 10, lambda s: s.get("county") or "（未登记）"),
    Column("主题", 36, _field("subject")),
    Column("处理结果", 10, lambda s: "未回复" if s["status"] == "skipped"
           else ("已转人工（已处理）" if s.get("answered_at") else "已转人工（待处理）")
           if s["status"] == "needs-person"
           else STATUS_WORDS.get(s["status"], s["status"])),
    Column("未回复原因", 20, lambda s: SKIP_REASONS.get(s.get("reason") or "", s.get("reason") or "")),
    Column("问题代码", 30, lambda s: "\n".join(s.get("problems") or [])),
    Column("问题说明", 24, lambda s: "\n".join(problem_label(p) for p in s.get("problems") or [])),
    Column("来信内容", 40, lambda s: s.get("words") or ""),
    Column("附件", 40, lambda s: "\n".join(f.get("name", "") for f in s.get("files") or [])),
)

COUNTY_COLUMNS = (
    Column("县市区", 10, lambda r: r.county),
    Column("已受理", 8, lambda r: r.accepted),
    Column("需补正", 8, lambda r: r.needs_correction),
    Column("未受理", 8, lambda r: r.rejected),
    Column("已撤回", 8, lambda r: r.withdrawn),
    Column("已用名额", 10, lambda r: r.places_used),
    Column("名额上限", 10, lambda r: r.places_max),
    Column("调研报告", 10, lambda r: r.reports),
    Column("来信数", 8, lambda r: r.emails),
    Column("最近来信", 18, lambda r: _local(r.last_submission)),
)


def problem_sentences(cand: dict) -> list[str]:
    """What the county was told about the candidate's current version, in plain Chinese."""
    if cand.get("status") in ("accepted", "withdrawn"):
        return []
    return [describe(p) if isinstance(p, dict) else describe({"code": p}) for p in latest_problems(cand)]


def _review(cand: dict) -> str:
    """The review mark in the notice's words, with its note: "入围备选名单（初选通过）"."""
    review = cand.get("review")
    if not review:
        return ""
    word = REVIEW_WORDS.get(review["status"], review["status"])
    return f"{word}（{review['note']}）" if review.get("note") else word


def _last_version_time(cand: dict) -> str:
    versions = cand.get("versions") or []
    return versions[-1].get("received_at", "") if versions else ""


def _local(iso: str | None) -> dt.datetime | str:
    """A naive local datetime (spreadsheets have no time zones), or "" when there is none."""
    return dt.datetime.fromisoformat(iso).replace(tzinfo=None) if iso else ""


def _text(value) -> str:
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value)


# ------------------------------------------------------------------------ csv

# Columns Excel and WPS would turn into numbers or dates when opening a csv: 0731… loses its
# zero, 1985-06 becomes Jun-85. Written as ="…" they stay text (see the README).
_CSV_AS_TEXT = {FIELD_LABELS["phone"], FIELD_LABELS["birth"]}


def roster_csv(candidates: list[dict], settings: Settings) -> bytes:
    """One row per candidate, UTF-8 with a BOM so Excel on Windows shows the Chinese."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([c.header for c in CANDIDATE_COLUMNS])
    for cand in in_county_order(candidates, settings):
        writer.writerow([_csv_cell(col.header, _text(col.value(cand))) for col in CANDIDATE_COLUMNS])
    return out.getvalue().encode("utf-8-sig")


def _csv_cell(header: str, text: str) -> str:
    if header in _CSV_AS_TEXT and text and '"' not in text:
        return f'="{text}"'
    return text


# ----------------------------------------------------------------------- xlsx

_HEADER = {"font": Font(bold=True, color="FFFFFF"), "fill": PatternFill("solid", fgColor="1F4E79"),
           "alignment": Alignment(horizontal="center", vertical="center", wrap_text=True)}
_WRAPPED = {"alignment": Alignment(wrap_text=True, vertical="top")}
_WHEN = {**_WRAPPED, "number_format": "yyyy-mm-dd hh:mm"}


def roster_xlsx(candidates: list[dict], submissions: list[dict], settings: Settings) -> bytes:
    """推荐人选 (one row per candidate), 来信记录 (every email read) and 各县市区 (the figures)."""
    wb = Workbook()
    _sheet(wb.active, "推荐人选", CANDIDATE_COLUMNS, in_county_order(candidates, settings))
    _sheet(wb.create_sheet(), "来信记录", SUBMISSION_COLUMNS,
           sorted(submissions, key=lambda s: s["received_at"]))
    rows: list[CountyRow] = rows_for(candidates, submissions, settings)
    _sheet(wb.create_sheet(), "各县市区", COUNTY_COLUMNS, rows)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _sheet(ws, title: str, columns: tuple[Column, ...], records: list) -> None:
    ws.title = title
    widths = [c.width for c in columns]
    styles = _Styles(ws)
    _row(ws, 1, [c.header for c in columns], widths, styles, _HEADER)
    for number, record in enumerate(records, start=2):
        _row(ws, number, [col.value(record) for col in columns], widths, styles)
    for i, col in enumerate(columns, start=1):
        ws.column_dimensions[get_column_letter(i)].width = col.width
    ws.freeze_panes = "A2"
    if records:
        ws.auto_filter.ref = ws.dimensions
    _print_setup(ws)


def _row(ws, number: int, values: list, widths: list[int], styles: "_Styles", style: dict | None = None) -> None:
    """One row, styled, as tall as its wrapped text (Excel and LibreOffice do not grow a row for
    wrapped text written by a program): lines per cell estimated from the column's width, a CJK
    character counting two. An empty value makes no cell (a cell holding "" shows the same)."""
    ws.append([None if value == "" else value for value in values])
    for column, value in enumerate(values, start=1):
        if value != "":
            styles.give(ws.cell(number, column),
                        style or (_WHEN if isinstance(value, dt.datetime) else _WRAPPED))
    lines = max((_lines(_text(value), width) for value, width in zip(values, widths)
                 if value is not None), default=1)
    ws.row_dimensions[number].height = min(_MAX_ROW_POINTS, _LINE_POINTS * max(lines, 1) + 3)


class _Styles:
    """Gives cells a style made once per sheet: setting a font or an alignment on a cell makes
    openpyxl look the style objects up again by hash (about half the time of styling a cell);
    a cell that takes the style ids of one already styled gets the same look for a copy of a
    small array."""

    def __init__(self, ws):
        self.made: dict[int, object] = {}

    def give(self, cell, style: dict) -> None:
        made = self.made.get(id(style))
        if made is None:
            for name, value in style.items():
                setattr(cell, name, value)
            self.made[id(style)] = copy.copy(cell._style)
        else:
            cell._style = copy.copy(made)


def _print_setup(ws) -> None:
    """Printed as the contact expects: landscape A4, every column on the page's width, the
    header row repeated on each page."""
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0      # as many pages down as it takes
    ws.print_title_rows = "1:1"
    ws.page_margins.left = ws.page_margins.right = 0.4
    ws.print_options.gridLines = True


_LINE_POINTS = 15      # one line of 11 pt text
_MAX_ROW_POINTS = 409  # Excel's limit
_WIDE = re.compile("[\u2e81-\U0010ffff]")   # characters that take two columns' width


def _lines(text: str, width: int) -> int:
    if 2 * len(text) < width and "\n" not in text:
        return 1   # the common short cell, even if every character is wide
    total = 0
    for paragraph in text.split("\n"):
        units = len(paragraph) + len(_WIDE.findall(paragraph))
        total += max(1, -(-units // max(width - 1, 1)))
    return total


# ------------------------------------------------------------ docx review pack

FORM_TITLE = "株洲市“十大能手”评选推荐表"
FORM_CATEGORY = "类别：信息技术能手"
_FONT = "宋体"


def review_pack_docx(candidates: list[dict], settings: Settings, files=None) -> bytes:
    """Every accepted candidate's form re-typeset from the record, one section (page) each,
    counties in the configuration's order; `files` (the store's FileStore) supplies photos."""
    accepted = [c for c in in_county_order(candidates, settings) if c["status"] == "accepted"]
    doc = Document()
    _default_font(doc)
    if not accepted:
        doc.add_paragraph("目前尚无已受理的推荐人选。")
    for i, cand in enumerate(accepted):
        section = doc.sections[0] if i == 0 else doc.add_section(WD_SECTION.NEW_PAGE)
        _page_setup(section, cand)
        _candidate_form(doc, cand, _photo(files, cand))
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


def _default_font(doc) -> None:
    style = doc.styles["Normal"]
    style.font.name, style.font.size = _FONT, Pt(10.5)
    style.element.rPr.rFonts.set(qn("w:eastAsia"), _FONT)


def _page_setup(section, cand: dict) -> None:
    section.page_width, section.page_height = Cm(21), Cm(29.7)
    section.left_margin = section.right_margin = Cm(2.2)
    section.top_margin = section.bottom_margin = Cm(2)
    section.header.is_linked_to_previous = False
    header = section.header.paragraphs[0]
    header.text = f"信息技术能手评审材料 · {cand['county']} · {cand['name']}"
    header.alignment = WD_ALIGN_PARAGRAPH.RIGHT


def _photo(files, cand: dict) -> bytes | None:
    if files is None or not cand.get("photo_file"):
        return None
    try:
        return files.read(cand["photo_file"])
    except OSError:
        return None


_COL_WIDTHS = (Cm(2.2), Cm(2.6), Cm(1.6), Cm(2.4), Cm(2.0), Cm(2.6), Cm(3.2))
_ROW_HEIGHTS = {4: Cm(2.5), 5: Cm(7), 6: Cm(2.2), 7: Cm(2.2), 8: Cm(2.2), 9: Cm(2.2)}


def _candidate_form(doc, cand: dict, photo: bytes | None) -> None:
    title = doc.add_paragraph()
    title.alignment = WD_ALIGN_PARAGRAPH.CENTER
    run = title.add_run(FORM_TITLE)
    run.bold, run.font.size = True, Pt(16)
    doc.add_paragraph(f"{FORM_CATEGORY}　　推荐单位：{cand['county']}")
    table = doc.add_table(rows=10, cols=7)
    table.style = "Table Grid"
    table.alignment = WD_TABLE_ALIGNMENT.CENTER
    opinions = cand.get("opinions") or {}
    for row, col, key, (first, last) in FORM_LAYOUT:
        value_cell = table.cell(row, first)
        if last > first:
            value_cell = value_cell.merge(table.cell(row, last))
        table.cell(row, col).text = FIELD_LABELS[key]
        table.cell(row, col).paragraphs[0].runs[0].bold = True
        value = opinions.get(key, "") if key in OPINION_KEYS else cand.get(key, "")
        _write(value_cell, value or "")
    _fill_photo(table.cell(0, 6).merge(table.cell(2, 6)), photo, cand.get("photo"))
    for i, row in enumerate(table.rows):
        for width, cell in zip(_COL_WIDTHS, row.cells):
            cell.width = width
        if i in _ROW_HEIGHTS:   # room like the paper form's, for the panel's notes
            row.height, row.height_rule = _ROW_HEIGHTS[i], WD_ROW_HEIGHT_RULE.AT_LEAST
    report = cand.get("report")
    if report:
        doc.add_paragraph(f"调研报告：《{report.get('title', '')}》，{report.get('chars', '')}字。")


def _write(cell, text: str) -> None:
    lines = str(text).split("\n")
    cell.text = lines[0]
    for line in lines[1:]:
        cell.add_paragraph(line)


def _fill_photo(cell, photo: bytes | None, has_photo: bool) -> None:
    paragraph = cell.paragraphs[0]
    paragraph.alignment = WD_ALIGN_PARAGRAPH.CENTER
    if photo:
        try:
            paragraph.add_run().add_picture(io.BytesIO(photo), width=Cm(2.5))
            return
        except Exception:  # noqa: BLE001 — an image python-docx cannot place: say so instead
            pass
    paragraph.text = "（照片见原件）" if has_photo else FIELD_LABELS["photo"]


# ------------------------------------------------------------------ dispatch

BINARY_FORMATS = ("xlsx", "docx")


def export_bytes(fmt: str, store, settings: Settings) -> bytes:
    """The whole roster in `fmt` (json, csv, xlsx or docx), as the file's bytes."""
    if fmt == "json":
        return (json.dumps(export_roster(store), ensure_ascii=False, indent=2) + "\n").encode("utf-8")
    if fmt == "docx":
        return review_pack_docx(store.candidates.all(), settings, store.files)
    # The sheets show each candidate's number of versions, its latest one's problems and time:
    # its first and latest version (candidate_ends) are enough, not its whole history.
    candidates = store.candidates.all_with_ends() if store.mirrored else store.candidates.all()
    if fmt == "csv":
        return roster_csv(candidates, settings)
    if fmt == "xlsx":   # the only one with a sheet of the emails: the others never read them
        return roster_xlsx(candidates, store.submissions.all(), settings)
    raise ValueError(f"unknown export format {fmt!r}")
