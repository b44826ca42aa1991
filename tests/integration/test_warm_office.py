"""`intake run` keeps one LibreOffice running for legacy documents (parsers.convert.warm_office):
the forms read the same as with a LibreOffice per email, the same LibreOffice serves the next
email, one that takes too long is killed and replaced, and none is left behind."""
from __future__ import annotations

import os

from parsers import convert
from parsers.attachments import read_attachments
from parsers.errors import UnreadableFile
from parsers.records import Attachment
from tests.corpus import files


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:   # a zombie is dead too
        return fh.read().split(") ", 1)[1][0] != "Z"


def test_a_running_libreoffice_reads_legacy_forms_and_is_replaced_when_it_hangs(monkeypatch):
    doc = files.converted("doc")["张三"]
    rtf = files.converted("rtf")["李四"]
    cold = read_attachments([Attachment("张三推荐表.doc", "application/msword", doc)])
    with convert.warm_office():
        [first] = read_attachments([Attachment("张三推荐表.doc", "application/msword", doc)])
        office = convert._warm.office
        [second] = read_attachments([Attachment("李四推荐表.rtf", "application/rtf", rtf)])
        assert convert._warm.office is office and _alive(office.pid)   # the same LibreOffice
        assert first.form.name == "张三" and second.form.name == "李四"
        assert first.form.fields() == cold[0].form.fields()          # read as a cold one reads it

        monkeypatch.setattr(convert, "BASE_SECONDS", 0)
        monkeypatch.setattr(convert, "SECONDS_PER_FILE", 0.001)
        [late] = convert.to_docx([(doc, "doc")])   # no email budget: 1 ms for the file
        assert isinstance(late, UnreadableFile) and late.reason == convert.TIMED_OUT
        assert not _alive(office.pid)                                # killed, whole group
        monkeypatch.undo()

        [again] = read_attachments([Attachment("张三推荐表.doc", "application/msword", doc)])
        assert again.form.name == "张三"
        assert convert._warm.office.pid != office.pid                # a fresh one
        last = convert._warm.office
    assert convert._warm is None and not _alive(last.pid)          # none left behind


def _kill(office) -> None:
    os.killpg(office.pid, 9)
    office.wait()


def test_a_spreadsheet_goes_through_the_running_libreoffice_and_reads_as_a_cold_one():
    name, xls, (cand,), _ = files.layouts()["xls"]
    cold = read_attachments([Attachment(name, "application/vnd.ms-excel", xls)])
    with convert.warm_office() as office:
        [warm] = read_attachments([Attachment(name, "application/vnd.ms-excel", xls)])
        assert office.office is not None and _alive(office.office.pid)   # read by the warm one
        assert office.converted == 1
    assert warm.form.name == cand["name"] and warm.form.fields() == cold[0].form.fields()


def test_a_libreoffice_that_died_between_emails_is_replaced_before_the_next_file():
    doc = files.converted("doc")["张三"]
    with convert.warm_office() as office:
        read_attachments([Attachment("张三推荐表.doc", "application/msword", doc)])
        crashed = office.office
        _kill(crashed)                                   # e.g. killed by the OOM killer
        [next_email] = read_attachments([Attachment("张三推荐表.doc", "application/msword", doc)])
        assert next_email.form.name == "张三"            # the county's file is not blamed
        assert office.office.pid != crashed.pid and _alive(office.office.pid)


def test_a_uno_client_that_died_is_replaced_with_its_libreoffice():
    doc = files.converted("doc")["张三"]
    with convert.warm_office() as office:
        read_attachments([Attachment("张三推荐表.doc", "application/msword", doc)])
        old_office, old_client = office.office, office.client
        _kill(old_client)
        [again] = read_attachments([Attachment("张三推荐表.doc", "application/msword", doc)])
        assert again.form.name == "张三"
        assert office.client.pid != old_client.pid and not _alive(old_office.pid)


def test_a_libreoffice_grown_too_big_or_used_too_long_is_replaced_before_the_next_file(monkeypatch):
    doc = files.converted("doc")["张三"]
    with convert.warm_office() as office:
        read_attachments([Attachment("张三推荐表.doc", "application/msword", doc)])
        first = office.office
        assert 50 << 20 < office.rss() < convert.RESTART_RSS_BYTES   # soffice.bin counted
        monkeypatch.setattr(convert, "RESTART_RSS_BYTES", 10 << 20)
        [bigger] = read_attachments([Attachment("张三推荐表.doc", "application/msword", doc)])
        assert bigger.form.name == "张三" and not _alive(first.pid)
        monkeypatch.undo()

        second = office.office
        monkeypatch.setattr(convert, "RESTART_AFTER", 2)
        read_attachments([Attachment("张三推荐表.doc", "application/msword", doc)])
        assert office.office is second                                # one more file: kept
        [later] = read_attachments([Attachment("张三推荐表.doc", "application/msword", doc)])
        assert later.form.name == "张三" and not _alive(second.pid)   # then replaced


def test_the_running_libreoffice_has_its_own_profile_and_memory_limit():
    doc = files.converted("doc")["张三"]
    with convert.warm_office() as office:
        read_attachments([Attachment("张三推荐表.doc", "application/msword", doc)])
        work = office.work
        assert (work / "profile" / "user").is_dir()                  # a private profile
        with open(f"/proc/{office.office.pid}/limits") as fh:
            limit = next(line for line in fh if line.startswith("Max address space"))
        assert int(limit.split()[3]) == convert.MEMORY_BYTES
    assert not work.exists()                                         # removed on exit
