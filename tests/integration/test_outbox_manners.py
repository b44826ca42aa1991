"""Manners (RFC 3834): every kind of message that never gets an automatic reply, the headers our
replies carry, and the caps — per sender per hour, per thread per window — as a county clerk
would meet them."""
import datetime as dt
import email
from email import policy

import pytest

from outbox.manners import ReplyLimits, no_reply_reason, reply_allowed
from pipeline import sample_mail, samples
from pipeline.process import process_message
from pipeline.settings import load_settings
from store.repository import Store
from tests.configs import MAILBOX, write_config

OWN = {"zzdztxhrj@163.com"}
T0 = dt.datetime(2022, 7, 20, 2, 0, tzinfo=dt.timezone.utc)
LIMITS = ReplyLimits(per_sender_hourly_cap=20, thread_window_minutes=60)


def reason(headers: str, sender: str = "hetang@example.cn", content_type: str = "text/plain"):
    raw = (f"From: {sender}\nTo: zzdztxhrj@163.com\nSubject: x\nContent-Type: {content_type}\n"
           f"{headers}\nbody\n").encode()
    return no_reply_reason(email.message_from_bytes(raw), sender.lower(), OWN)


@pytest.mark.parametrize("headers, sender, expected", [
    ("Auto-Submitted: auto-replied", "hetang@example.cn", "auto-reply"),
    ("Auto-Submitted: auto-generated", "hetang@example.cn", "auto-reply"),
    ("Auto-Submitted: auto-notified", "hetang@example.cn", "auto-reply"),
    ("X-Autoreply: yes", "hetang@example.cn", "auto-reply"),
    ("Precedence: bulk", "hetang@example.cn", "bulk"),
    ("Precedence: junk", "hetang@example.cn", "bulk"),
    ("Precedence: list", "hetang@example.cn", "list"),
    ("List-Id: <notice.example.cn>", "hetang@example.cn", "list"),
    ("List-Unsubscribe: <mailto:leave@example.cn>", "hetang@example.cn", "list"),
    ("List-Post: <mailto:all@example.cn>", "hetang@example.cn", "list"),
    ("List-Archive: <https://lists.example.cn/>", "hetang@example.cn", "list"),
    ("List-Owner: <mailto:owner@example.cn>", "hetang@example.cn", "list"),
    ("Return-Path: <>", "hetang@example.cn", "bounce"),
    ("", "MAILER-DAEMON@mx.example.cn", "bounce"),
    ("", "postmaster@example.cn", "bounce"),
    ("", "noreply@example.cn", "bounce"),
    ("", "no-reply@example.cn", "bounce"),
    ("", "do-not-reply@example.cn", "bounce"),
    ("", "zzdztxhrj@163.com", "own address"),
    ("X-Intake-Status: needs-correction", "hetang@example.cn", "own address"),
    ("Auto-Submitted: no", "hetang@example.cn", None),
    ("", "hetang@example.cn", None),
])
def test_who_never_gets_an_automatic_reply(headers, sender, expected):
    assert reason(headers, sender) == expected


def test_a_delivery_report_is_a_bounce_whoever_sends_it():
    assert reason("", content_type="multipart/report; report-type=delivery-status; boundary=b") == "bounce"
    raw = sample_mail.bounce("mx.example.cn", MAILBOX, "hetang@example.cn", "<r@163.com>")
    relayed = raw.replace(b"From: MAILER-DAEMON@mx.example.cn", b"From: hetang@example.cn")
    assert no_reply_reason(email.message_from_bytes(relayed), "hetang@example.cn", OWN) == "bounce"


def history(*entries):
    """Outbox records: (reply_id, to, minutes after T0, the ids its email referred to)."""
    return [{"reply_id": rid, "to": to, "created_at": (T0 + dt.timedelta(minutes=m)).isoformat(),
             "thread": thread} for rid, to, m, thread in entries]


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def test_a_fresh_form_ten_minutes_after_another_is_answered():
    past = history(("<r1@163.com>", "hetang@example.cn", 0, ["<f1@example.cn>"]))
    assert reply_allowed(past, "hetang@example.cn", [], at(10), LIMITS) is None


def test_a_clerk_answering_our_correction_request_with_the_form_is_answered():
    past = history(("<r1@163.com>", "hetang@example.cn", 0, ["<f1@example.cn>"]))
    assert reply_allowed(past, "hetang@example.cn", ["<r1@163.com>", "<f1@example.cn>"], at(5), LIMITS) is None


def test_a_second_answer_to_our_replies_in_one_thread_within_the_window_is_not():
    past = history(("<r1@163.com>", "hetang@example.cn", 0, ["<f1@example.cn>"]),
                   ("<r2@163.com>", "hetang@example.cn", 5, ["<r1@163.com>", "<m2@example.cn>"]))
    # threaded fully, or by In-Reply-To alone, or answering the first reply again
    for refs in (["<f1@example.cn>", "<r1@163.com>", "<r2@163.com>"], ["<r2@163.com>"], ["<r1@163.com>"]):
        held = reply_allowed(past, "hetang@example.cn", refs, at(20), LIMITS)
        assert held and held.startswith("thread cap")
    # from another address too: the thread, not the sender, is what loops
    assert reply_allowed(past, "robot@example.org", ["<r2@163.com>"], at(20), LIMITS)
    # once the window has passed, the thread is answered again
    assert reply_allowed(past, "hetang@example.cn", ["<r2@163.com>"], at(66), LIMITS) is None


def test_the_per_sender_cap_counts_one_hour_and_one_address():
    past = history(*[(f"<r{n}@163.com>", "HeTang@example.cn", n, [f"<f{n}@example.cn>"]) for n in range(19)])
    assert reply_allowed(past, "hetang@example.cn", [], at(30), LIMITS) is None
    past += history(("<r19@163.com>", "hetang@example.cn", 19, ["<f19@example.cn>"]))
    held = reply_allowed(past, "hetang@example.cn", [], at(30), LIMITS)
    assert held == "reply cap: 20 replies to hetang@example.cn in the last hour (limit 20)"
    assert reply_allowed(past, "lusong@example.cn", [], at(30), LIMITS) is None
    assert reply_allowed(past, "hetang@example.cn", [], at(61), LIMITS) is None  # r0 is over an hour old


def test_the_caps_come_from_the_configuration(tmp_path):
    config = write_config(tmp_path, smtp={"transport": "maildir", "from_address": MAILBOX,
                                          "path": str(tmp_path / "sent"), "per_sender_hourly_cap": 2,
                                          "thread_window_minutes": 5})
    smtp = load_settings(config).smtp
    assert (smtp.per_sender_hourly_cap, smtp.thread_window_minutes) == (2, 5.0)
    past = history(("<r1@163.com>", "hetang@example.cn", 0, []), ("<r2@163.com>", "hetang@example.cn", 1, []))
    assert reply_allowed(past, "hetang@example.cn", [], at(2), smtp).startswith("reply cap")


def test_a_cap_of_zero_is_one_line_naming_the_key(tmp_path):
    from pipeline.errors import ConfigError
    config = write_config(tmp_path, smtp={"transport": "maildir", "from_address": MAILBOX,
                                          "path": str(tmp_path / "sent"), "per_sender_hourly_cap": 0})
    with pytest.raises(ConfigError, match="smtp.per_sender_hourly_cap must be above zero"):
        load_settings(config)


def test_a_capped_email_is_recorded_and_judged_but_not_answered(tmp_path):
    config = write_config(tmp_path, smtp={"transport": "maildir", "from_address": MAILBOX,
                                          "path": str(tmp_path / "sent"), "per_sender_hourly_cap": 1})
    settings = load_settings(config)
    store = Store(settings.store.path, settings.store.files)
    form = samples.build_form_docx(samples.SAMPLE_CANDIDATE)
    for n in (1, 2):
        raw = sample_mail.foxmail_email("hetang@example.cn", MAILBOX, "荷塘区推荐表", [("张三.docx", form)],
                                        message_id=f"<f{n}@example.cn>")
        with store.transaction():
            process_message(raw, at(n), store, settings, at(n))
    first, second = store.submissions.get("<f1@example.cn>"), store.submissions.get("<f2@example.cn>")
    assert first.get("reply") is None and second["reply"] == "skipped"
    assert second["status"] == "accepted" and second["reason"].startswith("reply cap")
    assert len(store.candidates.get("荷塘区", "张三")["versions"]) == 2
    assert len(store.outbox.all()) == 1
    store.close()


def test_our_replies_ask_other_robots_not_to_answer(tmp_path):
    settings = load_settings(write_config(tmp_path))
    store = Store(settings.store.path, settings.store.files)
    raw = sample_mail.foxmail_email("hetang@example.cn", MAILBOX, "荷塘区推荐表",
                                    [("张三.docx", samples.build_form_docx(samples.SAMPLE_CANDIDATE))])
    with store.transaction():
        process_message(raw, T0, store, settings, T0)
    [queued] = store.outbox.all()
    msg = email.message_from_string(queued["raw"], policy=policy.default)
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["X-Auto-Response-Suppress"] == "All"
    assert msg["Subject"] == "【已受理】荷塘区 张三 信息技术能手推荐表 〔2022〕荷塘-001 7月20日10:00收到"
    store.close()
