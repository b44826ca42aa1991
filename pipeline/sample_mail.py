"""County emails as real clients write them, for `intake demo` and the tests.

Foxmail and the 163 web client label GBK text "gb2312" and put RFC 2047 encoded words straight
into the attachment's name= and filename= parameters; these builders do the same.
"""
from __future__ import annotations

import base64
import datetime as dt
import uuid
from email.mime.application import MIMEApplication
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime

DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def gb_words(text: str) -> str:
    """An RFC 2047 encoded word the way Foxmail writes it: GBK bytes under a gb2312 label."""
    return f"=?gb2312?B?{base64.b64encode(text.encode('gb18030')).decode('ascii')}?="


def foxmail_email(sender: str, to: str, subject: str,
                  attachments: list[tuple[str, bytes]] = (), body: str = "请查收附件，谢谢！",
                  date: dt.datetime | None = None, message_id: str | None = None,
                  extra_headers: dict | None = None) -> bytes:
    """A Foxmail-style submission: gb2312-labelled subject and file names, base64 parts."""
    msg = MIMEMultipart("mixed")
    msg["From"] = f"{gb_words('科工信局')} <{sender}>"
    msg["To"] = to
    msg["Subject"] = gb_words(subject)
    msg["Date"] = format_datetime(date or dt.datetime.now(dt.timezone.utc))
    msg["Message-ID"] = message_id or f"<{uuid.uuid4().hex}@{sender.split('@')[-1]}>"
    msg["X-Mailer"] = "Foxmail 7.2.25.228[cn]"
    for name, value in (extra_headers or {}).items():
        msg[name] = value
    text = MIMEText(body.encode("gb18030"), "plain", "utf-8")
    text.set_payload(base64.b64encode(body.encode("gb18030")).decode("ascii"))
    text.replace_header("Content-Type", 'text/plain; charset="gb2312"')
    text.replace_header("Content-Transfer-Encoding", "base64")
    msg.attach(text)
    for filename, data in attachments:
        msg.attach(_attachment(filename, data))
    return msg.as_bytes()


def _attachment(filename: str, data: bytes) -> MIMEBase:
    ext = filename.rsplit(".", 1)[-1].lower()
    part = MIMEApplication(data, _subtype="octet-stream")
    ctype = {"docx": DOCX_TYPE, "pdf": "application/pdf", "doc": "application/msword",
             "jpg": "image/jpeg", "png": "image/png"}.get(ext, "application/octet-stream")
    encoded = gb_words(filename)
    part.replace_header("Content-Type", f'{ctype}; name="{encoded}"')
    part.add_header("Content-Disposition", f'attachment; filename="{encoded}"')
    return part


def auto_reply(sender: str, to: str, in_reply_to: str = "") -> bytes:
    """An out-of-office answer, marked as RFC 3834 asks."""
    msg = MIMEText("您好，我近期外出，邮件将于返回后处理。", "plain", "utf-8")
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = "自动回复：外出"
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@{sender.split('@')[-1]}>"
    msg["Auto-Submitted"] = "auto-replied"
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    return msg.as_bytes()


def bounce(reporting_mta: str, to: str, failed_recipient: str, original_id: str = "") -> bytes:
    """A delivery-status notification (RFC 3464) as Postfix writes it."""
    boundary = uuid.uuid4().hex
    return f"""From: MAILER-DAEMON@{reporting_mta} (Mail Delivery System)
To: {to}
Subject: Undelivered Mail Returned to Sender
Message-ID: <{uuid.uuid4().hex}@{reporting_mta}>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"

--{boundary}
Content-Type: text/plain; charset=us-ascii

This is the mail system at host {reporting_mta}.
I'm sorry to have to inform you that your message could not be delivered.

--{boundary}
Content-Type: message/delivery-status

Reporting-MTA: dns; {reporting_mta}

Final-Recipient: rfc822; {failed_recipient}
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 User unknown

--{boundary}
Content-Type: text/rfc822-headers

Message-ID: {original_id}
To: {failed_recipient}

--{boundary}--
""".replace("\n", "\r\n").encode("ascii")
