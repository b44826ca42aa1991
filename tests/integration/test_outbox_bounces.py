"""A bounce of one of our replies: the reply becomes undeliverable with the remote server's
answer, the county's address is flagged for the digest, and the bounce is never answered."""
import datetime as dt
import email
from email import policy
from email.message import EmailMessage
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import pytest

from pipeline import sample_mail, samples
from pipeline.process import process_message
from pipeline.settings import load_settings
from store.repository import Store
from tests.configs import MAILBOX, write_config

T0 = dt.datetime(2022, 7, 20, 2, 0, tzinfo=dt.timezone.utc)
LATER = T0 + dt.timedelta(minutes=7)


@pytest.fixture
def county_answered(tmp_path):
    """荷塘区 sent a form; intake queued its reply and sent it. Yields (store, settings, reply)."""
    settings = load_settings(write_config(tmp_path))
    store = Store(settings.store.path, settings.store.files)
    raw = sample_mail.foxmail_email("hetang@example.cn", MAILBOX, "荷塘区推荐表",
                                    [("张三.docx", samples.build_form_docx(samples.SAMPLE_CANDIDATE))],
                                    message_id="<f1@example.cn>")
    with store.transaction():
        process_message(raw, T0, store, settings, T0)
    [reply] = store.outbox.all()
    with store.transaction():
        store.outbox.update(reply["reply_id"], status="sent", sent_at=T0.isoformat())
    yield store, settings, store.outbox.get(reply["reply_id"])
    store.close()


def take(store, settings, raw: bytes) -> dict:
    with store.transaction():
        return process_message(raw, LATER, store, settings, LATER)


def prose_bounce_163(reply: dict) -> bytes:
    """163's 系统退信: from postmaster, prose in Chinese, our whole reply attached."""
    msg = MIMEMultipart("mixed")
    msg["From"] = "Postmaster@163.com"
    msg["To"] = MAILBOX
    msg["Subject"] = "系统退信"
    msg["Message-ID"] = "<bounce-163@163.com>"
    msg.attach(MIMEText("很抱歉您发送的邮件被退回，以下是该邮件的相关信息：收件人地址不存在 550 User not found", "plain", "utf-8"))
    msg.attach(MIMEMessage(email_of(reply)))
    return msg.as_bytes()


def email_of(reply: dict) -> EmailMessage:
    return email.message_from_string(reply["raw"], policy=policy.default)


def test_a_delivery_status_report_marks_the_reply_undeliverable_and_is_not_answered(county_answered):
    store, settings, reply = county_answered
    dsn = sample_mail.bounce("mx.example.cn", MAILBOX, "hetang@example.cn", reply["reply_id"])
    submission = take(store, settings, dsn)
    assert submission["status"] == "skipped" and submission["reason"] == "bounce"
    [bounced] = store.outbox.undeliverable()
    assert bounced["reply_id"] == reply["reply_id"]
    assert bounced["last_error"] == "550 5.1.1 User unknown"
    assert bounced["flagged_address"] == "hetang@example.cn"
    assert bounced["bounce_id"] == submission["message_id"] and bounced["bounced_at"] == LATER.isoformat()
    assert len(store.outbox.all()) == 1  # no reply to the bounce


def test_163s_prose_bounce_with_our_reply_attached_is_matched(county_answered):
    store, settings, reply = county_answered
    take(store, settings, prose_bounce_163(reply))
    [bounced] = store.outbox.undeliverable()
    assert bounced["flagged_address"] == "hetang@example.cn"
    assert "550 User not found" in bounced["last_error"]
    assert len(store.outbox.all()) == 1


def test_a_bounce_that_only_threads_to_our_reply_is_matched(county_answered):
    store, settings, reply = county_answered
    msg = MIMEText("Delivery failed: mailbox full", "plain", "utf-8")
    msg["From"] = "mailer-daemon@mx.example.cn"
    msg["To"] = MAILBOX
    msg["Subject"] = "Undeliverable"
    msg["In-Reply-To"] = reply["reply_id"]
    take(store, settings, msg.as_bytes())
    [bounced] = store.outbox.undeliverable()
    assert bounced["last_error"] == "Delivery failed: mailbox full"


def test_a_delay_warning_is_not_a_failure(county_answered):
    store, settings, reply = county_answered
    dsn = sample_mail.bounce("mx.example.cn", MAILBOX, "hetang@example.cn", reply["reply_id"])
    take(store, settings, dsn.replace(b"Action: failed", b"Action: delayed"))
    assert store.outbox.undeliverable() == []
    assert store.outbox.get(reply["reply_id"])["status"] == "sent"


def test_a_bounce_of_someone_elses_message_changes_nothing(county_answered):
    store, settings, reply = county_answered
    take(store, settings, sample_mail.bounce("mx.example.cn", MAILBOX, "x@example.cn", "<other@163.com>"))
    assert store.outbox.undeliverable() == []
    assert [r["status"] for r in store.outbox.all()] == ["sent"]
