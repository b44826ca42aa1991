"""The outbox against a real SMTP server (aiosmtpd) with a clock the test controls: backoff with
jitter on 4xx and unreachable servers, 163's throttling answers pause all sending to the server
(recorded in the store, so the next pass honours it), 163's spam refusals wait 15 minutes and
more, other 5xx fail for good, and a reply is delivered once however many passes it takes."""
import datetime as dt
import random

import pytest

from outbox.queue import RetryPolicy, deliver_pending, enqueue, requeue_failed
from outbox.transports import SmtpTransport
from pipeline import poll
from pipeline.digest import send_digest
from pipeline.settings import load_settings
from pipeline.sources import source_for
from store import storage
from store.repository import Store
from tests.configs import write_config
from tests.replies import reply

T0 = dt.datetime(2022, 7, 20, 2, 0, tzinfo=dt.timezone.utc)
POLICY = RetryPolicy(base_seconds=60, max_seconds=3600, give_up_hours=24, batch_size=10)


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "intake.json", tmp_path / "files")
    yield s
    s.close()


def queue(store, *numbers: int, at: dt.datetime = T0) -> None:
    with store.transaction():
        for n in numbers:
            enqueue(store, reply(n), f"<sub-{n}@example.cn>", "reply", at)


def transport(server) -> SmtpTransport:
    return SmtpTransport("127.0.0.1", server.port, "none", "intake@example.cn", "smtp-secret",
                         "zzdztxhrj@163.com", None, timeout=5)


def deliver(store, server, at: dt.datetime, **kwargs):
    return deliver_pending(store, transport(server), at, POLICY, random.Random(7), **kwargs)


class Folder:
    """An IMAP mailbox's Sent folder (outbox.queue.SentFolder) whose appends the test scripts:
    `append(raw)` for one copy, `append_all(raws)` for MULTIAPPEND when the server offers it."""

    keeps_sent_copies = True

    def __init__(self, append, append_all=None):
        self.append_sent = append
        if append_all is not None:
            self.append_sent_all = append_all


def test_421_twice_then_accepted_is_one_delivery_after_backing_off(store, smtp_server):
    queue(store, 1)
    smtp_server.respond_with(["421 4.7.0 HL:ICC too many connections", "421 4.7.0 HL:ICC", None])

    first = deliver(store, smtp_server, T0)
    assert (first.sent, first.waiting) == (0, 1) and first.paused_until and not first.error
    [waiting] = store.outbox.with_status("pending")
    assert waiting["attempts"] == 1 and "421" in waiting["last_error"]
    wait_1 = dt.datetime.fromisoformat(waiting["next_attempt_at"]) - T0
    assert dt.timedelta(seconds=30) <= wait_1 <= dt.timedelta(seconds=60)

    # Not due yet: nothing is tried, the server sees no new attempt.
    assert deliver(store, smtp_server, T0 + dt.timedelta(seconds=20)).sent == 0
    assert len(smtp_server.attempts) == 1

    second_at = T0 + dt.timedelta(seconds=61)
    assert deliver(store, smtp_server, second_at).sent == 0
    [waiting] = store.outbox.with_status("pending")
    wait_2 = dt.datetime.fromisoformat(waiting["next_attempt_at"]) - second_at
    assert dt.timedelta(seconds=60) <= wait_2 <= dt.timedelta(seconds=120)  # doubled

    third_at = second_at + dt.timedelta(seconds=121)
    assert deliver(store, smtp_server, third_at).sent == 1
    for minutes in (5, 60, 600):
        assert deliver(store, smtp_server, third_at + dt.timedelta(minutes=minutes)).sent == 0
    assert [a.reply for a in smtp_server.attempts] == ["421 4.7.0 HL:ICC too many connections",
                                                       "421 4.7.0 HL:ICC", "250 OK"]
    [got] = smtp_server.wait_for(1)
    assert got.message["Message-ID"] == "<reply-1@163.com>"
    [sent] = store.outbox.with_status("sent")
    assert sent["attempts"] == 3 and sent["last_error"] == ""


@pytest.mark.parametrize("answer", ["451 4.7.1 MI:SFQ 发信人在15分钟内的发信数量超过限制",
                                    "450 4.7.1 MI:DMC 当前连接发送的邮件数量超出限制",
                                    "421 4.7.0 HL:ICC"])
def test_a_throttling_answer_stops_the_batch_and_pauses_the_queue(store, smtp_server, answer):
    queue(store, 1, 2, 3)
    smtp_server.respond_with([answer])
    report = deliver(store, smtp_server, T0)
    assert report.sent == 0 and report.waiting == 3
    assert len(smtp_server.attempts) == 1  # the other two were not tried against a throttling server
    pending = store.outbox.with_status("pending")
    tried = [r for r in pending if r["attempts"] == 1]
    assert len(tried) == 1 and [r["attempts"] for r in pending].count(0) == 2  # the others not counted
    resume = tried[0]["next_attempt_at"]
    # The pause is the server's, kept in the store: every later pass (a new transport, another
    # worker) waits as long, and the report says until when.
    [pause] = store.pauses.all()
    assert pause["until"] == resume == report.paused_until and answer in pause["reason"]
    for seconds in (1, 29):
        assert deliver(store, smtp_server, T0 + dt.timedelta(seconds=seconds)).paused_until == resume
    assert len(smtp_server.attempts) == 1
    later = dt.datetime.fromisoformat(resume) + dt.timedelta(seconds=1)
    assert deliver(store, smtp_server, later).sent == 3
    assert len(smtp_server.wait_for(3)) == 3


def test_554_dt_spm_waits_15_minutes_and_more_then_goes_once_with_its_subject(store, smtp_server):
    queue(store, 1)
    smtp_server.respond_with(["554 DT:SPM 163 smtp14,EsCowAB: Mail rejected as spam",
                              "554 DT:SPM 163 smtp14,EsCowAB: Mail rejected as spam", None])
    report = deliver(store, smtp_server, T0)
    assert (report.failed, report.waiting) == (0, 1)
    [waiting] = store.outbox.with_status("pending")
    first_wait = dt.datetime.fromisoformat(waiting["next_attempt_at"]) - T0
    assert dt.timedelta(minutes=15) <= first_wait <= dt.timedelta(minutes=18)
    assert deliver(store, smtp_server, T0 + dt.timedelta(minutes=14)).sent == 0
    assert len(smtp_server.attempts) == 1

    second_at = T0 + first_wait + dt.timedelta(seconds=1)
    assert deliver(store, smtp_server, second_at).sent == 0
    [waiting] = store.outbox.with_status("pending")
    second_wait = dt.datetime.fromisoformat(waiting["next_attempt_at"]) - second_at
    assert dt.timedelta(minutes=30) <= second_wait <= dt.timedelta(minutes=36)   # growing

    assert deliver(store, smtp_server, second_at + second_wait + dt.timedelta(seconds=1)).sent == 1
    [got] = smtp_server.wait_for(1)
    assert len({a.message["Subject"] for a in smtp_server.attempts}) == 1   # the same unique subject
    assert got.message["Message-ID"] == "<reply-1@163.com>"


def test_a_spam_refusal_that_lasts_is_failed_after_the_give_up_window(store, smtp_server):
    queue(store, 1)
    smtp_server.respond_with(["554 DT:SUM 163 smtp14: envelope and header sender mismatch"] * 20)
    at = T0
    while store.outbox.with_status("pending"):
        deliver(store, smtp_server, at)
        at += dt.timedelta(hours=2)
    [failed] = store.outbox.with_status("failed")
    assert failed["last_error"].startswith("gave up after 24 h: 554 DT:SUM")
    assert 10 <= len(smtp_server.attempts) <= 14 and smtp_server.messages == []


@pytest.mark.parametrize("answer", ["550 5.1.1 User unknown", "553 Mail from must equal authorized user",
                                    "554 5.7.1 Message rejected: content not allowed"])
def test_other_5xx_are_failed_at_once_and_never_retried(store, smtp_server, answer):
    queue(store, 1)
    smtp_server.respond_with([answer])
    report = deliver(store, smtp_server, T0)
    assert report.failed == 1 and report.waiting == 0
    [failed] = store.outbox.with_status("failed")
    assert failed["last_error"] == answer
    for hours in (1, 5, 48):
        deliver(store, smtp_server, T0 + dt.timedelta(hours=hours))
    assert len(smtp_server.attempts) == 1 and smtp_server.messages == []


def test_retry_requeues_a_failed_reply_which_then_goes_once(store, smtp_server):
    queue(store, 1)
    smtp_server.respond_with(["550 5.1.1 User unknown"])
    deliver(store, smtp_server, T0)
    later = T0 + dt.timedelta(hours=3)
    assert requeue_failed(store, later) == 1
    assert deliver(store, smtp_server, later).sent == 1
    assert deliver(store, smtp_server, later + dt.timedelta(hours=1)).sent == 0
    assert len(smtp_server.wait_for(1)) == 1


def test_an_unreachable_server_backs_off_and_the_replies_go_later(store, smtp_server):
    queue(store, 1, 2)
    smtp_server.stop()
    report = deliver(store, smtp_server, T0)
    assert "unreachable" in report.error and not report.fatal and report.waiting == 2
    assert all(r["attempts"] == 1 and "unreachable" in r["last_error"]
               for r in store.outbox.with_status("pending"))
    smtp_server.start()
    assert deliver(store, smtp_server, T0 + dt.timedelta(seconds=10)).sent == 0  # still backing off
    assert deliver(store, smtp_server, T0 + dt.timedelta(minutes=2)).sent == 2
    assert deliver(store, smtp_server, T0 + dt.timedelta(minutes=30)).sent == 0
    assert len(smtp_server.wait_for(2)) == 2


def test_a_refused_login_leaves_the_replies_untouched_for_the_operator(store, smtp_server):
    queue(store, 1)
    bad = SmtpTransport("127.0.0.1", smtp_server.port, "none", "intake@example.cn", "wrong",
                        "zzdztxhrj@163.com", None, timeout=5)
    report = deliver_pending(store, bad, T0, POLICY)
    assert report.fatal and "refused the login" in report.error
    [waiting] = store.outbox.with_status("pending")
    assert waiting["attempts"] == 0 and waiting["next_attempt_at"] == T0.isoformat()


def test_a_reply_that_keeps_failing_temporarily_is_given_up_after_a_day(store, smtp_server):
    queue(store, 1)
    smtp_server.respond_with(["451 4.3.0 try again later"])
    deliver(store, smtp_server, T0 + dt.timedelta(hours=25))
    [failed] = store.outbox.with_status("failed")
    assert failed["last_error"].startswith("gave up after 24 h: 451")


def test_one_connection_carries_at_most_a_small_batch(store, smtp_server):
    queue(store, *range(1, 13))
    report = deliver(store, smtp_server, T0)
    assert (report.sent, report.waiting) == (10, 2)
    assert deliver(store, smtp_server, T0 + dt.timedelta(seconds=60)).sent == 2
    assert len({m.message["Message-ID"] for m in smtp_server.wait_for(12)}) == 12


def test_the_backoff_grows_to_its_ceiling_with_jitter():
    rng = random.Random(1)
    for attempts, ceiling in ((1, 60), (2, 120), (3, 240), (7, 3600), (20, 3600)):
        delays = {POLICY.delay(attempts, rng).total_seconds() for _ in range(20)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jitter: replies deferred together come back apart


def test_a_failing_sent_copy_never_costs_the_delivery(store, smtp_server, caplog):
    queue(store, 1)
    copies = []

    def broken_copy(raw: bytes):
        copies.append(raw)
        raise OSError("IMAP connection reset")

    assert deliver(store, smtp_server, T0, sent=Folder(broken_copy)).sent == 1
    assert copies and b"<reply-1@163.com>" in copies[0]
    assert store.outbox.with_status("sent")
    assert "no copy kept" in caplog.text
    assert deliver(store, smtp_server, T0 + dt.timedelta(hours=1)).sent == 0


def test_a_failed_copy_is_tried_again_on_the_next_pass_and_kept_once(store, smtp_server, caplog):
    queue(store, 1, 2)
    kept, broken = [], [True]

    def copy(raw: bytes) -> bool:
        if broken[0]:
            raise OSError("IMAP connection reset")
        kept.append(raw)
        return True

    assert deliver(store, smtp_server, T0, sent=Folder(copy)).sent == 2
    assert kept == [] and "tried again on the next pass" in caplog.text
    assert all(r["copy"] == "due" for r in store.outbox.with_status("sent"))
    broken[0] = False
    assert deliver(store, smtp_server, T0 + dt.timedelta(minutes=1), sent=Folder(copy)).sent == 0
    assert sorted(b"<reply-1@163.com>" in raw for raw in kept) == [False, True]
    assert deliver(store, smtp_server, T0 + dt.timedelta(minutes=2), sent=Folder(copy)).sent == 0
    assert len(kept) == 2 and len(smtp_server.messages) == 2   # each once, nothing sent twice


def test_what_leaves_without_a_mailbox_session_is_copied_on_the_next_pass(store, smtp_server):
    """`intake digest` sends the due replies with the digest but has no IMAP session: the copies
    are recorded as due and the next pass keeps them."""
    queue(store, 1)
    assert deliver(store, smtp_server, T0).sent == 1     # no Sent folder: the digest command
    kept = []
    deliver(store, smtp_server, T0 + dt.timedelta(minutes=5), sent=Folder(lambda raw: kept.append(raw) or True))
    assert len(kept) == 1 and b"<reply-1@163.com>" in kept[0]
    [sent] = store.outbox.with_status("sent")
    assert sent["copy"] == "kept"


def test_copies_kept_together_are_all_or_none_and_each_kept_once(store, smtp_server, caplog):
    """With MULTIAPPEND (append_sent_all) the copies go in one command: a failed one leaves every
    copy due, the next pass keeps each of them once, and none goes one by one."""
    queue(store, 1, 2, 3)
    kept, batches, broken = [], [], [True]

    def copy_all(raws: list[bytes]) -> bool:
        batches.append(len(raws))
        if broken[0]:
            raise OSError("IMAP connection reset")
        kept.extend(raws)
        return True

    def one_by_one(raw: bytes) -> bool:
        raise AssertionError("a copy went one by one beside MULTIAPPEND")

    assert deliver(store, smtp_server, T0, sent=Folder(one_by_one, copy_all)).sent == 3
    assert batches == [3] and kept == [] and "tried again on the next pass" in caplog.text
    assert [r["copy"] for r in store.outbox.with_status("sent")] == ["due"] * 3
    broken[0] = False
    deliver(store, smtp_server, T0 + dt.timedelta(minutes=1), sent=Folder(one_by_one, copy_all))
    deliver(store, smtp_server, T0 + dt.timedelta(minutes=2), sent=Folder(one_by_one, copy_all))
    assert batches == [3, 3] and len(kept) == 3
    assert sorted(sum(f"<reply-{n}@163.com>".encode() in raw for raw in kept) for n in (1, 2, 3)) == [1, 1, 1]
    assert all(r["copy"] == "kept" for r in store.outbox.with_status("sent"))


def test_without_multiappend_the_copies_go_one_by_one(store, smtp_server):
    queue(store, 1, 2)
    kept = []
    deliver(store, smtp_server, T0, sent=Folder(lambda raw: kept.append(raw) or True,
                                                lambda raws: None))   # no MULTIAPPEND (163)
    assert len(kept) == 2 and all(r["copy"] == "kept" for r in store.outbox.with_status("sent"))


def test_copies_a_mailbox_does_not_keep_are_recorded_in_one_commit(store, smtp_server, monkeypatch):
    """Maildir keeps no Sent copies: nothing is appended, so a pass does not pay a durable commit
    (an fsync) for each reply to say so; a copy that is kept is still recorded at once."""
    queue(store, 1, 2, 3, 4)
    fsyncs = []
    real_fsync = storage.os.fsync
    monkeypatch.setattr(storage.os, "fsync", lambda fd: (fsyncs.append(fd), real_fsync(fd)))

    def copy(raw: bytes) -> bool:   # the mailbox keeps one of them
        fsyncs.append("copying")
        return b"<reply-3@163.com>" in raw

    deliver(store, smtp_server, T0, sent=Folder(copy))
    recorded = {r["reply_id"]: r["copy"] for r in store.outbox.with_status("sent")}
    assert sorted(recorded.values()) == ["kept", "none", "none", "none"]
    copying = fsyncs[fsyncs.index("copying"):]
    # The kept copy's commit, then one for the three others (one each before).
    assert len([f for f in copying if f != "copying"]) == 2


def test_a_pass_over_a_maildir_records_the_copies_due_without_reading_a_body(store, smtp_server, tmp_path):
    """Maildir says up front that it keeps no Sent copies: the pass records every copy due as
    "none" without reading the replies' bodies back from the file store (here: gone)."""
    queue(store, 1, 2, 3)
    assert deliver(store, smtp_server, T0).sent == 3      # no mailbox session: the copies wait
    for sent in store.outbox.with_status("sent"):
        store.outbox.files.path_of(sent["raw_sha256"]).unlink()
    settings = load_settings(write_config(tmp_path))     # Maildir in and out, nothing new
    later = T0 + dt.timedelta(minutes=5)
    poll.run_pass(settings, store, lambda: later)
    recorded = [(r["copy"], r.get("copied_at")) for r in store.outbox.with_status("sent")]
    assert recorded == [("none", later.isoformat())] * 3


def test_the_digest_over_a_maildir_records_the_copies_due_without_reading_a_body(store, smtp_server,
                                                                                  tmp_path):
    """The worker's digest (and reminders) go out through the same Maildir session: the copies
    due, the digest's own among them, are recorded as "none" without reading a reply's body."""
    queue(store, 1, 2, 3)
    assert deliver(store, smtp_server, T0).sent == 3      # no mailbox session: the copies wait
    for sent in store.outbox.with_status("sent"):
        store.outbox.files.path_of(sent["raw_sha256"]).unlink()
    settings = load_settings(write_config(tmp_path))     # Maildir in and out
    later = T0 + dt.timedelta(minutes=5)
    with source_for(settings.mailbox) as maildir:
        outcome = send_digest(settings, store, dt.date(2022, 7, 20), later, sent=maildir)
    assert outcome.queued and outcome.status == "sent"
    recorded = [(r["copy"], r.get("copied_at")) for r in store.outbox.with_status("sent")]
    assert recorded == [("none", later.isoformat())] * 4
