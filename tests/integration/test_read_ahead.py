"""A pass over several county emails reads each email's form in the sandbox while the worker
still judges, stores and answers the email before it — and records and answers every email
exactly as a pass that reads each form in its turn."""
import datetime as dt

import pytest

from parsers import sandbox
from pipeline import poll, process, sample_mail, samples
from pipeline.demo import write_maildir
from pipeline.settings import load_settings
from store.repository import Store
from tests.cli import body_text, maildir_replies
from tests.configs import MAILBOX, write_config

TZ = dt.timezone(dt.timedelta(hours=8))
JULY_20 = dt.datetime(2022, 7, 20, 10, 0, tzinfo=TZ)
NOW = dt.datetime(2022, 7, 20, 3, 0, tzinfo=dt.timezone.utc)
COUNTIES = [("hetang@example.cn", "张三"), ("lusong@example.cn", "李四"), ("shifeng@example.cn", "王五"),
            ("tianyuan@example.cn", "赵六")]
FORMS = {name: samples.build_form_docx({"name": name}) for _, name in COUNTIES}


def run_over_four_emails(directory, events=None):
    """One pass over four county emails with a form each: (events, submissions, replies)."""
    directory.mkdir()
    settings = load_settings(write_config(directory))
    write_maildir(settings.mailbox.path, [
        (sample_mail.foxmail_email(sender, MAILBOX, f"推荐表（{name}）", [(f"{name}推荐表.docx", FORMS[name])],
                                   message_id=f"<{i}@example.cn>"), JULY_20 + dt.timedelta(minutes=i))
        for i, (sender, name) in enumerate(COUNTIES)])
    events = [] if events is None else events
    real_send, real_process = sandbox._Process.send, poll.process_message

    def send(self, call):
        events.extend(("sandbox got", name) for name, form in FORMS.items() if call.args == (form,))
        return real_send(self, call)

    def process_message(raw, *args, **kwargs):
        name = next(name for name in FORMS if f"<{list(FORMS).index(name)}@".encode() in raw)
        events.append(("processing", name))
        submission = real_process(raw, *args, **kwargs)
        events.append(("processed", name))    # its transaction commits after this
        return submission

    store = Store(settings.store.path, settings.store.files)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(sandbox._Process, "send", send)
            patch.setattr(poll, "process_message", process_message)
            report = poll.run_pass(settings, store, lambda: NOW)
        assert (report.read, report.recorded, report.failed) == (4, 4, 0)
        submissions = [{k: s[k] for k in ("message_id", "county", "status", "problems", "receipt")}
                       for s in sorted(store.submissions.all(), key=lambda s: s["message_id"])]
    finally:
        store.close()
    replies = [(r["Subject"], body_text(r)) for r in maildir_replies(settings.smtp.path)]
    return events, submissions, replies


pytestmark = pytest.mark.usefixtures("fresh_sandbox")


def test_the_next_form_is_read_while_the_email_before_is_stored(tmp_path, monkeypatch):
    events, submissions, replies = run_over_four_emails(tmp_path / "ahead")
    names = [name for _, name in COUNTIES]
    for before, after in zip(names, names[1:]):
        assert events.index(("sandbox got", after)) < events.index(("processed", before)), events
    assert events.index(("sandbox got", "张三")) > events.index(("processing", "张三"))   # the first in its turn
    assert [e for e in events if e[0] == "sandbox got"] == [("sandbox got", n) for n in names]   # each once
    assert [s["status"] for s in submissions] == ["accepted"] * 4
    assert len(replies) == 4 and all("已受理" in subject for subject, _ in replies)


def test_reading_ahead_changes_nothing_recorded_or_answered(tmp_path, monkeypatch):
    _, ahead_submissions, ahead_replies = run_over_four_emails(tmp_path / "ahead")
    monkeypatch.setattr(process, "READ_AHEAD_BYTES", 0)    # every form read in its turn
    events, submissions, replies = run_over_four_emails(tmp_path / "in-turn")
    for _, name in COUNTIES:
        assert events.index(("sandbox got", name)) > events.index(("processing", name))
    assert submissions == ahead_submissions
    assert replies == ahead_replies


def test_when_reading_ahead_fails_every_email_is_read_in_its_turn(tmp_path, monkeypatch):
    _, in_turn_submissions, in_turn_replies = run_over_four_emails(tmp_path / "in-turn")

    def cannot_start(*args, **kwargs):
        raise OSError(11, "Resource temporarily unavailable")   # fork refused

    monkeypatch.setattr(sandbox, "read_ahead", cannot_start)
    events, submissions, replies = run_over_four_emails(tmp_path / "failing")
    for _, name in COUNTIES:
        assert events.index(("sandbox got", name)) > events.index(("processing", name))
    assert submissions == in_turn_submissions
    assert replies == in_turn_replies


def test_ctrl_c_reads_nothing_ahead_and_leaves_nothing_read_ahead(tmp_path, monkeypatch):
    real_judge, judged = process.judge_attachments, []

    def judge_attachments(*args, **kwargs):
        judged.append(1)
        if len(judged) == 2:     # Ctrl-C while 李四's email is in hand, before its form is read
            raise KeyboardInterrupt
        return real_judge(*args, **kwargs)

    monkeypatch.setattr(process, "judge_attachments", judge_attachments)
    events = []
    with pytest.raises(KeyboardInterrupt):
        run_over_four_emails(tmp_path / "interrupted", events)
    assert ("processing", "李四") in events and ("processed", "李四") not in events
    # 李四's form was read ahead while 张三's email was stored; 王五's is not read at all.
    assert [e for e in events if e[0] == "sandbox got"] == [("sandbox got", "张三"), ("sandbox got", "李四")]
    assert process._ahead is None
