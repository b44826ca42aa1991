"""A message over `[mailbox] max_message_mb` is not read, only its headers: the county gets one
reply saying how big it was and what the limit is."""
import datetime as dt
import os
import re

from pipeline import sample_mail, samples
from pipeline.demo import write_maildir
from tests.cli import body_text, exported, intake, maildir_replies
from tests.configs import MAILBOX, write_config

TZ = dt.timezone(dt.timedelta(hours=8))
JULY_20 = dt.datetime(2022, 7, 20, 10, 0, tzinfo=TZ)
SMTP_USER, SMTP_PASSWORD = "intake@example.cn", "smtp-secret"


def big_email(message_id: str, sender: str = "hetang@example.cn") -> bytes:
    """A form and a 2 MB scan: about 2.7 MB once base64-encoded."""
    return sample_mail.foxmail_email(sender, MAILBOX, "推荐表（张三）", [
        ("张三推荐表.docx", samples.build_form_docx()),
        ("扫描件.jpg", b"\xff\xd8\xff\xe0" + os.urandom(2 * 2**20))], message_id=message_id)


def assert_too_large_reply(reply, message_id: str) -> None:
    assert reply["X-Intake-Status"] == "needs-correction"
    assert reply["X-Intake-Problems"] == "message-too-large"
    assert reply["In-Reply-To"] == message_id
    text = body_text(reply)
    size = re.search(r"本邮件大小约为(\d+(?:\.\d)?) MB，超过系统可接收的1 MB上限", text)
    assert size, text
    assert 2.5 <= float(size.group(1)) <= 3.0


def assert_recorded_without_files(config, message_id: str) -> None:
    export = exported(config)
    sub = next(s for s in export["submissions"] if s["message_id"] == message_id)
    assert sub["status"] == "needs-correction" and sub["problems"] == ["message-too-large"]
    assert export["candidates"] == []
    stored = [p for p in (config.parent / "files").rglob("*") if p.is_file()]
    assert all(p.stat().st_size < 2**20 for p in stored), "the big attachment was not kept"


def test_over_the_limit_in_a_maildir(tmp_path):
    config = write_config(tmp_path, mailbox={"transport": "maildir", "path": str(tmp_path / "inbox"),
                                             "max_message_mb": 1})
    write_maildir(tmp_path / "inbox", [(big_email("<big@example.cn>"), JULY_20),
                                       (big_email("<big2@example.com>", "stranger@example.com"), JULY_20)])
    result = intake(config, "poll", "--once")
    assert result.returncode == 0, result.stderr
    [reply] = maildir_replies(tmp_path / "sent")   # the unknown sender gets nothing
    assert_too_large_reply(reply, "<big@example.cn>")
    assert_recorded_without_files(config, "<big@example.cn>")
    stranger = next(s for s in exported(config)["submissions"] if s["message_id"] == "<big2@example.com>")
    assert stranger["status"] == "skipped" and "size limit" in stranger["reason"]
    assert not list((tmp_path / "inbox" / "new").iterdir())


def test_over_the_limit_over_imap_only_the_headers_are_fetched(tmp_path, dovecot, imap_account, smtp_server):
    user, password = imap_account
    config = write_config(
        tmp_path,
        mailbox={"transport": "imap", "host": dovecot.host, "port": dovecot.tls_port, "security": "ssl",
                 "username": user, "password_env": "INTAKE_IMAP_PASSWORD", "folder": "INBOX",
                 "ca_file": str(dovecot.ca_file), "max_message_mb": 1},
        smtp={"transport": "smtp", "host": "127.0.0.1", "port": smtp_server.port, "security": "none",
              "username": SMTP_USER, "password_env": "INTAKE_SMTP_PASSWORD", "from_address": MAILBOX})
    env = {"INTAKE_IMAP_PASSWORD": password, "INTAKE_SMTP_PASSWORD": SMTP_PASSWORD}
    dovecot.append(user, password, big_email("<big@example.cn>"), internaldate=JULY_20)
    result = intake(config, "poll", "--once", env=env)
    assert result.returncode == 0, result.stderr
    [reply] = smtp_server.wait_for(1)
    assert_too_large_reply(reply.message, "<big@example.cn>")
    assert_recorded_without_files(config, "<big@example.cn>")
    assert exported(config, env=env)["submissions"][0]["received_at"] == "2022-07-20T10:00:00+08:00"
    # Nothing asked for the body: the Dovecot log shows what the session fetched.
    fetches = [line for line in dovecot.log_text().splitlines()
               if f"imap({user})" in line and "Command finished: UID FETCH" in line]
    assert fetches and not any("BODY.PEEK[]" in line for line in fetches), fetches
    assert any("BODY.PEEK[HEADER]" in line for line in fetches), fetches
