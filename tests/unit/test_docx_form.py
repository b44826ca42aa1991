"""Reading the recommendation forms counties send as .docx, built as real Word files."""
import zipfile
from io import BytesIO

import pytest
from docx import Document
from docx.oxml import parse_xml
from docx.oxml.ns import nsdecls, qn

from parsers.docx_form import CORRUPT, parse_form
from parsers.errors import NotAForm, UnreadableFile
from pipeline.samples import (
    SAMPLE_CANDIDATE, SAMPLE_CANDIDATES, build_form_docx, build_report_docx, sample_photo_png,
)

EXPECTED_SAMPLE = {
    "name": "张三",
    "sex": "男",
    "birth": "1985-06",
    "ethnicity": "汉族",
    "native_place": "湖南株洲",
    "political_status": "中共党员",
    "employer_post": "株洲市大数据中心 副主任",
    "home_address": "株洲市天元区泰山路88号",
    "phone": "13807310000",
    "honours": "2019年度株洲市优秀共产党员；2020年湖南省信息化建设先进个人",
    "deeds": SAMPLE_CANDIDATE["deeds"],
    "opinions": {
        "recommender": "同意推荐。",
        "discipline": "经审核，该同志无违纪违法记录，同意推荐。",
        "member_unit": "同意推荐。",
        "approval": "同意。",
    },
    "photo": True,
}


# ---- helpers that edit a generated form the way Word or WPS would have written it ----------

def edited(data: bytes, edit) -> bytes:
    doc = Document(BytesIO(data))
    edit(doc)
    out = BytesIO()
    doc.save(out)
    return out.getvalue()


def cell_holding(doc, text: str):
    """The w:tc of the form whose whole text is `text`."""
    for tc in doc.element.body.iter(qn("w:tc")):
        if "".join(t.text for t in tc.iter(qn("w:t"))) == text:
            return tc
    raise AssertionError(f"no cell holds {text!r}")


def replace_paragraphs(tc, xml: str):
    for p in tc.findall(qn("w:p")):
        tc.remove(p)
    tc.append(parse_xml(xml))


# ---- the sample form, as the county clerk fills it in --------------------------------------

def test_every_field_of_the_sample_form_is_read_and_normalised():
    record = parse_form(build_form_docx())
    assert record.fields() == EXPECTED_SAMPLE
    assert record.photo_image == sample_photo_png()
    assert record.photo_image.startswith(b"\x89PNG\r\n\x1a\n")
    assert record.photo_ext == "png"


def test_deeds_keep_their_paragraphs():
    record = parse_form(build_form_docx())
    assert record.deeds.count("\n") == 1
    assert record.deeds.startswith("该同志长期扎根信息化建设一线")


@pytest.mark.parametrize("spaced_labels", [True, False])
@pytest.mark.parametrize("value_in_label_cell", [True, False])
def test_labels_are_found_however_they_are_spaced_or_filled(spaced_labels, value_in_label_cell):
    data = build_form_docx(spaced_labels=spaced_labels, value_in_label_cell=value_in_label_cell)
    assert parse_form(data).fields() == EXPECTED_SAMPLE


def test_form_without_photo_says_so():
    record = parse_form(build_form_docx(photo=False))
    assert record.photo is False
    assert record.photo_image is None and record.photo_ext == ""
    assert record.name == "张三"


@pytest.mark.parametrize("value_in_label_cell", [True, False])
def test_opinion_box_with_only_the_printed_stamp_and_date_is_empty(value_in_label_cell):
    data = build_form_docx({"opinions": {"discipline": ""}},
                           value_in_label_cell=value_in_label_cell)
    opinions = parse_form(data).opinions
    assert opinions["discipline"] == ""
    assert opinions["recommender"] == "同意推荐。"


def test_a_filled_in_date_stays_part_of_the_opinion():
    data = build_form_docx({"opinions": {"approval": "同意。\n2022年7月20日"}})
    assert parse_form(data).opinions["approval"] == "同意。\n2022年7月20日"


def test_form_table_nested_inside_another_table():
    assert parse_form(build_form_docx(nested=True)).fields() == EXPECTED_SAMPLE


def test_blank_form_is_still_a_form_with_empty_fields():
    blank = {key: "" for key in SAMPLE_CANDIDATE if key != "opinions"}
    blank["opinions"] = {key: "" for key in SAMPLE_CANDIDATE["opinions"]}
    record = parse_form(build_form_docx(blank, photo=False))
    assert record.fields() == {**blank, "photo": False}


@pytest.mark.parametrize("candidate, expected", [
    (SAMPLE_CANDIDATES[1], {"name": "李四", "sex": "女", "birth": "1990-03", "ethnicity": "苗族",
                            "political_status": "共青团员", "phone": "13973301111"}),
    (SAMPLE_CANDIDATES[2], {"name": "王五", "birth": "1978-11", "political_status": "民盟盟员",
                            "phone": "073124623333", "honours": ""}),
    (SAMPLE_CANDIDATES[3], {"name": "赵六", "birth": "1988-05", "ethnicity": "土家族",
                            "political_status": "群众", "phone": "13731002222"}),
])
def test_demo_candidates_come_out_normalised(candidate, expected):
    fields = parse_form(build_form_docx(candidate)).fields()
    assert {key: fields[key] for key in expected} == expected


def test_demo_candidates_have_different_names():
    names = [c["name"] for c in SAMPLE_CANDIDATES]
    assert len(set(names)) == len(names) >= 4


# ---- what Word and WPS leave inside cells --------------------------------------------------

def test_text_in_a_content_control_is_read():
    def wrap_name_in_content_control(doc):
        tc = cell_holding(doc, "张三")
        replace_paragraphs(tc, f'<w:sdt {nsdecls("w")}><w:sdtPr/><w:sdtContent>'
                               '<w:p><w:r><w:t>张三</w:t></w:r></w:p></w:sdtContent></w:sdt>')
    assert parse_form(edited(build_form_docx(), wrap_name_in_content_control)).name == "张三"


def test_a_content_control_still_showing_its_placeholder_is_empty():
    def unfilled_native_place(doc):
        tc = cell_holding(doc, "湖南株洲")
        replace_paragraphs(tc, f'<w:sdt {nsdecls("w")}><w:sdtPr><w:showingPlcHdr/></w:sdtPr>'
                               '<w:sdtContent><w:p><w:r><w:t>单击或点击此处输入文字。</w:t></w:r></w:p>'
                               '</w:sdtContent></w:sdt>')
    assert parse_form(edited(build_form_docx(), unfilled_native_place)).native_place == ""


def test_tracked_changes_read_as_accepted():
    def corrected_phone(doc):
        tc = cell_holding(doc, "138 0731 0000")
        replace_paragraphs(tc, f'<w:p {nsdecls("w")}><w:r><w:t>138</w:t></w:r>'
                               '<w:del w:id="1" w:author="a"><w:r><w:delText>9999</w:delText></w:r>'
                               '<w:r><w:t>8888</w:t></w:r></w:del>'
                               '<w:ins w:id="2" w:author="a"><w:r><w:t>0731</w:t></w:r></w:ins>'
                               '<w:r><w:t>0000</w:t></w:r></w:p>')
    assert parse_form(edited(build_form_docx(), corrected_phone)).phone == "13807310000"


def test_line_breaks_inside_a_paragraph_separate_lines():
    def soft_breaks(doc):
        tc = cell_holding(doc, "同意推荐。（盖章）年    月    日")   # the recommender box
        replace_paragraphs(tc, f'<w:p {nsdecls("w")}><w:r><w:t>同意推荐。</w:t><w:br/>'
                               '<w:t>（盖章）</w:t><w:br/><w:t>年  月  日</w:t></w:r></w:p>')
    assert parse_form(edited(build_form_docx(), soft_breaks)).opinions["recommender"] == "同意推荐。"


def test_legacy_vml_picture_counts_as_a_photo():
    def as_vml(doc):
        drawing = next(doc.element.body.iter(qn("w:drawing")))
        rel_id = next(drawing.iter(qn("a:blip"))).get(qn("r:embed"))
        pict = parse_xml(f'<w:pict {nsdecls("w", "r")} xmlns:v="urn:schemas-microsoft-com:vml">'
                         f'<v:shape style="width:70pt;height:98pt"><v:imagedata r:id="{rel_id}"/>'
                         '</v:shape></w:pict>')
        drawing.addprevious(pict)
        drawing.getparent().remove(drawing)
    record = parse_form(edited(build_form_docx(), as_vml))
    assert record.photo is True
    assert record.photo_image == sample_photo_png()


# ---- files that are not forms, or cannot be opened -----------------------------------------

@pytest.mark.parametrize("data", [
    b"",
    b"\x00" * 10,
    bytes(range(256)) * 40,
    build_form_docx()[:2000],                 # truncated in transit
    b"PK\x03\x04" + b"\x00" * 100,            # a zip header and nothing else
], ids=["empty", "zeros", "random", "truncated", "bare-zip-header"])
def test_damaged_files_are_unreadable(data):
    with pytest.raises(UnreadableFile) as caught:
        parse_form(data)
    assert caught.value.reason == CORRUPT


def test_a_zip_that_is_not_a_word_document_is_unreadable():
    out = BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("推荐表.txt", "姓名：张三")
    with pytest.raises(UnreadableFile):
        parse_form(out.getvalue())


def test_a_word_file_whose_document_part_has_no_body_is_unreadable():
    src = zipfile.ZipFile(BytesIO(build_form_docx()))
    out = BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "word/document.xml":
                data = f'<w:document {nsdecls("w")}/>'.encode()
            z.writestr(item, data)
    with pytest.raises(UnreadableFile):
        parse_form(out.getvalue())


def test_encrypted_or_legacy_doc_file_is_unreadable_and_says_why():
    ole2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504
    with pytest.raises(UnreadableFile) as caught:
        parse_form(ole2)
    assert "密码" in caught.value.reason and ".doc" in caught.value.reason


def test_a_research_report_is_not_a_form():
    report = build_report_docx("关于株洲市政务数据共享的调研报告",
                               "一、基本情况\n全市已建成政务云平台。\n二、存在问题\n数据标准不统一。")
    with pytest.raises(NotAForm):
        parse_form(report)


def test_a_document_mentioning_a_couple_of_labels_is_not_a_form():
    doc = Document()
    table = doc.add_table(rows=1, cols=4)
    for cell, text in zip(table.rows[0].cells, ("姓名", "张三", "联系电话", "13807310000")):
        cell.text = text
    out = BytesIO()
    doc.save(out)
    with pytest.raises(NotAForm):
        parse_form(out.getvalue())
