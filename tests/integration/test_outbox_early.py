"""Replies go out while the pass is still processing the backlog (outbox/early.py), against a
real Dovecot and aiosmtpd: each reply is sent once its message is on disk, its outcome is
recorded as `deliver_pending` records it, a crash between sending and recording leaves the
reply `uncertain` (never sent twice), and the pass's summary counts stay right."""
import datetime as dt
import sys

import pytest

from outbox import early
from outbox.queue import Handover, enqueue, requeue_failed
from outbox.transports import SmtpTransport
from pipeline import poll, sample_mail, samples
from pipeline.settings import load_settings
from store.repository import Store
from tests.configs import MAILBOX, mail_server_config
from tests.replies import reply

TZ = dt.timezone(dt.timedelta(hours=8))
JULY_20 = dt.datetime(2022, 7, 20, 10, 0, tzinfo=TZ)
T0 = dt.datetime(2022, 7, 20, 3, 0, tzinfo=dt.timezone.utc)
COUNTIES = [("hetang@example.cn", "张三"), ("lusong@example.cn", "李四"),
            ("shifeng@example.cn", "王五"), ("tianyuan@example.cn", "赵六")]


def form_email(sender: str, name: str, n: int) -> bytes:
    return sample_mail.foxmail_email(sender, MAILBOX, f"推荐表（{name}）",
                                     [(f"{name}推荐表.docx", samples.build_form_docx({"name": name}))],
                                     message_id=f"<form-{n}@example.cn>")


@pytest.fixture
def backlog(tmp_path, dovecot, imap_account, smtp_server, monkeypatch):
    """`count` county emails waiting in Dovecot; the settings and store of an intake that reads
    them and replies through the test SMTP server."""
    def make(count: int):
        config, env = mail_server_config(tmp_path, dovecot, imap_account, smtp_server.port)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        for n, (sender, name) in enumerate(COUNTIES[:count], 1):
            dovecot.append(*imap_account, form_email(sender, name, n), internaldate=JULY_20)
        settings = load_settings(config)
        store = Store(settings.store.path, settings.store.files)
        stores.append(store)
        return settings, store

    stores = []
    yield make
    for store in stores:
        store.close()


def answered(messages) -> list[str]:
    return [str(m.message["In-Reply-To"]) for m in messages]


def test_replies_reach_the_server_before_the_pass_has_processed_the_backlog(backlog, smtp_server,
                                                                            monkeypatch):
    settings, store = backlog(4)
    monkeypatch.setattr(poll, "GROUP_MESSAGES", 3)   # messages 1-3 are one group commit
    real, seen = poll.process_message, {}

    def process(raw, *args, **kwargs):
        if b"<form-4@example.cn>" in raw:   # the next group: the first group's replies are out
            smtp_server.wait_for(3, timeout=10)
            seen["before the last message"] = answered(smtp_server.messages)
        return real(raw, *args, **kwargs)

    monkeypatch.setattr(poll, "process_message", process)
    report = poll.run_pass(settings, store, lambda: T0)

    assert seen["before the last message"] == [f"<form-{n}@example.cn>" for n in (1, 2, 3)]
    assert report.summary() == ("read 4 new message(s): 4 recorded, 0 skipped, 0 failed; "
                                "replies sent 4, failed 0, waiting 0")
    assert sorted(answered(smtp_server.wait_for(4))) == [f"<form-{n}@example.cn>" for n in (1, 2, 3, 4)]
    replies = store.outbox.all()
    assert [(r["status"], r["attempts"], r["copy"]) for r in replies] == [("sent", 1, "kept")] * 4
    assert not Handover(store.path).active()
    # The next pass sends nothing again.
    assert poll.run_pass(settings, store, lambda: T0).delivery.sent == 0
    assert len(smtp_server.attempts) == 4


def test_a_crash_between_sending_and_recording_leaves_the_reply_uncertain_never_resent(
        backlog, smtp_server, monkeypatch):
    settings, store = backlog(1)
    real_record = early.record_sent

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(early, "record_sent", disk_full)
    with pytest.raises(OSError):
        poll.run_pass(settings, store, lambda: T0)
    [delivered] = smtp_server.wait_for(1)
    assert Handover(store.path).active()          # the marker names the reply the server took
    [reply] = store.outbox.all()
    assert reply["status"] == "pending"           # its outcome never reached the store

    monkeypatch.setattr(early, "record_sent", real_record)
    store.close()
    store = Store(settings.store.path, settings.store.files)   # intake started again
    report = poll.run_pass(settings, store, lambda: T0 + dt.timedelta(minutes=5))
    assert report.summary() == "read 0 new message(s): 0 recorded, 0 skipped, 0 failed; " \
                               "replies sent 0, failed 0, waiting 0"
    assert store.outbox.get(reply["reply_id"])["status"] == "uncertain"
    assert not Handover(store.path).active()
    assert len(smtp_server.attempts) == 1         # not sent twice
    assert requeue_failed(store, T0) == 1         # the operator's call
    assert poll.run_pass(settings, store, lambda: T0 + dt.timedelta(minutes=6)).delivery.sent == 1
    store.close()


def test_an_exception_in_the_pass_records_what_was_sent_and_sends_no_more(backlog, smtp_server,
                                                                          monkeypatch):
    settings, store = backlog(3)
    monkeypatch.setattr(poll, "GROUP_MESSAGES", 2)   # messages 1-2 are one group commit
    real = poll.process_message

    def process(raw, *args, **kwargs):
        if b"<form-3@example.cn>" in raw:
            smtp_server.wait_for(2, timeout=10)
            raise KeyboardInterrupt   # the operator's Ctrl-C, not one message's failure
        return real(raw, *args, **kwargs)

    monkeypatch.setattr(poll, "process_message", process)
    switch = sys.getswitchinterval()
    with pytest.raises(KeyboardInterrupt):
        poll.run_pass(settings, store, lambda: T0)
    assert [r["status"] for r in store.outbox.all()] == ["sent", "sent"]
    assert not Handover(store.path).active()
    assert len(smtp_server.attempts) == 2
    assert sys.getswitchinterval() == switch   # the sending thread's setting ends with it


def test_a_refusal_for_good_during_early_sending_fails_that_reply_and_the_others_go(
        backlog, smtp_server):
    settings, store = backlog(3)
    smtp_server.respond_with(["550 5.1.1 <hetang@example.cn>: mailbox unavailable"])
    report = poll.run_pass(settings, store, lambda: T0)
    assert report.summary() == ("read 3 new message(s): 3 recorded, 0 skipped, 0 failed; "
                                "replies sent 2, failed 1, waiting 0")
    first, second, third = store.outbox.all()
    assert (first["status"], first["attempts"]) == ("failed", 1) and "550" in first["last_error"]
    assert [second["status"], third["status"]] == ["sent", "sent"]
    assert len(smtp_server.attempts) == 3
    assert not Handover(store.path).active()      # a refusal leaves nothing uncertain


def test_a_throttling_answer_during_early_sending_pauses_the_server_as_before(backlog, smtp_server):
    settings, store = backlog(3)
    smtp_server.respond_with(["451 4.7.1 MI:SFQ sending too fast"])
    report = poll.run_pass(settings, store, lambda: T0)
    assert report.summary() == ("read 3 new message(s): 3 recorded, 0 skipped, 0 failed; "
                                "replies sent 0, failed 0, waiting 3")
    assert len(smtp_server.attempts) == 1         # nothing more went to the server
    pause = store.pauses.get(f"127.0.0.1:{smtp_server.port}")
    assert pause and report.delivery.paused_until == pause["until"]
    first, *others = store.outbox.with_status("pending")
    assert first["attempts"] == 1 and "MI:SFQ" in first["last_error"]
    assert first["next_attempt_at"] == pause["until"]
    assert [r["attempts"] for r in others] == [0, 0]
    assert not Handover(store.path).active()


def test_an_unreachable_server_during_early_sending_makes_every_reply_wait(backlog, smtp_server):
    settings, store = backlog(3)
    smtp_server.stop()
    report = poll.run_pass(settings, store, lambda: T0)
    assert report.summary().startswith("read 3 new message(s): 3 recorded, 0 skipped, 0 failed; "
                                       "replies sent 0, failed 0, waiting 3 (SMTP server 127.0.0.1:")
    assert "is unreachable" in report.delivery.error and not report.delivery.fatal
    replies = store.outbox.with_status("pending")
    assert [r["attempts"] for r in replies] == [1, 1, 1]
    assert all(r["next_attempt_at"] > T0.isoformat() for r in replies)
    assert not Handover(store.path).active()      # marked while connecting, cleared: never sent


def test_every_reply_named_by_a_handover_marker_is_recovered_as_uncertain(tmp_path):
    store = Store(tmp_path / "intake.json", tmp_path / "files")
    with store.transaction():
        for n in (1, 2, 3, 4):
            enqueue(store, reply(n), f"<sub-{n}@x>", "reply", T0)
    Handover(store.path).begin("<reply-1@163.com>")   # sent early, not recorded: a kill
    Handover(store.path).begin("<reply-2@163.com>")
    (tmp_path / "intake.json.sending").write_text("<reply-3@163.com>")   # an older intake's marker
    assert Handover(store.path).active("<reply-2@163.com>")
    assert not Handover(store.path).active("<reply-4@163.com>")

    unused = SmtpTransport("127.0.0.1", 1, "none", "", "", "zzdztxhrj@163.com")
    Handover(store.path).recover(store, unused, T0)
    assert [r["status"] for r in store.outbox.all()] == ["uncertain"] * 3 + ["pending"]
    assert not Handover(store.path).active() and not list(tmp_path.glob("intake.json.sending*"))
    store.close()
