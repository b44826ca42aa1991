"""Attachments we send keep their Chinese names in every client: RFC 2231 filename* for the
standard readers and an RFC 2047 name= for QQ mail (which otherwise shows tcmime.bin) — also
after the outbox has stored the message and sent it over SMTP."""
import datetime as dt
import email
import email.header
import re
from email import policy
from email.message import EmailMessage

import pytest

from outbox.compose import add_attachment
from outbox.queue import deliver_pending, enqueue
from outbox.transports import SmtpTransport
from parsers.email_message import parse_email
from store.repository import Store

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
LONG_NAME = "株洲市信息技术能手推荐汇总表（2022年7月20日）.xlsx"
NOW = dt.datetime(2022, 7, 20, 0, 30, tzinfo=dt.timezone.utc)


def digest_like(filename: str, data: bytes = b"PK\x03\x04" + bytes(range(256)) * 8) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "zzdztxhrj@163.com"
    msg["To"] = "contact@example.cn"
    msg["Subject"] = "信息技术能手推荐情况日报 2022-07-20"
    msg["Message-ID"] = "<digest-2022-07-20@163.com>"
    msg.set_content("各县市区报送情况见附件。")
    msg.add_alternative("<p>各县市区报送情况见附件。</p>", subtype="html")
    add_attachment(msg, filename, data, XLSX)
    return msg


def attachment_headers(raw: bytes) -> str:
    text = raw.decode("utf-8").replace("\r\n", "\n")
    start = text.index(f"Content-Type: {XLSX}")
    return text[start:text.index("\n\n", start)]


def names_seen_by_clients(raw: bytes) -> dict:
    legacy = [p for p in email.message_from_bytes(raw).walk() if p.get_content_type() == XLSX][0]
    modern = next(email.message_from_bytes(raw, policy=policy.default).iter_attachments())
    rfc2047 = str(email.header.make_header(email.header.decode_header(legacy.get_param("name"))))
    return {"name= (QQ mail)": rfc2047, "filename* (RFC 2231)": modern.get_filename(),
            "intake's own parser": parse_email(raw).attachments[0].filename}


@pytest.mark.parametrize("filename", [LONG_NAME, "名单.xlsx"])
def test_both_names_are_written_and_read_back(filename):
    raw = digest_like(filename).as_bytes()
    head = attachment_headers(raw)
    assert re.search(r'name="=\?utf-8\?B\?', head)
    assert "filename*=utf-8''" in head or "filename*0*=utf-8''" in head
    # folded to 78 columns, except the MIME type itself, which cannot be folded
    assert all(len(line) <= 78 for line in head.splitlines() if not line.startswith("Content-Type:"))
    assert set(names_seen_by_clients(raw).values()) == {filename}


def test_the_attachment_survives_the_outbox_and_smtp(tmp_path, smtp_server):
    data = b"PK\x03\x04 roster bytes \x00\xff" * 100
    store = Store(tmp_path / "intake.json", tmp_path / "files")
    with store.transaction():
        enqueue(store, digest_like(LONG_NAME, data), "digest:2022-07-20", "digest", NOW)
    transport = SmtpTransport("127.0.0.1", smtp_server.port, "none", "intake@example.cn",
                              "smtp-secret", "zzdztxhrj@163.com", None, timeout=5)
    assert deliver_pending(store, transport, NOW).sent == 1
    [got] = smtp_server.wait_for(1)
    assert set(names_seen_by_clients(got.raw).values()) == {LONG_NAME}
    assert attachment_headers(got.raw) == attachment_headers(digest_like(LONG_NAME, data).as_bytes())
    [part] = got.message.iter_attachments()
    assert part.get_content() == data
    store.close()
