"""Two robots must never loop: a county mailbox whose auto-responder has no Auto-Submitted header
answers every reply intake sends. Each pass is the real one (Maildir in, Maildir out, the store),
with a clock the test moves forward; the robot reads what intake sent and writes its answers
back into the inbox. Intake must stop within its caps."""
import datetime as dt
import itertools
import os
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import pytest

from pipeline import sample_mail, samples
from pipeline.poll import run_pass
from pipeline.settings import load_settings
from store.repository import Store
from tests.configs import MAILBOX, write_config

TZ = dt.timezone(dt.timedelta(hours=8))
START = dt.datetime(2022, 7, 20, 9, 0, tzinfo=TZ)
FORM = samples.build_form_docx(samples.SAMPLE_CANDIDATE)


class Mail:
    """The inbox and sent Maildirs of one test, with a clock."""

    def __init__(self, tmp_path: Path):
        self.settings = load_settings(write_config(tmp_path))
        self.store = Store(self.settings.store.path, self.settings.store.files)
        self.inbox, self.sent = tmp_path / "inbox", tmp_path / "sent"
        for sub in ("tmp", "new", "cur"):
            (self.inbox / sub).mkdir(parents=True, exist_ok=True)
        self.now = START
        self._seen: set[str] = set()
        self._names = itertools.count()

    def receive(self, raw: bytes) -> None:
        target = self.inbox / "new" / f"{next(self._names):04d}.eml"
        target.write_bytes(raw)
        os.utime(target, (self.now.timestamp(), self.now.timestamp()))

    def run_pass(self) -> list[EmailMessage]:
        """One pass; returns the replies it sent."""
        run_pass(self.settings, self.store, clock=lambda: self.now)
        new = []
        for path in sorted((self.sent / "new").glob("*.eml")) if (self.sent / "new").exists() else []:
            if path.name not in self._seen:
                self._seen.add(path.name)
                new.append(BytesParser(policy=policy.default).parsebytes(path.read_bytes()))
        return new


@pytest.fixture
def mail(tmp_path):
    m = Mail(tmp_path)
    yield m
    m.store.close()


def robot_answer(reply: EmailMessage, sender: str, threaded: bool = True,
                 attach_form: bool = False) -> bytes:
    """What a careless auto-responder sends: no Auto-Submitted, no Precedence, just an answer."""
    files = [("推荐表.docx", FORM)] if attach_form else []
    headers = {}
    if threaded:
        headers = {"In-Reply-To": reply["Message-ID"],
                   "References": f"{reply.get('References', '')} {reply['Message-ID']}".strip()}
    return sample_mail.foxmail_email(sender, MAILBOX, f"Re: {reply['Subject']}", files,
                                     body="您好，您的邮件已收到，我们会尽快处理。", extra_headers=headers)


def converse(mail: Mail, answer, rounds: int = 40) -> list[EmailMessage]:
    """Run passes, the robot answering every reply, until intake stops replying."""
    replies = []
    for _ in range(rounds):
        new = mail.run_pass()
        if not new:
            break
        replies += new
        for reply in new:
            mail.receive(answer(reply))
        mail.now += dt.timedelta(minutes=1)
    else:
        pytest.fail(f"intake was still replying after {rounds} passes")
    return replies


def start(mail: Mail) -> None:
    mail.receive(sample_mail.foxmail_email("hetang@example.cn", MAILBOX, "荷塘区推荐表",
                                           [("张三推荐表.docx", FORM)], message_id="<ht-1@example.cn>"))


def test_a_robot_answering_every_reply_from_a_new_address_gets_two_replies(mail):
    """Each answer comes from an address never seen before and carries a form, so neither the
    sender checks nor the per-sender cap can stop it: the per-thread rule does."""
    start(mail)
    addresses = (f"robot{n}@autoreply.example.cn" for n in itertools.count(1))
    replies = converse(mail, lambda r: robot_answer(r, next(addresses), attach_form=True))
    assert len(replies) == 2  # the county's form, then the first answer to our reply
    assert [r["X-Intake-Status"] for r in replies] == ["accepted", "rejected"]
    held = [s for s in mail.store.submissions.all() if s.get("reply") == "skipped"]
    assert len(held) == 1 and held[0]["reason"].startswith("thread cap")


def test_a_robot_at_the_county_address_gets_no_answer_to_its_empty_answers(mail):
    start(mail)
    replies = converse(mail, lambda r: robot_answer(r, "hetang@example.cn"))
    assert len(replies) == 1   # the receipt; the robot's "已收到" asks nothing and carries nothing
    reasons = [s["reason"] for s in mail.store.submissions.all()]
    assert reasons.count("answer to our reply without documents") == 1


def test_a_robot_at_the_county_address_sending_forms_gets_two_replies(mail):
    start(mail)
    replies = converse(mail, lambda r: robot_answer(r, "hetang@example.cn", attach_form=True))
    assert len(replies) == 2
    assert len(mail.store.submissions.all()) == 3  # every message recorded, the third unanswered


def test_a_robot_that_drops_the_threading_headers_is_stopped_by_the_hourly_cap(mail):
    start(mail)
    replies = converse(mail, lambda r: robot_answer(r, "hetang@example.cn", threaded=False))
    assert len(replies) == mail.settings.smtp.per_sender_hourly_cap == 20
    [held] = [s for s in mail.store.submissions.all() if s.get("reply") == "skipped"]
    assert held["reason"].startswith("reply cap: 20 replies to hetang@example.cn")

    # An hour after the flood began, the county's next real form is answered again.
    mail.now = START + dt.timedelta(minutes=61)
    mail.receive(sample_mail.foxmail_email("hetang@example.cn", MAILBOX, "荷塘区推荐表（更正）",
                                           [("张三推荐表.docx", FORM)]))
    [answer] = mail.run_pass()
    assert answer["X-Intake-Status"] == "accepted"


def test_a_robot_re_attaching_the_same_form_unthreaded_gets_two_replies(mail):
    """No threading headers, the county's own address, the same form each time: neither the
    thread rule nor (for 20 rounds) the hourly cap stops it; the repeated documents do."""
    start(mail)
    replies = converse(mail, lambda r: robot_answer(r, "hetang@example.cn", threaded=False, attach_form=True))
    assert len(replies) == 2
    first, second = (r.get_body(("plain",)).get_content() for r in replies)
    assert "完全相同" not in first
    assert "与贵单位2022年7月20日 09:00发送的附件完全相同" in second
    [held] = [s for s in mail.store.submissions.all() if s.get("reply") == "skipped"]
    assert held["reason"].startswith("repeat") and held["status"] == "accepted"

    # A clerk who sends the same form again the next day hears back.
    mail.now = START + dt.timedelta(days=1, minutes=5)
    mail.receive(sample_mail.foxmail_email("hetang@example.cn", MAILBOX, "荷塘区推荐表",
                                           [("张三推荐表.docx", FORM)]))
    [answer] = mail.run_pass()
    assert answer["X-Intake-Status"] == "accepted"
