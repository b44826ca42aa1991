"""The form as the bureau's notice prints it — two tables on two pages — as a .docx, for the
scan corpus. (pipeline/samples.py builds the one-table layout the older tests use.)

Table 1 (page 1): 姓名 性别 出生年月 | photo; 民族 籍贯 政治面貌; 工作单位及职务; 家庭地址 联系电话;
所获荣誉情况; 主要事迹(600字以内). Table 2 (page 2): 主要事迹 continued, then the four opinion
boxes, their labels broken over lines in the cell, each with "（盖章）" and a blank date.
"""
from __future__ import annotations

from io import BytesIO

from docx import Document
from docx.enum.table import WD_ROW_HEIGHT_RULE
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.shared import Cm, Pt

from pipeline import samples

OPINION_LABELS = {
    "recommender": "推荐\n单位\n意见",
    "discipline": "纪检监察\n部门\n意见",
    "member_unit": "成员\n单位\n意见",
    "approval": "审批\n意见",
}


def build(fields: dict) -> bytes:
    """`fields` as samples.SAMPLE_CANDIDATE; deeds are split between the two pages."""
    values = {**samples.SAMPLE_CANDIDATE, **fields}
    doc = Document()
    for section in doc.sections:
        section.page_width, section.page_height = Cm(21), Cm(29.7)   # A4
        section.top_margin = section.bottom_margin = Cm(2)
        section.left_margin = section.right_margin = Cm(2)
    _para(doc, samples.FORM_TITLE, bold=True, size=16, center=True)
    _para(doc, samples.FORM_CATEGORY)
    _table_one(doc, values)
    doc.add_page_break()
    _table_two(doc, values)
    out = BytesIO()
    doc.save(out)
    return out.getvalue()


def _table_one(doc, v: dict) -> None:
    t = doc.add_table(6, 7)
    t.style = "Table Grid"
    pairs = [(0, 0, "姓  名", v["name"]), (0, 2, "性  别", v["sex"]), (0, 4, "出生年月", v["birth"]),
             (1, 0, "民  族", v["ethnicity"]), (1, 2, "籍  贯", v["native_place"]),
             (1, 4, "政治面貌", v["political_status"])]
    for row, col, label, value in pairs:
        _cell(t.cell(row, col), label)
        _cell(t.cell(row, col + 1), value)
    photo = t.cell(0, 6).merge(t.cell(2, 6))
    photo.paragraphs[0].alignment = WD_ALIGN_PARAGRAPH.CENTER
    photo.paragraphs[0].add_run().add_picture(BytesIO(samples.sample_photo_png()), width=Cm(2.3))
    _cell(t.cell(2, 0), "工作单位\n及职务")
    _cell(t.cell(2, 1).merge(t.cell(2, 5)), v["employer_post"])
    _cell(t.cell(3, 0), "家庭地址")
    _cell(t.cell(3, 1).merge(t.cell(3, 3)), v["home_address"])
    _cell(t.cell(3, 4), "联系电话")
    _cell(t.cell(3, 5).merge(t.cell(3, 6)), v["phone"])
    _cell(t.cell(4, 0), "所获荣誉\n情况")
    _cell(t.cell(4, 1).merge(t.cell(4, 6)), v["honours"])
    first, _, rest = v["deeds"].partition("\n")
    _cell(t.cell(5, 0), "主要事迹\n（600字以内）")
    _cell(t.cell(5, 1).merge(t.cell(5, 6)), first)
    for row in t.rows[:5]:
        _height(row, 1.3)
    _height(t.rows[5], 5)
    v["_deeds_rest"] = rest


def _table_two(doc, v: dict) -> None:
    t = doc.add_table(5, 2)
    t.style = "Table Grid"
    t.autofit = False
    for column, width in zip(t.columns, (Cm(2.6), Cm(14.4))):
        column.width = width
    _cell(t.cell(0, 0), "主要事迹\n（600字以内）")
    _cell(t.cell(0, 1), v.get("_deeds_rest", ""))
    _height(t.rows[0], 3)
    for i, (key, label) in enumerate(OPINION_LABELS.items(), start=1):
        _cell(t.cell(i, 0), label)
        text = v["opinions"].get(key, "")
        cell = t.cell(i, 1)
        _cell(cell, text)
        for line in samples.STAMP_LINES:
            p = cell.add_paragraph(line)
            p.alignment = WD_ALIGN_PARAGRAPH.RIGHT
        _height(t.rows[i], 4.6)
    for row in t.rows:
        row.cells[0].width = Cm(2.6)
        row.cells[1].width = Cm(14.4)


def _cell(cell, text: str) -> None:
    lines = text.split("\n") if text else [""]
    cell.paragraphs[0].text = lines[0]
    for line in lines[1:]:
        cell.add_paragraph(line)
    for p in cell.paragraphs:
        for run in p.runs:
            run.font.size = Pt(12)


def _height(row, cm: float) -> None:
    row.height = Cm(cm)
    row.height_rule = WD_ROW_HEIGHT_RULE.AT_LEAST


def _para(doc, text: str, *, bold: bool = False, size: int | None = None, center: bool = False):
    p = doc.add_paragraph()
    if center:
        p.alignment = WD_ALIGN_PARAGRAPH.CENTER
    run = p.add_run(text)
    run.bold = bold
    if size:
        run.font.size = Pt(size)
