"""Webmail "超大附件" links are found in the email body, plain text or HTML."""
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

from parsers.email_message import parse_email
from parsers.normalize import looks_garbled

QQ = "https://wx.mail.qq.com/ftn/download?func=3&k=abc&key=def"
M163 = "https://mail.163.com/large-attachment-download/index.html?p=X0abc&file=Y1"


def email_with(html: str, text: str = "请查收") -> bytes:
    msg = MIMEMultipart("alternative")
    msg["From"] = "lusong@example.cn"
    msg["Subject"] = "推荐表"
    msg.attach(MIMEText(text, "plain", "utf-8"))
    msg.attach(MIMEText(html, "html", "utf-8"))
    return msg.as_bytes()


def test_qq_and_163_cloud_links_are_found_once_each():
    html = (f'<p>从QQ邮箱发来的超大附件</p><a href="{QQ.replace("&", "&amp;")}">张三推荐表.docx</a>'
            f'<a href="{M163}">下载</a><a href="https://www.zhuzhou.gov.cn/">株洲市政府</a>')
    parsed = parse_email(email_with(html, text=f"下载：{M163}"))
    assert parsed.cloud_links == [M163, QQ]


def test_ordinary_links_are_not_cloud_attachments():
    parsed = parse_email(email_with('<a href="https://mail.163.com/">网易邮箱</a>'))
    assert parsed.cloud_links == []


def test_garbage_text_is_told_from_chinese():
    assert not looks_garbled("关于株洲市政务数据共享的调研报告（2022年）：一、基本情况 ABC-123")
    assert looks_garbled("탏ᇠꆱ궘퓪蘖䕾㞖\uf1a9\ueabb몣蒦갫鴠哺")
