"""The corpus, built once per test session (LibreOffice calls are batched: one per format)."""
from __future__ import annotations

import functools

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


@functools.cache
def scan_jpg() -> bytes:
    return build.pdftoppm(converted("pdf")["张三"], "jpg")
