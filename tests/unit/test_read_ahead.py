"""Reading ahead (parsers/sandbox.py `read_ahead`, parsers/attachments.py `read_ahead`): an
email's documents handed to the sandbox while the worker is still busy with the email before are
read into exactly what reading them then gives — forms, reports, refusals, time-outs — each
under its own limits, and a document asked for never waits behind one read ahead."""
import io
import os
import signal
import time

import pytest
from openpyxl import Workbook

from parsers import sandbox
from parsers.attachments import read_ahead, read_attachments
from parsers.errors import UnreadableFile
from parsers.limits import OUT_OF_TIME, EmailBudget
from parsers.records import Attachment
from pipeline import samples
from tests.corpus import files
from tests.integration.test_hostile_input import pdf_line_storm

FORM = samples.build_form_docx()


pytestmark = pytest.mark.usefixtures("fresh_sandbox")


def attached(*named: tuple[str, bytes]) -> list[Attachment]:
    return [Attachment(name, "application/octet-stream", data) for name, data in named]


def not_a_form_xlsx() -> bytes:
    book = Workbook()
    book.active.append(["项目", "金额"])
    book.active.append(["服务器", 12000])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def honest_form_read() -> bool:
    [doc] = read_attachments(attached(("张三推荐表.docx", FORM)))
    return doc.kind == "form" and doc.form.name == "张三"


def _hostile(how: str):
    if how == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    if how == "eat":
        return len(bytearray(1 << 30))
    while True:   # spin
        pass


@pytest.mark.parametrize("named", [
    [("张三推荐表.docx", FORM), ("事迹材料.docx", files.report_docx())],
    [("推荐表.xlsx", files.layouts()["xlsx"][1]), ("经费表.xlsx", not_a_form_xlsx())],
    [("李四推荐表.pdf", files.converted("pdf")["李四"])],
])
def test_documents_read_ahead_are_what_reading_them_then_gives(named):
    atts = attached(*named)
    direct = read_attachments(atts)
    assert {d.kind for d in direct} <= {"form", "report", "other"} and any(d.kind == "form" for d in direct)
    ahead = read_ahead(atts)
    assert list(ahead) == [data for _, data in named]      # every one handed over, none read yet
    time.sleep(0.5)                                          # the worker busy with the email before
    assert read_attachments(atts, ahead=ahead) == direct
    assert ahead == {}                                       # each result taken, none read twice


def test_a_document_read_ahead_that_never_ends_times_out_as_it_would_then():
    # pdfplumber takes minutes over this grid; the email may spend 4 seconds.
    atts = attached(("推荐表.pdf", pdf_line_storm()), ("张三推荐表.docx", FORM))
    direct = read_attachments(atts, EmailBudget(seconds=4))
    assert [(d.kind, d.reason) for d in direct] == [("unreadable", sandbox.TOO_SLOW),
                                                    ("unreadable", OUT_OF_TIME)]
    ahead = read_ahead(atts)
    time.sleep(1)          # the email's time starts when it is read, the storm's before
    started = time.monotonic()
    early = read_attachments(atts, EmailBudget(seconds=4), ahead=ahead)
    assert early == direct
    assert time.monotonic() - started < 4    # its 4 seconds counted from when it started
    assert honest_form_read()


def test_calls_read_ahead_each_keep_their_own_limits():
    calls = sandbox.read_ahead(_hostile, [("eat",), ("die",), ("spin",)], memory=256 << 20, cpu=1)
    assert len(calls) == 3
    reasons = []
    for call in calls:
        with pytest.raises(UnreadableFile) as caught:
            call.result(wall=20)
        reasons.append(caught.value.reason)
    assert reasons == [sandbox.TOO_BIG, sandbox.CRASHED, sandbox.TOO_SLOW]
    assert honest_form_read()


def test_wall_time_counts_from_when_the_sandbox_started_the_call():
    [call] = sandbox.read_ahead(time.sleep, [(10,)])
    time.sleep(1.5)
    asked = time.monotonic()
    with pytest.raises(UnreadableFile) as caught:
        call.result(wall=2)
    assert caught.value.reason == sandbox.TOO_SLOW
    assert time.monotonic() - asked < 1.2     # 2 s after it started, not 2 s after asked


def test_a_document_asked_for_never_waits_behind_one_read_ahead():
    [spinning] = sandbox.read_ahead(_hostile, [("spin",)], cpu=20)
    started = time.monotonic()
    assert honest_form_read()                 # in a fresh process, at once
    assert time.monotonic() - started < 5
    with pytest.raises(UnreadableFile) as caught:   # read again when asked for, as then
        spinning.result(wall=1)
    assert caught.value.reason == sandbox.TOO_SLOW


def test_a_result_nobody_takes_is_let_go_and_holds_nothing_up():
    # The email read ahead was a duplicate, or it failed: its results are dropped.
    first = sandbox.run_limited(os.getpid)
    calls = sandbox.read_ahead(os.getpid, [(), ()])
    assert len(calls) == 2
    for call in calls:
        call.drop()
    time.sleep(0.5)                                      # their results have come meanwhile
    assert sandbox.run_limited(os.getpid) == first       # the same process, not replaced
    assert not sandbox._current.pending                  # and nothing left in its pipe
    assert honest_form_read()


def test_a_busy_sandbox_is_not_handed_more():
    [spinning] = sandbox.read_ahead(_hostile, [("spin",)], cpu=20)
    assert sandbox.read_ahead(os.getpid, [()]) == []   # read in its turn instead
    spinning.drop()
    assert honest_form_read()


def test_a_document_read_ahead_that_ended_after_its_time_is_too_slow_as_then():
    # Nobody waited while it ran: it ended 1.5 s after it started, when 1 s was its time.
    [call] = sandbox.read_ahead(time.sleep, [(1.5,)])
    time.sleep(2.5)
    with pytest.raises(UnreadableFile) as caught:
        call.result(wall=1)
    assert caught.value.reason == sandbox.TOO_SLOW
    assert honest_form_read()


class _BreaksOnSecondSend:
    """The worker's end of the pipe, failing as a dead process's would on the second send."""

    def __init__(self, conn):
        self.conn, self.sends = conn, 0

    def send(self, message):
        self.sends += 1
        if self.sends == 2:
            raise BrokenPipeError("the sandbox died")
        self.conn.send(message)

    def __getattr__(self, name):
        return getattr(self.conn, name)


def test_a_pipe_that_breaks_while_documents_are_handed_over_ahead_blames_none_of_them():
    sandbox.run_limited(os.getpid)
    broken = sandbox._current
    broken.conn = _BreaksOnSecondSend(broken.conn)
    calls = sandbox.read_ahead(os.getpid, [(), ()])
    assert len(calls) == 1
    assert isinstance(calls[0].result(), int)         # read again in its turn, not "damaged"
    assert sandbox._current is not broken and not broken.child.is_alive()
    assert honest_form_read()
