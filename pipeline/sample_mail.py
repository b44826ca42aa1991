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


# ---------------------------------------------------------------- a clerk answering our reply

REPLY_CLIENTS = ("foxmail", "outlook", "qq", "163")
_OURS = "株洲市工信局信息技术能手评选"
_QUOTED = "荷塘区科工信局：\n\n您好！本邮箱已于2022年7月20日 10:15收到贵单位发送的邮件，处理结果为：已受理。\n\n株洲市工业和信息化局"
_SIGNATURE = "张敏\n荷塘区科技和工业信息化局\n电话：0731-28812345"


def client_reply(client: str, sender: str, to: str, words: str, *, in_reply_to: str = "",
                 subject: str = "【已受理】荷塘区 张三 信息技术能手推荐表",
                 when: str = "2022年7月20日 10:15", message_id: str | None = None) -> bytes:
    """A clerk's answer to one of our replies, as Foxmail, Outlook, QQ mail (HTML only) or the
    163 web client writes it: their words, their signature, then our email quoted in the
    client's own way."""
    plain, html = _REPLY_BODIES[client](words, to, sender, subject, when)
    msg = MIMEMultipart("alternative") if plain is not None else MIMEText(html, "html", "utf-8")
    if plain is not None:
        charset = "gb2312" if client in ("foxmail", "163") else "utf-8"
        msg.attach(_text_part(plain, "plain", charset))
        msg.attach(_text_part(html, "html", charset))
    msg["From"] = f"{gb_words('张敏')} <{sender}>"
    msg["To"] = to
    msg["Subject"] = gb_words(f"回复：{subject}" if client in ("foxmail", "qq") else f"Re: {subject}")
    msg["Date"] = format_datetime(dt.datetime.now(dt.timezone.utc))
    msg["Message-ID"] = message_id or f"<{uuid.uuid4().hex}@{sender.split('@')[-1]}>"
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = in_reply_to
    msg["X-Mailer"] = {"foxmail": "Foxmail 7.2.25.228[cn]", "outlook": "Microsoft Outlook 16.0",
                       "qq": "QQMail 2.x", "163": "Coremail Webmail Server Version XT5.0.13"}[client]
    return msg.as_bytes()


def _text_part(body: str, subtype: str, charset: str) -> MIMEText:
    data = body.encode("gb18030" if charset == "gb2312" else "utf-8")
    part = MIMEText("", subtype, "utf-8")
    part.set_payload(base64.b64encode(data).decode("ascii"))
    part.replace_header("Content-Type", f'text/{subtype}; charset="{charset}"')
    part.replace_header("Content-Transfer-Encoding", "base64")
    return part


def _html_lines(text: str) -> str:
    return "".join(f"<div>{line or '<br>'}</div>" for line in text.split("\n"))


def _foxmail(words, ours, sender, subject, when):
    head = f'发件人: "{_OURS}"<{ours}>;\n发送时间: {when}\n收件人: "{sender}"<{sender}>;\n主题: {subject}'
    plain = f"{words}\n\n\n{_SIGNATURE}\n\n------------------ 原始邮件 ------------------\n{head}\n\n{_QUOTED}\n"
    html = (f"<html><body>{_html_lines(words)}<div><br></div><div>{_html_lines(_SIGNATURE)}</div>"
            f"<div><br></div><div>------------------&nbsp;原始邮件&nbsp;------------------</div>"
            f"<div>{_html_lines(head)}</div><div><br></div>{_html_lines(_QUOTED)}</body></html>")
    return plain, html


def _outlook(words, ours, sender, subject, when):
    head = f"发件人: {_OURS} <{ours}>\n发送时间: {when}\n收件人: {sender}\n主题: {subject}"
    plain = f"{words}\n\n{_SIGNATURE}\n\n________________________________\n{head}\n\n{_QUOTED}\n"
    html = (f'<html><head><style>p {{margin:0}}</style></head><body dir="ltr"><div>{_html_lines(words)}</div>'
            f'<div>{_html_lines(_SIGNATURE)}</div><div id="appendonsend"></div>'
            f'<hr style="display:inline-block;width:98%"><div id="divRplyFwdMsg" dir="ltr">'
            f'<font face="Calibri"><b>发件人:</b> {_OURS} &lt;{ours}&gt;<br><b>发送时间:</b> {when}<br>'
            f'<b>收件人:</b> {sender}<br><b>主题:</b> {subject}</font><div>&nbsp;</div></div>'
            f'<div>{_html_lines(_QUOTED)}</div></body></html>')
    return plain, html


def _qq(words, ours, sender, subject, when):
    """QQ mail's web client: HTML only, its separator written with &nbsp;."""
    html = (f'<meta http-equiv="Content-Type" content="text/html; charset=UTF-8">{_html_lines(words)}'
            f'<div><br></div><div><br></div><div style="font-size: 12px;font-family: Arial Narrow;padding:2px 0 2px 0;">'
            f'------------------&nbsp;Original&nbsp;------------------</div>'
            f'<div style="font-size: 12px;background:#efefef;padding:8px;"><div><b>From:</b> '
            f'"{_OURS}"&lt;{ours}&gt;;</div><div><b>Date:</b>&nbsp;{when}</div><div><b>To:</b>&nbsp;'
            f'"{sender}"&lt;{sender}&gt;;</div><div><b>Subject:</b>&nbsp;{subject}</div></div>'
            f'<div><br></div>{_html_lines(_QUOTED)}')
    return None, html


def _netease(words, ours, sender, subject, when):
    """The 163 web client: "--" signature, then 在 … 写道： and the quote as ">" lines / a blockquote."""
    quoted = "\n".join(f">{line}" for line in _QUOTED.split("\n"))
    said = f'在 2022-07-20 10:15:00，"{_OURS}" <{ours}> 写道：'
    plain = f"{words}\n\n--\n{_SIGNATURE}\n\n\n{said}\n{quoted}\n"
    html = (f'<div style="line-height:1.7;color:#000000;font-size:14px;font-family:Arial">'
            f'{_html_lines(words)}<br><div style="position:relative;zoom:1">--<br>'
            f'{_html_lines(_SIGNATURE)}<div style="clear:both"></div></div><br><br>'
            f'<div style="position:relative;zoom:1"></div><div id="divNeteaseMailCard"></div><br>'
            f'<pre><br>{said.replace("<", "&lt;").replace(">", "&gt;")}</pre><blockquote id="isReplyContent" '
            f'style="PADDING-LEFT: 1ex; MARGIN: 0px 0px 0px 0.8ex; BORDER-LEFT: #ccc 1px solid">'
            f'{_html_lines(_QUOTED)}</blockquote></div><br><br><span title="neteasefooter"><p>&nbsp;</p></span>')
    return plain, html


_REPLY_BODIES = {"foxmail": _foxmail, "outlook": _outlook, "qq": _qq, "163": _netease}
