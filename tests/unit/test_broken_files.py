"""No document, however broken, takes the worker down: each ends as a clear problem, fast."""
import functools
import io
import os
import time
import zipfile

import pytest
from msoffcrypto.format.ooxml import OOXMLFile   # encrypts a .docx as Word's 用密码进行加密 does

from parsers import sandbox
from parsers.attachments import ENCRYPTED, read_attachments
from parsers.errors import UnreadableFile
from parsers.sandbox import run_limited
from parsers.records import Attachment
from tests.corpus import build, files

RANDOM = os.urandom(50_000)


def encrypted_docx() -> bytes:
    out = io.BytesIO()
    OOXMLFile(io.BytesIO(files.docx_forms()["张三.docx"])).encrypt("county-secret", out)
    return out.getvalue()


def docx_bomb() -> bytes:
    """A real form whose document.xml is padded with 300 MB of spaces (a few hundred KB zipped)."""
    src = zipfile.ZipFile(io.BytesIO(files.docx_forms()["张三.docx"]))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            if item.filename != "word/document.xml":
                dst.writestr(item, src.read(item))
        with dst.open("word/document.xml", "w", force_zip64=True) as part:
            part.write(src.read("word/document.xml"))
            for _ in range(300):
                part.write(b" " * (1 << 20))
    return out.getvalue()


@functools.cache
def broken_files() -> dict[str, bytes]:
    docx, pdf = files.docx_forms()["张三.docx"], files.converted("pdf")["张三"]
    doc = files.converted("doc")["张三"]
    return {
        "截断.docx": docx[: len(docx) // 2],
        "截断.pdf": pdf[: len(pdf) // 2],
        "截断.doc": doc[: len(doc) // 3],
        "截断.zip": build.zip_utf8({"张三推荐表.docx": docx})[:5000],
        "截断.7z": build.seven_zip({"张三推荐表.docx": docx})[:5000],
        "截断.rar": build.rar4({"张三推荐表.docx": docx})[:5000],
        "空白.docx": b"", "空白.pdf": b"", "空白.doc": b"", "空白.zip": b"",
        "改名.docx": b"%PDF-1.4\n" + RANDOM[:2000],
        "改名.pdf": b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + RANDOM[:3000],
        "加密.docx": encrypted_docx(),
        "加密.pdf": build.qpdf_encrypt(pdf, "county-secret"),
        "加密.7z": build.seven_zip({"张三推荐表.docx": docx}, password="secret"),
        "炸弹.zip": build.zip_bomb(256 << 20),
        "炸弹.7z": build.seven_zip_bomb(256 << 20),
        "炸弹.docx": docx_bomb(),
        "乱码.docx": RANDOM, "乱码.doc": RANDOM, "乱码.pdf": RANDOM, "乱码.rar": RANDOM,
        "乱码.wps": RANDOM,
        "winmail.dat": build.tnef({"张三推荐表.docx": docx})[:5000],
    }


def test_every_broken_file_is_a_clear_problem_within_seconds():
    named = broken_files()
    started = time.monotonic()
    docs = read_attachments([Attachment(name, "application/octet-stream", data)
                             for name, data in named.items()])
    elapsed = time.monotonic() - started
    assert [d.file for d in docs] == [*list(named)[:-1], "winmail.dat/张三推荐表.docx"]
    outcome = {d.file: (d.kind, d.reason) for d in docs}
    assert all(kind == "unreadable" and reason for kind, reason in outcome.values()), outcome
    assert elapsed < 15, f"{elapsed:.1f}s for {len(named)} broken files"
    assert outcome["加密.docx"][1] == ENCRYPTED
    assert "密码" in outcome["加密.pdf"][1] and "密码" in outcome["加密.7z"][1]
    assert all("过大" in outcome[name][1] for name in ("炸弹.zip", "炸弹.7z", "炸弹.docx"))
    assert all("为空" in outcome[name][1] for name in named if name.startswith("空白"))


@pytest.mark.parametrize("name", ["炸弹.zip", "炸弹.7z"])
def test_a_bomb_costs_milliseconds(name):
    data = broken_files()[name]
    started = time.monotonic()
    [doc] = read_attachments([Attachment(name, "application/zip", data)])
    assert doc.kind == "unreadable"
    assert time.monotonic() - started < 0.5


def _allocate_a_gigabyte():
    return len(bytearray(1 << 30))


def _spin_forever():
    while True:
        pass


def test_a_parser_that_eats_memory_or_never_ends_is_stopped():
    with pytest.raises(UnreadableFile) as caught:
        run_limited(_allocate_a_gigabyte, memory=256 << 20)
    assert caught.value.reason == sandbox.TOO_BIG
    started = time.monotonic()
    with pytest.raises(UnreadableFile) as caught:
        run_limited(_spin_forever, wall=1)
    assert caught.value.reason == sandbox.TOO_SLOW and time.monotonic() - started < 3
