"""Formats through the whole path: county emails in a Maildir, `intake poll --once`, and the
Chinese sentence the county reads for each file that could not be read."""
import pytest

from pipeline import sample_mail, samples
from tests.cli import body_text, exported, intake, maildir_replies
from tests.configs import MAILBOX, write_config
from tests.corpus import build, files
from tests.e2e.test_maildir_poll import deliver

SENDER = "tianyuan@example.cn"


@pytest.fixture
def config(tmp_path):
    return write_config(tmp_path)


def reply_to(config, attachments, body="请查收附件，谢谢！"):
    deliver(config, sample_mail.foxmail_email(SENDER, MAILBOX, "推荐材料", attachments, body=body))
    result = intake(config, "poll", "--once")
    assert result.returncode == 0, result.stderr
    [reply] = maildir_replies(config.parent / "sent")
    return reply


def test_forms_as_doc_pdf_and_inside_a_gbk_zip_are_accepted(config):
    archive = build.zip_gbk({"王五推荐表.doc": files.converted("doc")["王五"]})
    reply = reply_to(config, [("张三推荐表.pdf", files.converted("pdf")["张三"]),
                              ("李四推荐表.wps", files.converted("doc")["李四"]),
                              ("推荐材料.zip", archive)])
    assert reply["X-Intake-Status"] == "accepted", body_text(reply)
    assert "附件《推荐材料.zip/王五推荐表.doc》" in body_text(reply)
    roster = {c["name"]: c for c in exported(config)["candidates"]}
    assert sorted(roster) == ["张三", "李四", "王五"]
    assert roster["王五"]["phone"] == files.expected("王五")["phone"]


def test_each_unreadable_file_is_named_with_its_reason(config):
    pdf = files.converted("pdf")["张三"]
    reply = reply_to(config, [
        ("加密推荐表.pdf", build.qpdf_encrypt(pdf, "secret")),
        ("材料.7z", build.seven_zip({"张三推荐表.docx": files.docx_forms()["张三.docx"]}, "secret")),
        ("炸弹.zip", build.zip_bomb(64 << 20)),
        ("空白.doc", b""),
    ])
    assert reply["X-Intake-Status"] == "needs-correction"
    assert reply["X-Intake-Problems"] == "unreadable-file"
    text = body_text(reply)
    assert "附件《加密推荐表.pdf》无法打开（PDF 文件设置了打开密码" in text
    assert "附件《材料.7z》无法打开（压缩包设置了密码" in text
    assert "附件《炸弹.zip》无法打开（压缩包解压后内容过大" in text
    assert "附件《空白.doc》无法打开（文件为空（0 字节））" in text


def test_a_scanned_pdf_in_which_no_form_can_be_read_asks_for_the_text_version(config):
    # (scans of the form itself are read by OCR: tests/e2e/test_scans.py)
    unreadable = build.image_pdf(samples.sample_photo_png(250, 350))
    reply = reply_to(config, [("盖章扫描件.pdf", unreadable)])
    assert reply["X-Intake-Problems"] == "scanned-only"
    assert "附件《盖章扫描件.pdf》为扫描件或图片" in body_text(reply)


def test_a_163_cloud_attachment_link_gets_a_request_for_a_real_attachment(config):
    body = ("您好，推荐表见超大附件：\n张三推荐表.docx (2.1M, 2022年8月1日 10:00 到期)\n"
            "下载地址: https://mail.163.com/large-attachment-download/index.html?p=X0abc&file=Y1")
    reply = reply_to(config, [], body=body)
    assert reply["X-Intake-Problems"] == "no-attachment"
    assert "下载链接，系统无法自动下载" in body_text(reply)
