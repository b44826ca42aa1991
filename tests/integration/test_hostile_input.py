"""Hostile input: each ends as a recorded problem, quickly, and the pass goes on.

A .docx carrying a billion-laughs entity expansion or an external entity (XXE), an email nested
2000 MIME levels deep or with 5000 parts, a candidate's name that tries to add a header to our
reply, attachment names that climb out of the file store.
"""
import datetime as dt
import io
import os
import threading
import time
import zipfile
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest

from parsers.attachments import read_attachments
from parsers.email_message import MAX_PARTS
from parsers.records import Attachment
from pipeline import sample_mail, samples
from pipeline.demo import write_maildir
from pipeline.poll import run_pass
from pipeline.settings import load_settings
from store.repository import Store
from tests.cli import maildir_replies
from tests.configs import MAILBOX, write_config

TZ = dt.timezone(dt.timedelta(hours=8))
JULY_20 = dt.datetime(2022, 7, 20, 10, 0, tzinfo=TZ)
NOW = dt.datetime(2022, 7, 20, 3, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def county(tmp_path):
    """A Maildir config, a pass over it and the store it writes."""
    settings = load_settings(write_config(tmp_path))
    store = Store(settings.store.path, settings.store.files)

    class County:
        def deliver(self, *emails: bytes) -> None:
            write_maildir(settings.mailbox.path,
                          [(raw, JULY_20 + dt.timedelta(minutes=i)) for i, raw in enumerate(emails)])

        def poll(self):
            started = time.monotonic()
            report = run_pass(settings, store, lambda: NOW)
            return report, time.monotonic() - started

    c = County()
    c.settings, c.store, c.dir = settings, store, tmp_path
    yield c
    store.close()


def docx_with(document_xml_edit) -> bytes:
    """The sample form with word/document.xml rewritten by `document_xml_edit(text) -> text`,
    zipped by hand (python-docx would refuse to write a DOCTYPE)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(samples.build_form_docx())) as src, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "word/document.xml":
                data = document_xml_edit(data.decode("utf-8")).encode("utf-8")
            dst.writestr(info, data)
    return out.getvalue()


def with_doctype(doctype: str, name_value: str):
    """Insert `doctype` after the XML declaration and put `name_value` where 张三 was typed."""
    def edit(xml: str) -> str:
        declaration, _, rest = xml.partition("?>")
        return declaration + "?>" + doctype + rest.replace("张三", name_value, 1)
    return edit


BILLION_LAUGHS = ('<!DOCTYPE w:document [<!ENTITY lol0 "lol">'
                  + "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
                  + "]>")


class Opened:
    """Notices whether anything opens a FIFO for reading: a writer's non-blocking open of a
    FIFO succeeds only while a reader has it open. Catches opens from C code (libxml2) too."""

    def __init__(self, fifo: Path):
        self.fifo, self.seen, self._stop = fifo, False, threading.Event()
        os.mkfifo(fifo)
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:   # ENXIO: no reader
                time.sleep(0.001)
                continue
            self.seen = True
            os.write(fd, b"SECRET-FROM-DISK")
            os.close(fd)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def test_a_billion_laughs_docx_is_unreadable_at_once():
    data = docx_with(with_doctype(BILLION_LAUGHS, "&lol9;"))
    started = time.monotonic()
    [doc] = read_attachments([Attachment("张三推荐表.docx", "application/octet-stream", data)])
    assert time.monotonic() - started < 2
    assert doc.kind == "unreadable", doc
    assert "lol" not in repr(doc.form)


def test_an_external_entity_in_a_docx_reads_nothing_from_disk(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET-FROM-DISK")
    for target in (secret, tmp_path / "pipe"):
        doctype = f'<!DOCTYPE w:document [<!ENTITY xxe SYSTEM "file://{target}">]>'
        data = docx_with(with_doctype(doctype, "&xxe;"))
        watcher = Opened(target) if target.name == "pipe" else None
        started = time.monotonic()
        if watcher:
            with watcher:
                docs = read_attachments([Attachment("张三推荐表.docx", "application/octet-stream", data)])
            assert not watcher.seen, "the parser opened the external entity's file"
        else:
            docs = read_attachments([Attachment("张三推荐表.docx", "application/octet-stream", data)])
        assert time.monotonic() - started < 2
        [doc] = docs
        # Word never writes a DTD in a document: one is refused as unreadable, unexpanded.
        assert doc.kind == "unreadable", doc
        assert "SECRET" not in repr(doc)


def test_hostile_docx_files_end_as_a_recorded_problem(county):
    county.deliver(sample_mail.foxmail_email(
        "hetang@example.cn", MAILBOX, "推荐表", [("张三推荐表.docx", docx_with(with_doctype(BILLION_LAUGHS, "&lol9;")))],
        message_id="<lol@example.cn>"))
    report, took = county.poll()
    assert (report.recorded, report.failed) == (1, 0) and took < 5
    sub = county.store.submissions.get("<lol@example.cn>")
    assert sub["status"] == "needs-correction" and sub["problems"] == ["unreadable-file"]
    assert county.store.candidates.current("荷塘区") == []


def mime_nested(depth: int) -> bytes:
    head = (b"From: hetang@example.cn\r\nTo: " + MAILBOX.encode() + b"\r\nSubject: deep\r\n"
            b"Message-ID: <deep@example.cn>\r\nMIME-Version: 1.0\r\n")
    opening = b"".join(b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
                       for i in range(depth))
    closing = b"".join(b"\r\n--b%d--\r\n" % i for i in reversed(range(depth)))
    return head + opening + b"Content-Type: text/plain\r\n\r\nhello" + closing


def many_parts(n: int) -> bytes:
    head = (b"From: hetang@example.cn\r\nTo: " + MAILBOX.encode() + b"\r\nSubject: many\r\n"
            b"Message-ID: <many@example.cn>\r\nMIME-Version: 1.0\r\n"
            b'Content-Type: multipart/mixed; boundary="B"\r\n\r\n')
    parts = b"".join(b'--B\r\nContent-Type: application/octet-stream\r\n'
                     b'Content-Disposition: attachment; filename="f%d.bin"\r\n\r\npart %d\r\n' % (i, i)
                     for i in range(n))
    return head + parts + b"--B--\r\n"


@pytest.mark.parametrize("raw, message_id", [
    (mime_nested(2000), "<deep@example.cn>"),
    (mime_nested(900), "<deep@example.cn>"),    # parses, but walking it recursively would not
    (many_parts(5000), "<many@example.cn>"),
], ids=["2000-levels", "900-levels", "5000-parts"])
def test_deep_nesting_and_thousands_of_parts_are_recorded(county, raw, message_id):
    county.deliver(raw, sample_mail.foxmail_email(
        "lusong@example.cn", MAILBOX, "推荐表", [("张三推荐表.docx", samples.build_form_docx())]))
    report, took = county.poll()
    assert took < 10, f"the pass took {took:.1f} s"
    assert (report.read, report.recorded + report.skipped, report.failed) == (2, 2, 0)
    sub = county.store.submissions.get(message_id)
    assert sub["county"] == "荷塘区" and sub["status"] in ("needs-correction", "rejected")
    assert len(sub["files"]) <= MAX_PARTS     # what is read of it is bounded, and so is the disk
    assert county.store.candidates.current("芦淞区"), "the next message was processed too"
    assert not list((county.settings.mailbox.path / "new").iterdir())


INJECTED = "Zhang San\r\nBcc: everyone@example.com"


def test_a_name_with_a_line_break_adds_no_header_to_the_reply(county):
    form = {**samples.SAMPLE_CANDIDATE, "name": "Zhang San\nBcc: everyone@example.com\nX-Evil: 1"}
    county.deliver(sample_mail.foxmail_email(
        "hetang@example.cn", MAILBOX, "推荐表\r\nBcc: everyone@example.com",
        [("推荐表.docx", samples.build_form_docx(form))], message_id="<inject@example.cn>"))
    report, _ = county.poll()
    assert report.failed == 0 and report.recorded == 1
    [reply] = maildir_replies(county.dir / "sent")
    assert reply["Bcc"] is None and reply["X-Evil"] is None
    assert "\n" not in reply["Subject"] and "\r" not in reply["Subject"]
    assert "Zhang San" in reply["Subject"]
    raw = next((county.dir / "sent" / "new").iterdir()).read_bytes()
    headers = BytesParser(policy=policy.compat32).parsebytes(raw, headersonly=True)
    assert [k for k in headers.keys() if k.lower() in ("bcc", "cc", "x-evil")] == []


def test_compose_keeps_every_header_on_one_line():
    from outbox.compose import FormOutcome, ReplyContent, compose_reply
    content = ReplyContent(to="hetang@example.cn", county="荷塘区", status="accepted", received_at=JULY_20,
                           original_subject="推荐表\r\nBcc: x@example.com", original_message_id="<a@example.cn>",
                           forms=[FormOutcome("f.docx", INJECTED, "accepted")])
    msg = compose_reply(content, MAILBOX, "<a@example.cn>", NOW)
    raw = msg.as_bytes()
    assert b"\nBcc:" not in raw and b"\r\nBcc:" not in raw
    assert msg["Subject"] == "【已受理】荷塘区 Zhang San Bcc: everyone@example.com 信息技术能手推荐表"


def test_attachment_names_cannot_climb_out_of_the_file_store(county):
    county.deliver(sample_mail.foxmail_email(
        "hetang@example.cn", MAILBOX, "推荐表",
        [("../../../../tmp/evil.docx", samples.build_form_docx()),
         ("..\\..\\outside.docx", samples.build_form_docx({"name": "李四"}))], message_id="<trav@example.cn>"))
    report, _ = county.poll()
    assert report.recorded == 1
    files = county.settings.store.files.resolve()
    written = [p for p in county.dir.rglob("*") if p.is_file()]
    for p in written:
        assert p.resolve().is_relative_to(county.dir.resolve())
    assert not (county.dir.parent / "outside.docx").exists()
    sub = county.store.submissions.get("<trav@example.cn>")
    assert [f["name"] for f in sub["files"]] == ["evil.docx", "outside.docx"]
    for f in sub["files"]:
        assert county.store.files.path_of(f["sha256"]).resolve().is_relative_to(files)
