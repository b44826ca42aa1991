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
