"""The corpus, built once per test session (LibreOffice calls are batched: one per format).

The forms are laid out as the bureau's notice distributes them (two tables on two pages) unless
a name says otherwise; `layouts()` holds each way a county fills or re-makes the form."""
from __future__ import annotations

import functools
import io

from parsers.docx_form import parse_form
from pipeline import samples
from tests.corpus import build

CANDIDATES = {   # name → how the clerk filled the .docx
    "张三": dict(fields=samples.SAMPLE_CANDIDATE),
    "李四": dict(fields=samples.SAMPLE_CANDIDATES[1], value_in_label_cell=True),
    "王五": dict(fields=samples.SAMPLE_CANDIDATES[2], spaced_labels=False, nested=True),
}
REPORT_TITLE = "关于株洲市政务数据共享的调研报告"


@functools.cache
def docx_forms() -> dict[str, bytes]:
    forms = {f"{name}.docx": samples.build_form_docx(spec["fields"], **{
        k: v for k, v in spec.items() if k != "fields"}) for name, spec in CANDIDATES.items()}
    forms["无照片.docx"] = samples.build_form_docx(photo=False)
    return forms


@functools.cache
def expected(name: str) -> dict:
    """What every format of a candidate's form must read as: the .docx reading (itself
    checked field by field against the typed values in test_docx_form.py)."""
    return parse_form(docx_forms()[f"{name}.docx"]).fields()


@functools.cache
def report_docx() -> bytes:
    body = "一、基本情况\n全市已建成政务云平台，张三同志牵头推进数据共享。\n二、存在问题\n数据标准不统一。"
    return samples.build_report_docx(REPORT_TITLE, body)


@functools.cache
def converted(target: str) -> dict[str, bytes]:
    """Every form (and the report) in `target` format: doc, rtf, odt, pdf. Word binary is
    written from .odt: LibreOffice 7.4 drops python-docx tables going straight to .doc."""
    files = {**docx_forms(), "报告.docx": report_docx()}
    if target == "odt":
        return _stems(build.soffice_convert(files, "odt"))
    if target == "doc":
        odt = {f"{stem}.odt": data for stem, data in converted("odt").items()}
        return _stems(build.soffice_convert(odt, "doc:MS Word 97"))
    return _stems(build.soffice_convert(files, target))


def _stems(files: dict[str, bytes]) -> dict[str, bytes]:
    return {name.rsplit(".", 1)[0]: data for name, data in files.items()}


@functools.cache
def scan_png() -> bytes:
    return build.pdftoppm(converted("pdf")["张三"], "png")


# ---- the form however a county fills it ------------------------------------------------------

_DEEDS_SOURCE = (
    "该同志扎根基层信息化建设一线十余年，牵头建设全县政务外网和视频会议系统，覆盖乡镇街道与村社区，"
    "组织开展网络安全检查和应急演练，及时处置各类安全隐患，保障重要时期网络运行平稳；"
    "推动医疗、教育、农业等领域数据共享应用，服务企业群众办事超过百万人次，多次获得上级表彰。"
)


def deeds_text(chars: int, start: int = 0) -> str:
    """Deeds of exactly `chars` characters (as the 600-character rule counts them)."""
    text = (_DEEDS_SOURCE * (chars // len(_DEEDS_SOURCE) + 2))[start:start + chars]
    assert len(text) == chars and not any(ch.isspace() for ch in text)
    return text


def candidate(name: str, **fields) -> dict:
    return {**samples.SAMPLE_CANDIDATE, "name": name, **fields}


def expected_fields(typed: dict) -> dict:
    """The fields a form typed as `typed` must read as: those of the sample candidate it was
    made from (read from the .docx corpus), with its own name and its whole deeds."""
    base = typed["name"] if typed["name"] in CANDIDATES else "张三"
    return {**expected(base), "name": typed["name"], "deeds": typed["deeds"]}


SPLIT_OK = (deeds_text(330), deeds_text(230, 7))        # 560 in all: within the limit
SPLIT_LONG = (deeds_text(400), deeds_text(250, 11))     # 650 in all: over it
LABEL_VARIANTS = {"birth": "出生日期", "phone": "手机号码", "employer_post": "工作单位及职务（职称）",
                  "native_place": "出生地", "home_address": "家庭住址", "honours": "获奖情况"}


def _docx_layouts() -> dict[str, tuple[str, bytes, tuple[dict, ...], tuple[str, ...]]]:
    """name → (file name, .docx bytes, candidates typed, their whole deeds)."""
    b = samples.build_form_docx
    forms = {}
    c = candidate("刘一")
    forms["deeds-in-table-1"] = ("刘一推荐表.docx", b(c), (c,), (c["deeds"],))
    c = candidate("陈二")
    forms["deeds-in-table-2"] = ("陈二推荐表.docx", b(c, deeds=("", c["deeds"])), (c,), (c["deeds"],))
    c = candidate("孙七", deeds="\n".join(SPLIT_OK))
    forms["deeds-split"] = ("孙七推荐表.docx", b(c, deeds=SPLIT_OK), (c,), (c["deeds"],))
    c = candidate("周八", deeds="\n".join(SPLIT_LONG))
    forms["deeds-split-650"] = ("周八推荐表.docx", b(c, deeds=SPLIT_LONG), (c,), (c["deeds"],))
    c = candidate("吴九", deeds="\n".join(SPLIT_OK))
    forms["vmerge-label"] = ("吴九推荐表.docx", b(c, deeds=SPLIT_OK, deeds_merged_label=True), (c,),
                             (c["deeds"],))
    c = candidate("郑十")
    forms["paragraphs"] = ("郑十推荐表.docx", samples.build_paragraph_form_docx(c), (c,), (c["deeds"],))
    c = candidate("冯十一")
    forms["label-variants"] = ("冯十一推荐表.docx", b(c, labels=LABEL_VARIANTS), (c,), (c["deeds"],))
    c = candidate("蒋十二")
    forms["one-table"] = ("蒋十二推荐表.docx", b(c, layout="one-table"), (c,), (c["deeds"],))
    three = samples.SAMPLE_CANDIDATES[:3]   # 张三, 李四, 王五
    forms["three-forms"] = ("茶陵县推荐表（3人）.docx", samples.build_forms_docx(list(three)), three,
                            tuple(t["deeds"] for t in three))
    c = candidate("朱丁")
    forms["lossy-doc"] = ("朱丁推荐表.doc", b(c), (c,), (c["deeds"],))   # converted in layouts()
    c = candidate("秦戊")
    forms["pdf"] = ("秦戊推荐表.pdf", b(c), (c,), (c["deeds"],))        # exported in layouts()
    return forms


@functools.cache
def layouts() -> dict[str, tuple[str, bytes, tuple[dict, ...], tuple[str, ...]]]:
    """Every layout as the county sends it: name → (file name, bytes, candidates, deeds).
    The .doc is written by LibreOffice straight from the .docx, which loses the second table
    (its cells run together as paragraphs); the .xls is the .xlsx saved by LibreOffice."""
    forms = _docx_layouts()
    for layout, target in (("lossy-doc", "doc:MS Word 97"), ("pdf", "pdf")):
        name, source, *rest = forms[layout]
        forms[layout] = (name, build.soffice_convert({"form.docx": source}, target)["form.docx"], *rest)
    c = candidate("许己")
    xlsx = build.form_xlsx(c, samples.sample_photo_png())
    forms["xlsx"] = ("许己推荐表.xlsx", xlsx, (c,), (c["deeds"],))
    c = candidate("何庚")
    xls = build.soffice_convert({"c.xlsx": build.form_xlsx(c, samples.sample_photo_png())},
                                "xls:MS Excel 97")["c.xlsx"]
    forms["xls"] = ("何庚推荐表.xls", xls, (c,), (c["deeds"],))
    return forms


@functools.cache
def pdf_layouts() -> dict[str, tuple[str, bytes, tuple[dict, ...], tuple[str, ...]]]:
    """PDF exports of the layouts whose text a PDF reader must put back together: deeds in
    the second table's narrow cell or run on across the page break, and the paragraph form
    under a running header and a page-number footer (one LibreOffice call)."""
    from docx import Document

    sources = {k: layouts()[k] for k in ("deeds-in-table-2", "deeds-split", "three-forms")}
    name, data, typed, deeds = layouts()["paragraphs"]
    doc = Document(io.BytesIO(data))
    doc.sections[0].header.paragraphs[0].text = "株洲市工业和信息化局"
    doc.sections[0].footer.paragraphs[0].text = "第 1 页"
    out = io.BytesIO()
    doc.save(out)
    sources["paragraphs-with-header"] = (name, out.getvalue(), typed, deeds)
    pdfs = build.soffice_convert({f"{k}.docx": v[1] for k, v in sources.items()}, "pdf")
    return {k: (f"{v[0].rsplit('.', 1)[0]}.pdf", pdfs[f"{k}.docx"], *v[2:]) for k, v in sources.items()}
