"""Hostile input: each ends as a recorded problem, quickly, and the pass goes on.

A .docx carrying a billion-laughs entity expansion or an external entity (XXE), an email nested
2000 MIME levels deep or with 5000 parts, a candidate's name that tries to add a header to our
reply, attachment names that climb out of the file store; files built to cost time and memory
(document.xml inflating to 40 and 190 MB, a PDF line storm, nested RTF, four of them in one
email) and a 10 MB subject, each run through `intake poll --once` with its memory watched.
"""
import datetime as dt
import io
import os
import subprocess
import threading
import time
import zipfile
import zlib
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
from tests.cli import INTAKE, maildir_replies
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


# ---- files built to cost: each email within its budget, the worker small, nothing left behind --

def docx_inflating(megabytes: int) -> bytes:
    """The sample form whose document.xml inflates to `megabytes` (one-character paragraphs
    before the table); the zip stays small, as the issue's 215 KB and 833 KB emails did."""
    pad = "<w:p><w:r><w:t>填</w:t></w:r></w:p>" * ((megabytes << 20) // 37)
    return docx_with(lambda text: text.replace("<w:body>", "<w:body>" + pad, 1))


def pdf_line_storm(lines: int = 150) -> bytes:
    """One page ruled by `lines` horizontal and as many vertical lines (a grid pdfplumber's
    table finder takes minutes over) and a word of text, written by hand."""
    ops = [b"BT /F1 10 Tf 20 20 Td (storm) Tj ET"]
    for i in range(lines):
        y, x = 20 + i * 800 / lines, 20 + i * 555 / lines
        ops += [b"20 %.2f m 575 %.2f l S" % (y, y), b"%.2f 20 m %.2f 820 l S" % (x, x)]
    stream = zlib.compress(b"\n".join(ops))
    objects = [b"<</Type/Catalog/Pages 2 0 R>>", b"<</Type/Pages/Kids[3 0 R]/Count 1>>",
               b"<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]/Contents 4 0 R"
               b"/Resources<</Font<</F1 5 0 R>>>>>>",
               b"<</Length %d/Filter/FlateDecode>>stream\n%s\nendstream" % (len(stream), stream),
               b"<</Type/Font/Subtype/Type1/BaseFont/Helvetica>>"]
    out, offsets = io.BytesIO(b"%PDF-1.4\n"), []
    out.seek(0, 2)
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    out.write(b"".join(b"%010d 00000 n \n" % offset for offset in offsets))
    out.write(b"trailer\n<</Size %d/Root 1 0 R>>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def nested_rtf(depth: int = 100_000) -> bytes:
    """Groups nested 100,000 deep: LibreOffice never finishes it."""
    return b"{\\rtf1\\ansi " + b"{\\b " * depth + b"x" + b"}" * depth + b"}"


class Peaks:
    """Samples the peak resident memory (VmHWM) of a process and of every process below it."""

    def __init__(self, pid: int):
        self.pid, self.peaks, self._stop = pid, {}, threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.02):
            for pid in [self.pid, *self._descendants()]:
                hwm = _status(pid, "VmHWM")
                if hwm is not None:
                    name = _status(pid, "Name", int_value=False)
                    self.peaks[pid] = (name, max(hwm, self.peaks.get(pid, ("", 0))[1]))

    def _descendants(self) -> list[int]:
        parents = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                ppid = _status(int(entry), "PPid")
                if ppid is not None:
                    parents[int(entry)] = ppid
        found, frontier = [], {self.pid}
        while frontier:
            frontier = {p for p, pp in parents.items() if pp in frontier}
            found += frontier
        return found

    def stop(self) -> dict[int, tuple[str, int]]:
        self._stop.set()
        self._thread.join()
        return self.peaks


def _status(pid: int, key: str, int_value: bool = True):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                value = line.split(":", 1)[1].split()[0]
                return int(value) * (1024 if key.startswith("Vm") else 1) if int_value else value
    except (OSError, IndexError, ValueError):
        return None
    return None


def hostile_email(message_id: str, files: list[tuple[str, bytes]], subject: str = "推荐表") -> bytes:
    return sample_mail.foxmail_email("hetang@example.cn", MAILBOX, subject, files, message_id=message_id)


def poll_once_watched(config: Path, env: dict) -> tuple[float, dict]:
    """`intake poll --once` as the service runs it; its wall time and each process's peak."""
    started = time.monotonic()
    proc = subprocess.Popen([str(INTAKE), "--config", str(config), "poll", "--once"], cwd=config.parent,
                            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peaks = Peaks(proc.pid)
    out, err = proc.communicate(timeout=180)
    took = time.monotonic() - started
    assert proc.returncode == 0, err.decode()
    return took, {pid: peak for pid, peak in peaks.stop().items() if pid != proc.pid} | {
        "worker": peaks.peaks.get(proc.pid, ("intake", 0))}


WORKER_CAP = 256 << 20
SANDBOX_CAP = 768 << 20      # parsers/sandbox.py: above what the worker had mapped when it forked
SOFFICE_CAP = 4 << 30        # parsers/convert.py: address space of each LibreOffice process

HOSTILE = {
    "document.xml-40MB": [("张三推荐表.docx", "docx40")],
    "document.xml-190MB": [("张三推荐表.docx", "docx190")],
    "pdf-line-storm": [("张三推荐表.pdf", "storm")],
    "nested-rtf": [("张三推荐表.rtf", "rtf")],
    "four-in-one": [("a.docx", "docx40"), ("b.pdf", "storm"), ("c.rtf", "rtf"), ("d.docx", "docx190")],
}


@pytest.fixture(scope="module")
def hostile_files():
    return {"docx40": docx_inflating(40), "docx190": docx_inflating(190),
            "storm": pdf_line_storm(), "rtf": nested_rtf()}


def served(tmp_path: Path, email_seconds: int) -> tuple[Path, dict]:
    """A config whose store, files and mail live under tmp_path/served, with a private TMPDIR
    that must end empty."""
    home = tmp_path / "served"
    home.mkdir()
    config = write_config(home, mailbox={"transport": "maildir", "path": str(home / "inbox"),
                                         "email_seconds": email_seconds})
    (tmp_path / "systmp").mkdir()
    return config, {"TMPDIR": str(tmp_path / "systmp")}


def check_hostile_email(tmp_path, config, env, raw: bytes, message_id: str, seconds: float) -> dict:
    write_maildir(config.parent / "inbox", [(raw, JULY_20)])
    took, peaks = poll_once_watched(config, env)
    assert took < seconds, f"{message_id} took {took:.1f} s"
    worker = peaks.pop("worker")[1]
    assert worker < WORKER_CAP, f"the worker peaked at {worker >> 20} MiB"
    for name, peak in peaks.values():
        cap = SOFFICE_CAP if name.startswith(("soffice", "oosplash")) else worker + SANDBOX_CAP
        assert peak < cap, f"{name} peaked at {peak >> 20} MiB"
    assert list((tmp_path / "systmp").iterdir()) == [], "files left in the system temp folder"
    assert list(config.parent.iterdir()) and all(
        p.name in ("inbox", "sent", "files", "intake.toml") or p.name.startswith("intake.json")
        for p in config.parent.iterdir()), sorted(p.name for p in config.parent.iterdir())
    store = Store(config.parent / "intake.json", config.parent / "files")
    try:
        sub = store.submissions.get(message_id)
    finally:
        store.close()
    assert sub is not None and sub["status"] == "needs-correction", sub
    return sub


@pytest.mark.parametrize("case", HOSTILE, ids=HOSTILE.keys())
def test_hostile_files_cost_one_email_budget(tmp_path, hostile_files, case):
    """With a 10 s budget per email (`[mailbox] email_seconds`) so the suite stays quick: each
    email is recorded and answered well within a minute, naming every file it could not read."""
    config, env = served(tmp_path, email_seconds=10)
    files = [(name, hostile_files[key]) for name, key in HOSTILE[case]]
    check_hostile_email(tmp_path, config, env, hostile_email(f"<{case}@example.cn>", files),
                        f"<{case}@example.cn>", seconds=30)
    [reply] = maildir_replies(config.parent / "sent")
    text = reply.get_body(("plain",)).get_content()
    assert reply["X-Intake-Status"] == "needs-correction" and "unreadable-file" in reply["X-Intake-Problems"]
    for name, _ in files:
        assert f"《{name}》" in text or name in text, f"{name} is not named in the reply"
    if case == "four-in-one":   # the budget ran out on the way: the last ones are reported unread
        assert "处理时间已用完" in text


def test_a_ten_megabyte_subject_gives_a_short_reply(tmp_path):
    config, env = served(tmp_path, email_seconds=10)
    subject = "推荐表" + "很长的主题" * (2 << 20)   # 10 MB as GBK in encoded words
    raw = hostile_email("<subject@example.cn>", [("张三推荐表.docx", samples.build_form_docx())], subject)
    assert len(raw) > 10 << 20
    write_maildir(config.parent / "inbox", [(raw, JULY_20)])
    took, peaks = poll_once_watched(config, env)
    assert peaks["worker"][1] < WORKER_CAP, f"the worker peaked at {peaks['worker'][1] >> 20} MiB"
    [reply] = maildir_replies(config.parent / "sent")
    assert reply["X-Intake-Status"] == "accepted"
    assert len(reply["Subject"]) < 300 and len(bytes(reply)) < 100_000
    text = reply.get_body(("plain",)).get_content()
    quoted = text.split("（主题：", 1)[1].split("），", 1)[0]
    assert quoted.startswith("推荐表很长的主题") and quoted.endswith("…") and len(quoted) == 200


@pytest.mark.slow
def test_four_hostile_files_at_the_default_limits_take_under_a_minute(tmp_path, hostile_files):
    """The default budget (50 s) and the children's own limits, as the service runs."""
    config, env = served(tmp_path, email_seconds=50)
    files = [(name, hostile_files[key]) for name, key in HOSTILE["four-in-one"]]
    check_hostile_email(tmp_path, config, env, hostile_email("<four@example.cn>", files),
                        "<four@example.cn>", seconds=60)
