"""The bureau's form however a county fills or re-makes it (tests/corpus/files.py layouts()):
every field of every candidate read exactly, deeds as one whole text; never taken for a report."""
import io
import zipfile

import pytest
from docx import Document as WordDocument

from parsers import convert
from parsers.attachments import read_attachments
from parsers.docx_form import parse_forms
from parsers.errors import NotAForm
from parsers.form_fields import Block, forms_from_blocks
from parsers.labels import IGNORED, LABELS
from parsers.records import Attachment
from parsers.sniff import sniff
from pipeline import rules, samples
from pipeline.settings import load_settings
from tests.configs import DEFAULT_CONFIG
from tests.corpus import files


def read(name: str, data: bytes):
    return read_attachments([Attachment(name, "application/octet-stream", data)])


def read_one(name: str, data: bytes):
    [doc] = read(name, data)
    return doc


LAYOUTS = ("deeds-in-table-1", "deeds-in-table-2", "deeds-split", "deeds-split-650",
           "vmerge-label", "paragraphs", "label-variants", "one-table", "three-forms",
           "lossy-doc", "pdf", "xlsx", "xls")


def test_every_layout_is_in_the_corpus():
    assert set(files.layouts()) == set(LAYOUTS)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_field_of_every_candidate_is_read_exactly(layout):
    name, data, typed, deeds = files.layouts()[layout]
    doc = read_one(name, data)
    assert doc.kind == "form", doc.reason
    assert [form.fields() for form in doc.forms] == [files.expected_fields(t) for t in typed]
    assert [form.deeds for form in doc.forms] == list(deeds)
    assert doc.form is doc.forms[0]


# ---- the files are what their names say ------------------------------------------------------

def _tables(docx: bytes) -> int:
    return len(WordDocument(io.BytesIO(docx)).tables)


def test_the_default_form_is_the_notices_two_tables_on_two_pages():
    data = samples.build_form_docx()
    doc = WordDocument(io.BytesIO(data))
    first, second = doc.tables
    assert first.cell(5, 0).text == "主要事迹\n（600字以内）"
    assert [second.cell(r, 0).text for r in range(5)] == [
        "主要事迹\n（600字以内）", "推荐单位\n意见", "纪检监察\n部门\n意见", "成员\n单位\n意见", "审批\n意见"]
    assert b'w:type="page"' in zipfile.ZipFile(io.BytesIO(data)).read("word/document.xml")
    assert _tables(samples.build_form_docx(layout="one-table")) == 1


def test_split_deeds_stand_in_both_tables():
    _, data, _, _ = files.layouts()["deeds-split"]
    first, second = WordDocument(io.BytesIO(data)).tables
    assert first.cell(5, 1).text == files.SPLIT_OK[0] and second.cell(0, 1).text == files.SPLIT_OK[1]


def test_the_vmerge_form_has_its_deeds_label_merged_down_over_two_rows():
    _, data, _, _ = files.layouts()["vmerge-label"]
    xml = zipfile.ZipFile(io.BytesIO(data)).read("word/document.xml").decode()
    assert '<w:vMerge w:val="restart"/>' in xml and "<w:vMerge/>" in xml
    first = WordDocument(io.BytesIO(data)).tables[0]
    assert first.cell(5, 1).text == files.SPLIT_OK[0] and first.cell(6, 1).text == files.SPLIT_OK[1]


def test_the_lossy_doc_lost_its_second_table_in_conversion():
    _, data, _, _ = files.layouts()["lossy-doc"]
    assert sniff(data) == "ole"
    [docx] = convert.to_docx([(data, "doc")])
    assert _tables(docx) == 1   # the opinions ran together as paragraphs
    assert "日纪检监察\n部门\n意见经审核" in "\n".join(p.text for p in WordDocument(io.BytesIO(docx)).paragraphs)


def test_the_paragraph_form_has_no_table_and_the_three_forms_have_six():
    assert _tables(files.layouts()["paragraphs"][1]) == 0
    assert _tables(files.layouts()["three-forms"][1]) == 6


def test_spreadsheets_are_sniffed_by_content():
    assert sniff(files.layouts()["xlsx"][1]) == "xlsx"
    assert sniff(files.layouts()["xls"][1]) == "xls"
    assert sniff(files.converted("doc")["张三"]) == "ole"


def test_the_pdf_export_keeps_the_two_pages():
    import pdfplumber
    with pdfplumber.open(io.BytesIO(files.layouts()["pdf"][1])) as pdf:
        assert len(pdf.pages) == 2


# ---- what the county is told -----------------------------------------------------------------

CAMPAIGN = load_settings(DEFAULT_CONFIG).campaign


def problems(layout: str) -> list[list[str]]:
    name, data, _, _ = files.layouts()[layout]
    doc = read_one(name, data)
    return [[p.code for p in rules.validate_form(form, doc.file, CAMPAIGN)] for form in doc.forms]


def test_deeds_split_to_650_characters_are_too_long_as_a_whole():
    name, data, _, _ = files.layouts()["deeds-split-650"]
    [form] = read_one(name, data).forms
    [problem] = rules.validate_form(form, name, CAMPAIGN)
    assert problem.code == "deeds-too-long" and problem.detail["count"] == 650
    assert problems("deeds-split") == [[]]


@pytest.mark.parametrize("layout", [l for l in LAYOUTS if l != "deeds-split-650"])
def test_every_other_layout_is_complete(layout):
    assert all(found == [] for found in problems(layout))


def test_an_incomplete_paragraph_form_names_the_missing_fields_and_the_file():
    data = samples.build_paragraph_form_docx(omit=("home_address", "phone"))
    doc = read_one("芦淞区推荐表.docx", data)
    assert doc.kind == "form"
    found = rules.validate_form(doc.form, doc.file, CAMPAIGN)
    assert [(p.code, p.file) for p in found] == [
        ("missing-field:home_address", "芦淞区推荐表.docx"), ("missing-field:phone", "芦淞区推荐表.docx")]


# ---- never a report --------------------------------------------------------------------------

def _paragraphs(*lines: str) -> bytes:
    doc = WordDocument()
    for line in lines:
        doc.add_paragraph(line)
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


@pytest.mark.parametrize("title", ["株洲市“十大能手”评选推荐表", "推荐表", "附件1：株洲市“十大能手”评选推荐表"])
def test_the_title_and_three_labels_make_a_form_however_little_else_survives(title):
    doc = read_one("材料.docx", _paragraphs(title, "姓名：张三", "性别：男", "民族：汉"))
    assert doc.kind == "form" and doc.report is None
    assert (doc.form.name, doc.form.sex, doc.form.ethnicity, doc.form.deeds) == ("张三", "男", "汉族", "")


def test_a_report_mentioning_a_few_labels_in_its_text_stays_a_report():
    data = samples.build_report_docx("关于株洲市政务数据共享的调研报告",
                                     "姓名：张三\n工作单位：株洲市大数据中心\n联系电话：13807310000\n一、基本情况\n全市已建成政务云平台。")
    assert read_one("调研报告.docx", data).kind == "report"


# ---- labels ----------------------------------------------------------------------------------

VARIANTS = [(key, label) for key, labels in LABELS.items() if key not in IGNORED for label in labels]


@pytest.mark.parametrize("key, label", VARIANTS, ids=[f"{k}-{l}" for k, l in VARIANTS])
def test_each_label_variant_is_read(key, label):
    [form] = parse_forms(samples.build_form_docx(labels={key: label}))
    assert form.fields() == files.expected("张三")


@pytest.mark.parametrize("key, label", VARIANTS, ids=[f"{k}-{l}" for k, l in VARIANTS])
def test_each_label_variant_is_read_with_its_value_in_the_label_cell(key, label):
    [form] = parse_forms(samples.build_form_docx(labels={key: label}, value_in_label_cell=True))
    assert form.fields() == files.expected("张三")


def _blocks(*cells: str) -> list[Block]:
    return [Block(text, True) for text in cells]


def test_a_label_never_swallows_the_value_in_the_next_cell():
    [(form, _)] = forms_from_blocks(_blocks("姓名：张三", "性别 男", "出生年月", "1985.06", "民族", "汉",
                                            "手机号码", "138 0731 0000"))
    assert (form.name, form.sex, form.birth, form.ethnicity, form.phone) == (
        "张三", "男", "1985-06", "汉族", "13807310000")


def test_a_value_that_starts_like_a_label_is_a_value():
    [(form, _)] = forms_from_blocks(_blocks("姓名", "张三", "性别", "男", "民族", "汉",
                                            "所获荣誉情况", "民族团结进步模范个人"))
    assert form.honours == "民族团结进步模范个人"


def test_labels_on_one_line_of_a_paragraph_form_are_separated():
    [(form, _)] = forms_from_blocks([Block("推荐表"), Block("姓名：张三　性别：男　出生日期：1985.06"),
                                     Block("联系电话：138 0731 0000")])
    assert (form.name, form.sex, form.birth, form.phone) == ("张三", "男", "1985-06", "13807310000")


def test_labels_in_running_text_alone_do_not_make_a_form():
    with pytest.raises(NotAForm):
        forms_from_blocks([Block("姓名：张三"), Block("性别：男"), Block("民族：汉")])


def test_three_forms_keep_each_photo_with_its_own_candidate():
    three = [samples.SAMPLE_CANDIDATES[0], samples.SAMPLE_CANDIDATES[1], samples.SAMPLE_CANDIDATES[2]]
    data = samples.build_forms_docx(three)
    assert [form.photo for form in parse_forms(data)] == [True, True, True]
    doc = WordDocument(io.BytesIO(data))
    for table in doc.tables[2:4]:   # the second candidate's form: no picture
        for row in table.rows:
            for cell in row.cells:
                for paragraph in cell.paragraphs:
                    for run in paragraph.runs:
                        for drawing in run._r.xpath(".//w:drawing"):
                            drawing.getparent().remove(drawing)
    out = io.BytesIO()
    doc.save(out)
    assert [form.photo for form in parse_forms(out.getvalue())] == [True, False, True]


# ---- spreadsheets that are not forms, or hostile ---------------------------------------------

def test_a_spreadsheet_that_is_not_a_form_is_passed_over():
    from openpyxl import Workbook
    book = Workbook()
    book.active.append(["项目", "金额"])
    book.active.append(["服务器", 12000])
    out = io.BytesIO()
    book.save(out)
    assert read_one("经费表.xlsx", out.getvalue()).kind == "other"


def test_a_spreadsheet_bomb_is_refused_before_it_is_expanded():
    # Every Office file's XML is measured from the zip's directory before any parsing
    # (parsers/limits.py), spreadsheets included.
    from parsers.limits import XML_TOO_BIG as TOO_BIG
    src = zipfile.ZipFile(io.BytesIO(files.layouts()["xlsx"][1]))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as bomb:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "xl/worksheets/sheet1.xml":
                data = data.replace(b"<sheetData>", b"<sheetData>" + b" " * (120 << 20), 1)
            bomb.writestr(item, data)
    doc = read_one("推荐表.xlsx", out.getvalue())
    assert (doc.kind, doc.reason) == ("unreadable", TOO_BIG)


@pytest.mark.parametrize("layout", ["deeds-in-table-2", "deeds-split", "three-forms", "paragraphs-with-header"])
def test_pdf_exports_of_the_layouts_are_read_exactly(layout):
    name, data, typed, deeds = files.pdf_layouts()[layout]
    assert data.startswith(b"%PDF-")
    doc = read_one(name, data)
    assert doc.kind == "form" and doc.format == "pdf"
    assert [form.fields() for form in doc.forms] == [files.expected_fields(t) for t in typed]
    assert [form.deeds for form in doc.forms] == list(deeds)
