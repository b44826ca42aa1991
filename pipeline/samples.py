"""Real .docx files shaped like the counties' submissions, for `intake demo` and the tests.

build_form_docx lays out 《株洲市“十大能手”评选推荐表》 as the bureau's notice distributes it — two
tables on two pages, 主要事迹 at the end of the first and again at the top of the second — with
values typed the way county clerks type them ("1985.06", "汉", "138 0731 0000"), so parsing has
work to do. The layouts counties re-type it in are variants (one table, paragraphs, several
forms in one file).
"""
from __future__ import annotations

import struct
import zlib
from io import BytesIO

from docx import Document
from docx.enum.text import WD_ALIGN_PARAGRAPH, WD_BREAK
from docx.shared import Cm, Pt

from pipeline.form_layout import FORM_LAYOUT, NOTICE_TABLE_1, NOTICE_TABLE_2

FORM_TITLE = "株洲市“十大能手”评选推荐表"
FORM_CATEGORY = "类别：信息技术能手"
STAMP_LINES = ("（盖章）", "年    月    日")   # printed under every opinion box

SAMPLE_CANDIDATE = {
    "name": "张三",
    "sex": "男",
    "birth": "1985.06",
    "ethnicity": "汉",
    "native_place": "湖南株洲",
    "political_status": "中共党员",
    "employer_post": "株洲市大数据中心 副主任",
    "home_address": "株洲市天元区泰山路88号",
    "phone": "138 0731 0000",
    "honours": "2019年度株洲市优秀共产党员；2020年湖南省信息化建设先进个人",
    "deeds": (
        "该同志长期扎根信息化建设一线，主持建设了株洲市政务云平台和“一网通办”数据共享交换系统，"
        "推动全市32个部门、1200余项政务服务事项实现网上办理，群众办事平均跑动次数由3次降至0.5次。\n"
        "疫情防控期间，带领团队72小时内上线健康码核验系统，累计服务群众超过600万人次；"
        "牵头制定《株洲市政务数据共享管理规范》，所建项目获评湖南省数字政府建设优秀案例。"
    ),
    "opinions": {
        "recommender": "同意推荐。",
        "discipline": "经审核，该同志无违纪违法记录，同意推荐。",
        "member_unit": "同意推荐。",
        "approval": "同意。",
    },
}


def _candidate(**overrides) -> dict:
    return {**SAMPLE_CANDIDATE, **overrides}


# Complete, valid candidates for demos; the first is SAMPLE_CANDIDATE.
SAMPLE_CANDIDATES = (
    SAMPLE_CANDIDATE,
    _candidate(
        name="李四", sex="女性", birth="1990年3月", ethnicity="苗", native_place="湖南湘西",
        political_status="团员", employer_post="醴陵市科技和工业信息化局 信息化科科长",
        home_address="醴陵市瓷城大道16号", phone="139-7330-1111", honours="2021年株洲市青年岗位能手",
        deeds="负责醴陵陶瓷产业互联网平台建设，接入规模以上陶瓷企业86家，"
              "帮助企业线上订单年增长40%，组织开展中小企业数字化转型培训30余场。"),
    _candidate(
        name="王五", birth="1978-11", ethnicity="汉族", native_place="湖南攸县",
        political_status="民盟", employer_post="攸县人民医院 信息科主任",
        home_address="攸县联星街道建设路5号", phone="0731-2462 3333", honours="",
        deeds="主持建设县域医共体信息平台，实现县乡村三级医疗机构检查结果互认、远程会诊全覆盖，"
              "年远程会诊量超过5000例，有效缓解了基层群众看病难问题。"),
    _candidate(
        name="赵六", sex="女", birth="198805", ethnicity="土家", native_place="湖南张家界",
        political_status="群众", employer_post="炎陵县融媒体中心 技术部主任",
        home_address="炎陵县霞阳镇炎帝大道20号", phone="+86 137 3100 2222",
        honours="2020年株洲市三八红旗手",
        deeds="带领团队搭建县级融媒体技术平台，打通广播电视、网站、客户端和新媒体账号，"
              "推动黄桃等特色农产品网上直播销售，年销售额突破一亿元。"),
)

_LABELS = {   # field → (spaced label as printed on the paper form, plain label)
    "name": ("姓  名", "姓名"),
    "sex": ("性  别", "性别"),
    "birth": ("出生年月", "出生年月"),
    "ethnicity": ("民  族", "民族"),
    "native_place": ("籍  贯", "籍贯"),
    "political_status": ("政治面貌", "政治面貌"),
    "employer_post": ("工作单位\n及职务", "工作单位及职务"),
    "home_address": ("家庭地址", "家庭地址"),
    "phone": ("联系电话", "联系电话"),
    "honours": ("所获荣誉\n情况", "所获荣誉情况"),
    "deeds": ("主要事迹\n（600字以内）", "主要事迹（600字以内）"),
    "recommender": ("推荐单位\n意见", "推荐单位意见"),
    "discipline": ("纪检监察\n部门\n意见", "纪检监察部门意见"),
    "member_unit": ("成员\n单位\n意见", "成员单位意见"),
    "approval": ("审批\n意见", "审批意见"),
}
PHOTO_LABEL = "一寸免冠照片"

_OPINION_ROWS_IN_ORDER = ("recommender", "discipline", "member_unit", "approval")
_OPINION_ROWS = set(_OPINION_ROWS_IN_ORDER)


def build_form_docx(fields: dict | None = None, *, photo: bool = True,
                    value_in_label_cell: bool = False, spaced_labels: bool = True,
                    nested: bool = False, layout: str = "notice",
                    deeds: tuple[str, ...] | None = None, deeds_merged_label: bool = False,
                    labels: dict[str, str] | None = None) -> bytes:
    """A filled-in recommendation form as .docx bytes. Keys missing from `fields` (and from
    fields["opinions"]) come from SAMPLE_CANDIDATE.

    `layout`: "notice" (the bureau's two tables on two pages) or "one-table". `deeds`: what
    the clerk typed in each 主要事迹 row, in order — by default all of it in the first (the
    notice's two rows: ("", text) types it in the second, (a, b) runs it on from one to the
    other). `deeds_merged_label` (notice layout): the first table's 主要事迹 label cell merged down over two
    rows (w:vMerge), a part of `deeds` typed beside each. `labels`: another county's wording
    of some labels ({"phone": "手机号码"}). `nested` puts the (first) table
    inside a cell of an outer table, as some counties' templates do."""
    doc = Document()
    _add_form(doc, _merged_values(fields), photo=photo, value_in_label_cell=value_in_label_cell,
              spaced_labels=spaced_labels, nested=nested, layout=layout, deeds=deeds,
              deeds_merged_label=deeds_merged_label, labels=labels or {})
    return _saved(doc)


# build_form_docx's defaults, for build_forms_docx.
_FORM_OPTIONS = dict(photo=True, value_in_label_cell=False, spaced_labels=True, nested=False,
                     layout="notice", deeds=None, deeds_merged_label=False, labels={})


def build_forms_docx(candidates: list[dict], **options) -> bytes:
    """Several candidates' forms in one .docx, a page break between copies of the form."""
    doc = Document()
    for i, fields in enumerate(candidates):
        if i:
            doc.add_paragraph().add_run().add_break(WD_BREAK.PAGE)
        _add_form(doc, _merged_values(fields), **{**_FORM_OPTIONS, **options})
    return _saved(doc)


def build_paragraph_form_docx(fields: dict | None = None, *, photo: bool = True,
                              omit: tuple[str, ...] = ()) -> bytes:
    """The form re-typed without a table: "姓名：张三　性别：男" lines, each long field and each
    opinion a labelled paragraph with the stamp lines under it; the photo under the title.
    `omit`: fields the clerk left out, label and all."""
    values = _merged_values(fields)
    doc = Document()
    _centered(doc.add_paragraph(), FORM_TITLE, bold=True, size=16)
    doc.add_paragraph(FORM_CATEGORY)
    if photo:
        doc.add_picture(BytesIO(sample_photo_png()), width=Cm(2.5))
    line = "　".join
    for keys in (("name", "sex", "birth"), ("ethnicity", "native_place", "political_status")):
        doc.add_paragraph(line(f"{_LABELS[k][1]}：{values[k]}" for k in keys if k not in omit))
    for key in ("employer_post", "home_address", "phone", "honours", "deeds"):
        if key in omit:
            continue
        first, *rest = _value_lines(key, values) or [""]
        doc.add_paragraph(f"{_LABELS[key][1]}：{first}")
        for text in rest:
            doc.add_paragraph(text)
    for key in _OPINION_ROWS_IN_ORDER:
        first, *rest = _value_lines(key, values)
        doc.add_paragraph(f"{_LABELS[key][1]}：{first}")
        _write_paragraphs(doc, rest)
    return _saved(doc)


def _add_form(doc, values: dict, *, photo: bool, value_in_label_cell: bool, spaced_labels: bool,
              nested: bool, layout: str, deeds: tuple[str, ...] | None,
              deeds_merged_label: bool, labels: dict[str, str]) -> None:
    _centered(doc.add_paragraph(), FORM_TITLE, bold=True, size=16)
    doc.add_paragraph(FORM_CATEGORY)
    container = doc
    if nested:
        outer = doc.add_table(rows=1, cols=1)
        outer.style = "Table Grid"
        container = outer.cell(0, 0)
        container.paragraphs[0].text = "附件1"
    one_table = layout == "one-table"
    if one_table and deeds_merged_label:
        raise ValueError("deeds_merged_label needs the notice layout: 主要事迹 ends its table 1")
    grid = FORM_LAYOUT if one_table else NOTICE_TABLE_1
    parts = list(deeds if deeds is not None else (values["deeds"],))
    extra_row = 1 if deeds_merged_label else 0
    table = container.add_table(grid[-1][0] + 1 + extra_row, 7)
    table.style = "Table Grid"
    photo_cell = table.cell(0, 6).merge(table.cell(2, 6))
    fill = dict(value_in_label_cell=value_in_label_cell, spaced_labels=spaced_labels, labels=labels)
    for row, col, key, (first, last) in grid:
        text = parts.pop(0) if key == "deeds" and parts else None
        _fill_field(table, row, col, key, (first, last), values, text, **fill)
    if deeds_merged_label:
        deeds_row = next(row for row, _, key, _ in grid if key == "deeds")
        table.cell(deeds_row, 0).merge(table.cell(deeds_row + 1, 0))   # keeps the label
        value = table.cell(deeds_row + 1, 1).merge(table.cell(deeds_row + 1, 6))
        _write_lines(value, parts.pop(0).split("\n") if parts else [])
    _fill_photo(photo_cell, photo)
    if one_table:
        return
    doc.add_paragraph().add_run().add_break(WD_BREAK.PAGE)
    second = doc.add_table(NOTICE_TABLE_2[-1][0] + 1, 2)
    second.style = "Table Grid"
    for row, col, key, span in NOTICE_TABLE_2:
        text = (parts.pop(0) if parts else "") if key == "deeds" else None
        _fill_field(second, row, col, key, span, values, text, **fill)


def _fill_field(table, row: int, col: int, key: str, span: tuple[int, int], values: dict,
                text: str | None, *, value_in_label_cell: bool, spaced_labels: bool,
                labels: dict[str, str]) -> None:
    """One label and its value; `text` (for 主要事迹) replaces the value when given."""
    first, last = span
    value_cell = table.cell(row, first)
    if last > first:
        value_cell = value_cell.merge(table.cell(row, last))
    lines = _value_lines(key, values) if text is None else (text.split("\n") if text else [])
    label = labels.get(key) or _label(key, spaced_labels)
    _fill_pair(table.cell(row, col), value_cell, label, lines, value_in_label_cell)


def _label(key: str, spaced: bool) -> str:
    return _LABELS[key][0 if spaced else 1]


def build_report_docx(title: str, body: str) -> bytes:
    """A research report: a heading, then one paragraph per line of `body`."""
    doc = Document()
    doc.add_heading(title, level=1)
    for line in body.split("\n"):
        if line.strip():
            doc.add_paragraph(line.strip())
    return _saved(doc)


def _merged_values(fields: dict | None) -> dict:
    fields = fields or {}
    values = {**SAMPLE_CANDIDATE, **fields}
    values["opinions"] = {**SAMPLE_CANDIDATE["opinions"], **fields.get("opinions", {})}
    return values


def _value_lines(key: str, values: dict) -> list[str]:
    """What the clerk typed for `key`, one entry per paragraph; opinion boxes keep the printed
    stamp and date lines under whatever was typed."""
    if key in _OPINION_ROWS:
        text = values["opinions"].get(key, "")
        return [*(text.split("\n") if text else []), *STAMP_LINES]
    text = values.get(key, "")
    return text.split("\n") if text else []


def _fill_pair(label_cell, value_cell, label: str, lines: list[str], in_label_cell: bool):
    if in_label_cell:
        # The clerk typed "姓名：张三" into the label cell; the opinion's stamp lines go too.
        label = label.replace("\n", "")
        _write_lines(label_cell, [f"{label}：{lines[0] if lines else ''}", *lines[1:]])
        return
    _write_lines(label_cell, label.split("\n"))
    _write_lines(value_cell, lines)


def _write_paragraphs(doc, lines: list[str]):
    for line in lines:
        paragraph = doc.add_paragraph(line)
        if line in STAMP_LINES:
            paragraph.alignment = WD_ALIGN_PARAGRAPH.RIGHT


def _write_lines(cell, lines: list[str]):
    """One paragraph per line; stamp and date lines sit on the right, as on the paper form."""
    cell.paragraphs[0].text = lines[0] if lines else ""
    for line in lines[1:]:
        paragraph = cell.add_paragraph(line)
        if line in STAMP_LINES:
            paragraph.alignment = WD_ALIGN_PARAGRAPH.RIGHT


def _fill_photo(cell, photo: bool):
    paragraph = cell.paragraphs[0]
    if not photo:
        _centered(paragraph, PHOTO_LABEL)
        return
    paragraph.alignment = WD_ALIGN_PARAGRAPH.CENTER
    paragraph.add_run().add_picture(BytesIO(sample_photo_png()), width=Cm(2.5))


def _centered(paragraph, text: str, *, bold: bool = False, size: int | None = None):
    paragraph.alignment = WD_ALIGN_PARAGRAPH.CENTER
    run = paragraph.add_run(text)
    run.bold = bold
    if size:
        run.font.size = Pt(size)


def _saved(doc) -> bytes:
    out = BytesIO()
    doc.save(out)
    return out.getvalue()


def sample_photo_png(width: int = 25, height: int = 35) -> bytes:
    """A tiny real PNG: a grey head and shoulders on the blue of a Chinese ID photo.
    Written by hand so the demo needs no imaging library."""
    rows = []
    for y in range(height):
        row = bytearray([0])   # filter type 0 for every scanline
        for x in range(width):
            dx, dy = (x - width / 2) / (width * 0.22), (y - height * 0.38) / (height * 0.2)
            head = dx * dx + dy * dy <= 1
            shoulders = y > height * 0.68 and abs(x - width / 2) < width * 0.4
            row += bytes((90, 90, 90) if head or shoulders else (67, 142, 219))
        rows.append(bytes(row))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)   # 8-bit RGB
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
            + _png_chunk(b"IDAT", zlib.compress(b"".join(rows))) + _png_chunk(b"IEND", b""))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
