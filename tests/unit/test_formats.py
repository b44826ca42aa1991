"""Every format counties send, made by the tools that make them (tests/corpus), read into the
same fields as the .docx original — or refused with the reason the county will be told."""
import io
import zipfile

import pytest
from docx import Document as WordDocument
from docx.oxml import parse_xml
from docx.oxml.ns import qn

from parsers import archives, convert, pdf_form, sandbox
from parsers.attachments import TOO_DEEP, read_attachments
from parsers.records import Attachment
from pipeline import samples
from tests.corpus import build, files


def read(*named: tuple[str, bytes]):
    return read_attachments([Attachment(name, "application/octet-stream", data) for name, data in named])


def read_one(name: str, data: bytes):
    [doc] = read((name, data))
    return doc


# ---- forms in every format ------------------------------------------------------------------

FORMATS = ("doc", "rtf", "odt", "pdf")


def test_the_corpus_is_what_its_names_say():
    assert all(d.startswith(b"\xd0\xcf\x11\xe0") for d in files.converted("doc").values())
    assert all(d.startswith(b"{\\rtf") for d in files.converted("rtf").values())
    assert all(d.startswith(b"%PDF-") for d in files.converted("pdf").values())
    assert all(zipfile.ZipFile(io.BytesIO(d)).read("mimetype") == b"application/vnd.oasis.opendocument.text"
               for d in files.converted("odt").values())


def test_every_field_of_every_form_in_every_format_is_read_exactly(monkeypatch):
    calls = []
    real_run = convert._run
    monkeypatch.setattr(convert, "_run", lambda *a: calls.append(a) or real_run(*a))
    named = [(f"{stem}推荐表.{fmt}", files.converted(fmt)[stem])
             for fmt in FORMATS for stem in [*files.CANDIDATES, "无照片"]]
    named += [(f"{stem}推荐表.wps", files.converted("doc")[stem]) for stem in files.CANDIDATES]
    docs = read(*named)
    assert len(calls) == 1, "all legacy files of one email go through one LibreOffice call"
    assert [d.kind for d in docs] == ["form"] * len(named)
    for (name, _), doc in zip(named, docs):
        stem = name.split("推荐表")[0]
        assert doc.file == name
        assert doc.form.fields() == files.expected(stem), name
    assert files.expected("张三")["phone"] == "13807310000"
    assert files.expected("无照片")["photo"] is False and files.expected("李四")["photo"] is True


def test_a_file_is_read_by_what_it_is_not_by_its_name():
    doc_as_docx = read_one("张三推荐表.docx", files.converted("doc")["张三"])
    pdf_as_doc = read_one("张三推荐表.doc", files.converted("pdf")["张三"])
    docx_as_pdf = read_one("张三推荐表.pdf", files.docx_forms()["张三.docx"])
    for doc in (doc_as_docx, pdf_as_doc, docx_as_pdf):
        assert doc.kind == "form" and doc.form.fields() == files.expected("张三")
    assert (doc_as_docx.format, pdf_as_doc.format, docx_as_pdf.format) == ("docx", "pdf", "docx")


def test_a_floating_photo_counts_like_an_inline_one():
    doc = WordDocument(io.BytesIO(samples.build_form_docx()))
    inline = next(doc.element.body.iter(qn("wp:inline")))
    anchor = parse_xml(inline.xml.replace("<wp:inline", "<wp:anchor").replace("</wp:inline>", "</wp:anchor>"))
    inline.getparent().replace(inline, anchor)
    out = io.BytesIO()
    doc.save(out)
    assert b"wp:anchor" in zipfile.ZipFile(out).read("word/document.xml")
    form = read_one("张三推荐表.docx", out.getvalue()).form
    assert form.photo and form.photo_image == samples.sample_photo_png()


def test_a_whole_cell_wrapped_in_a_content_control_is_read():
    doc = WordDocument(io.BytesIO(samples.build_form_docx()))
    tc = next(tc for tc in doc.element.body.iter(qn("w:tc"))
              if "".join(t.text for t in tc.iter(qn("w:t"))) == "湖南株洲")
    sdt = parse_xml('<w:sdt xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
                    '<w:sdtPr/><w:sdtContent/></w:sdt>')
    tc.addprevious(sdt)
    sdt[1].append(tc)
    out = io.BytesIO()
    doc.save(out)
    assert read_one("张三推荐表.docx", out.getvalue()).form.native_place == "湖南株洲"


# ---- PDF --------------------------------------------------------------------------------------

def test_an_encrypted_pdf_is_reported_and_a_permissions_only_one_is_read():
    pdf = files.converted("pdf")["张三"]
    locked = read_one("张三推荐表.pdf", build.qpdf_encrypt(pdf, "county-secret"))
    assert (locked.kind, locked.reason) == ("unreadable", pdf_form.ENCRYPTED)
    owner_only = read_one("张三推荐表.pdf", build.qpdf_encrypt(pdf, ""))
    assert owner_only.kind == "form" and owner_only.form.fields() == files.expected("张三")


def test_a_pdf_whose_glyphs_map_to_no_text_is_unreadable_not_garbage_values():
    garbled = build.pdf_without_text_encoding(files.converted("pdf")["张三"])
    doc = read_one("张三推荐表.pdf", garbled)
    assert (doc.kind, doc.reason) == ("unreadable", pdf_form.GARBLED)


def scan_at_150_dpi(fmt: str) -> bytes:
    return build.pdftoppm(files.converted("pdf")["张三"], fmt, dpi=150)


@pytest.mark.parametrize("name, make", [
    ("扫描件.png", lambda: scan_at_150_dpi("png")),
    ("扫描件.jpg", lambda: scan_at_150_dpi("jpg")),
    ("扫描件.pdf", lambda: build.image_pdf(scan_at_150_dpi("png"))),
])
def test_a_scan_of_the_form_is_read_by_ocr(name, make):
    # tests/e2e/test_scans.py reads the two-page form's scans in full, seals and all
    data = make()
    doc = read_one(name, data)
    assert (doc.kind, doc.scan, doc.format, doc.data) == ("form", True, "scan", data)
    assert (doc.form.source, doc.form.name) == ("scan", "张三")


def test_a_picture_that_is_not_a_form_is_kept_as_an_image():
    data = samples.sample_photo_png(250, 350)
    doc = read_one("照片.png", data)
    assert (doc.kind, doc.scan, doc.data) == ("image", True, data)


def test_pdf_page_count_is_capped(monkeypatch):
    monkeypatch.setattr(pdf_form, "MAX_PAGES", 1)
    # The warm sandbox process was forked before the patch: a fresh one sees it, and the one
    # that saw it is not left for the tests after this one.
    sandbox.shutdown()
    try:
        doc = read_one("李四推荐表.pdf", files.converted("pdf")["李四"])   # two pages
    finally:
        sandbox.shutdown()
    assert (doc.kind, doc.reason) == ("unreadable", pdf_form.TOO_MANY_PAGES)


# ---- reports ----------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["docx", "doc", "pdf"])
def test_a_report_gives_its_title_length_and_opening(fmt):
    data = files.report_docx() if fmt == "docx" else files.converted(fmt)["报告"]
    doc = read_one(f"调研报告.{fmt}", data)
    assert doc.kind == "report"
    assert doc.report.title == files.REPORT_TITLE
    assert doc.report.chars == 60
    assert "张三同志" in doc.report.head


# ---- archives and wrappers --------------------------------------------------------------------

def test_a_windows_zip_with_gbk_names_and_mac_leftovers():
    form = files.docx_forms()["张三.docx"]
    data = build.zip_gbk({"张三推荐表.docx": form, "王五推荐表.doc": files.converted("doc")["王五"],
                          "__MACOSX/._张三推荐表.docx": b"\x00\x05\x16\x07junk"})
    assert not any(i.flag_bits & 0x800 for i in zipfile.ZipFile(io.BytesIO(data)).infolist())
    docs = read(("推荐材料.zip", data))
    assert [(d.file, d.kind) for d in docs] == [("推荐材料.zip/张三推荐表.docx", "form"),
                                                ("推荐材料.zip/王五推荐表.doc", "form")]
    assert docs[1].form.fields() == files.expected("王五")


@pytest.mark.parametrize("kind, make", [
    ("zip", lambda f: build.zip_utf8({"推荐表/李四推荐表.docx": f})),
    ("7z", lambda f: build.seven_zip({"李四推荐表.docx": f})),
    ("rar", lambda f: build.rar4({"李四推荐表.docx": f})),
    ("dat", lambda f: build.tnef({"李四推荐表.docx": f})),
])
def test_forms_inside_every_kind_of_container(kind, make):
    doc = read_one(f"材料.{kind}", make(files.docx_forms()["李四.docx"]))
    assert doc.file == f"材料.{kind}/李四推荐表.docx"
    assert doc.kind == "form" and doc.form.fields() == files.expected("李四")


def test_an_archive_inside_an_archive_is_opened_but_no_deeper():
    inner = build.zip_utf8({"张三推荐表.docx": files.docx_forms()["张三.docx"]})
    [doc] = read(("外层.zip", build.zip_utf8({"内层.zip": inner})))
    assert (doc.file, doc.kind) == ("外层.zip/内层.zip/张三推荐表.docx", "form")
    [deep] = read(("三层.zip", build.zip_utf8({"外层.zip": build.zip_utf8({"内层.zip": inner})})))
    assert (deep.file, deep.kind, deep.reason) == ("三层.zip/外层.zip/内层.zip", "unreadable", TOO_DEEP)


@pytest.mark.parametrize("name, make", [
    ("加密.7z", lambda f: build.seven_zip({"张三推荐表.docx": f}, password="secret")),
    ("加密.rar", lambda f: build.rar4({"张三推荐表.docx": f}, encrypted=True)),
])
def test_encrypted_archives_are_reported(name, make):
    doc = read_one(name, make(files.docx_forms()["张三.docx"]))
    assert (doc.file, doc.kind, doc.reason) == (name, "unreadable", archives.ENCRYPTED)


def test_an_unsupported_compression_method_is_reported():
    data = bytearray(build.zip_utf8({"张三推荐表.docx": b"x" * 100}))
    # method 9 (Deflate64, WinZip's default for large files) in both headers
    local, central = data.find(b"PK\x03\x04"), data.find(b"PK\x01\x02")
    data[local + 8:local + 10] = data[central + 10:central + 12] = (9).to_bytes(2, "little")
    doc = read_one("材料.zip", bytes(data))
    assert (doc.kind, doc.reason) == ("unreadable", archives.UNSUPPORTED)


def test_too_many_files_in_an_archive_is_refused():
    data = build.zip_utf8({f"照片{i}.jpg": b"\xff\xd8\xff" + bytes(10) for i in range(archives.MAX_MEMBERS + 1)})
    doc = read_one("照片.zip", data)
    assert (doc.kind, doc.reason) == ("unreadable", archives.TOO_BIG)


def test_an_outlook_winmail_dat_keeps_gbk_names_of_every_file():
    data = build.tnef({"李四推荐表.docx": files.docx_forms()["李四.docx"], "照片.png": samples.sample_photo_png()})
    docs = read(("winmail.dat", data))
    assert [(d.file, d.kind) for d in docs] == [("winmail.dat/李四推荐表.docx", "form"),
                                                ("winmail.dat/照片.png", "image")]
