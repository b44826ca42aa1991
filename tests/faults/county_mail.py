"""County emails for the fault tests, and an IMAP + SMTP configuration to read them with.

Every email is unique (its own Message-ID and content) and comes from a county's registered
address: a form for a new candidate, a status query (查询), or a form email whose attachment was
forgotten. All three get a reply; queries and forgotten attachments are cheap to build and read.
"""
from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path

from pipeline import sample_mail, samples
from tests.configs import DEFAULT_CONFIG, MAILBOX, write_config

SH = dt.timezone(dt.timedelta(hours=8))
FIRST_RECEIVED = dt.datetime(2022, 7, 20, 9, 0, tzinfo=SH)   # before the 2022-07-31 deadline
SURNAMES = "赵钱孙李周吴郑王冯陈褚卫蒋沈韩杨朱秦尤许何吕施张孔曹严华金魏"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华"
SMTP_USER, SMTP_PASSWORD = "intake@example.cn", "smtp-secret"


def counties() -> list[tuple[str, str]]:
    """(county, registered sender) from the shipped configuration."""
    config = tomllib.loads(DEFAULT_CONFIG.read_text(encoding="utf-8"))
    return [(c["name"], c["senders"][0]) for c in config["counties"]]


def candidate_name(i: int) -> str:
    """A distinct three-character name for each i below 30 * 25 * 25."""
    return SURNAMES[i % len(SURNAMES)] + GIVEN[(i // len(SURNAMES)) % len(GIVEN)] + \
        GIVEN[(i // (len(SURNAMES) * len(GIVEN))) % len(GIVEN)]


def county_email(i: int, forms_every: int = 4, tag: str = "m") -> tuple[str, bytes, dt.datetime]:
    """The i-th email: (Message-ID, raw bytes, receipt time). One in `forms_every` carries a form."""
    county, sender = counties()[i % len(counties())]
    message_id = f"<{tag}-{i:04d}@{sender.split('@')[1]}>"
    date = FIRST_RECEIVED + dt.timedelta(minutes=i)
    if forms_every and i % forms_every == 0:
        name = candidate_name(i)
        form = {**samples.SAMPLE_CANDIDATE, "name": name, "phone": f"138 0731 {i % 10000:04d}"}
        raw = sample_mail.foxmail_email(sender, MAILBOX, f"{county}信息技术能手推荐表（{name}）",
                                        [(f"{name}推荐表.docx", samples.build_form_docx(form))],
                                        date=date, message_id=message_id)
    elif i % 2:
        raw = sample_mail.foxmail_email(sender, MAILBOX, "查询", body=f"请告知我{county}报送情况（第{i}次）。",
                                        date=date, message_id=message_id)
    else:
        raw = sample_mail.foxmail_email(sender, MAILBOX, f"{county}推荐表（第{i}份）",
                                        body="附件为推荐表，请查收。", date=date, message_id=message_id)
    return message_id, raw, date


def imap_smtp_config(directory: Path, dovecot, user: str, smtp_port: int, poll_seconds: int = 60,
                     **outbox) -> Path:
    """Read `user`'s INBOX on `dovecot` over IMAPS; reply through an SMTP server on `smtp_port`.
    `outbox`: extra [smtp] keys (batch_size, per_sender_hourly_cap, retry_base_seconds ...).
    Passwords: $INTAKE_IMAP_PASSWORD and $INTAKE_SMTP_PASSWORD."""
    return write_config(
        directory,
        mailbox={"transport": "imap", "host": dovecot.host, "port": dovecot.tls_port,
                 "security": "ssl", "username": user, "password_env": "INTAKE_IMAP_PASSWORD",
                 "folder": "INBOX", "ca_file": str(dovecot.ca_file), "poll_seconds": poll_seconds},
        smtp={"transport": "smtp", "host": "127.0.0.1", "port": smtp_port, "security": "none",
              "username": SMTP_USER, "password_env": "INTAKE_SMTP_PASSWORD", "from_address": MAILBOX,
              **outbox})


def append_all(dovecot, user: str, password: str, emails) -> None:
    """APPEND (raw, INTERNALDATE) pairs over one IMAP session."""
    client = dovecot.client(user, password)
    try:
        for raw, when in emails:
            client.append("INBOX", raw, msg_time=when)
    finally:
        client.logout()
