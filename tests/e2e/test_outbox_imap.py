"""The outbox on the real path: Dovecot in, aiosmtpd out, `intake poll --once`. Each reply sent
is also kept in the mailbox's Sent folder — the one flagged \\Sent, whatever its name — and a
bounce of a reply marks it undeliverable without being answered."""
import time

import pytest

from pipeline import sample_mail, samples
from tests.cli import intake
from tests.configs import MAIL_RECEIVED, MAILBOX, mail_server_config

JULY_20 = MAIL_RECEIVED


@pytest.fixture
def mail(tmp_path, dovecot, imap_account, smtp_server):
    user, password = imap_account
    config, env = mail_server_config(tmp_path, dovecot, imap_account, smtp_server.port)
    env["COLUMNS"] = "200"

    class Mail:
        def append(self, raw: bytes) -> None:
            dovecot.append(user, password, raw, internaldate=JULY_20)

        def run(self, *args: str):
            result = intake(config, *args, env=env)
            assert result.returncode == 0, result.stderr
            return result

        def folder(self, name: str) -> list:
            import email
            from email import policy
            client = dovecot.client(user, password)
            try:
                client.select_folder(name, readonly=True)
                uids = client.search(["ALL"])
                fetched = client.fetch(uids, [b"BODY.PEEK[]", b"FLAGS"]) if uids else {}
            finally:
                client.logout()
            return [(email.message_from_bytes(d[b"BODY[]"], policy=policy.default), d[b"FLAGS"])
                    for d in fetched.values()]

    m = Mail()
    m.user, m.password = user, password
    return m


def form_email(sender: str, message_id: str) -> bytes:
    return sample_mail.foxmail_email(sender, MAILBOX, "荷塘区信息技术能手推荐表",
                                     [("张三推荐表.docx", samples.build_form_docx(samples.SAMPLE_CANDIDATE))],
                                     message_id=message_id)


def test_the_reply_is_kept_in_the_folder_flagged_sent_not_one_named_like_it(mail, dovecot, smtp_server):
    client = dovecot.client(mail.user, mail.password)
    client.create_folder("已发送")  # a folder with the 163 name but no \Sent flag: not the one
    client.logout()
    mail.append(form_email("hetang@example.cn", "<fox-1@example.cn>"))

    mail.run("poll", "--once")
    [delivered] = smtp_server.wait_for(1)
    [(copy, flags)] = mail.folder("Sent")
    assert copy["Message-ID"] == delivered.message["Message-ID"]
    assert copy["Subject"] == "【已受理】荷塘区 张三 信息技术能手推荐表 〔2022〕荷塘-001 7月20日10:15收到"
    assert copy["In-Reply-To"] == "<fox-1@example.cn>"
    assert b"\\Seen" in flags
    assert mail.folder("已发送") == []
    # intake's one session (it sends ID) read the inbox and kept the copy: no second login
    [ours] = intake_sessions(dovecot, mail.user)
    assert ours.index("SELECT") < ours.index("APPEND") < ours.index("LOGOUT")

    mail.run("poll", "--once")
    time.sleep(0.3)
    assert len(mail.folder("Sent")) == 1 and len(smtp_server.messages) == 1


def test_a_bounce_of_our_reply_marks_it_undeliverable_and_gets_no_reply(mail, smtp_server):
    mail.append(form_email("hetang@example.cn", "<fox-2@example.cn>"))
    mail.run("poll", "--once")
    [reply] = smtp_server.wait_for(1)

    mail.append(sample_mail.bounce("mx.example.cn", MAILBOX, "hetang@example.cn",
                                   reply.message["Message-ID"]))
    result = mail.run("poll", "--once")
    assert "1 skipped" in result.stdout
    time.sleep(0.3)
    assert len(smtp_server.attempts) == 1  # the bounce got no reply

    [line] = [l for l in mail.run("outbox").stdout.splitlines() if "hetang@example.cn" in l]
    assert "undeliverable" in line and "550 5.1.1 User unknown" in line


def test_many_replies_are_kept_in_sent_each_once_in_one_append(mail, dovecot, smtp_server):
    """A backlog's copies go to Sent in one MULTIAPPEND command (Dovecot offers it), each
    reply once, marked read; the next pass adds none."""
    senders = ["hetang@example.cn", "lusong@example.cn", "shifeng@example.cn", "tianyuan@example.cn"]
    for i, sender in enumerate(senders):
        mail.append(form_email(sender, f"<many-{i}@example.cn>"))

    mail.run("poll", "--once")
    delivered = smtp_server.wait_for(len(senders))
    copies = mail.folder("Sent")
    assert sorted(str(c["Message-ID"]) for c, _ in copies) == sorted(
        str(d.message["Message-ID"]) for d in delivered)
    assert sorted(str(c["In-Reply-To"]) for c, _ in copies) == [f"<many-{i}@example.cn>" for i in range(4)]
    assert all(b"\\Seen" in flags for _, flags in copies)
    ours = intake_sessions(dovecot, mail.user)
    assert ours[0].count("APPEND") == 1

    mail.run("poll", "--once")
    time.sleep(0.3)
    assert len(mail.folder("Sent")) == len(senders) and len(smtp_server.messages) == len(senders)


def intake_sessions(dovecot, user: str) -> list:
    """intake's IMAP sessions (it sends ID), once the first has logged out (5 s at most)."""
    deadline = time.monotonic() + 5
    while True:
        ours = [s for s in dovecot.imap_sessions(user) if "ID" in s]
        if (ours and "LOGOUT" in ours[0]) or time.monotonic() > deadline:
            return ours
        time.sleep(0.05)
