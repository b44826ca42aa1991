"""The embedded default end to end: county emails in a Maildir, `intake poll --once`, replies
as .eml files in the sent Maildir, the roster in the json export."""
import datetime as dt
import json
from pathlib import Path

import pytest

from pipeline import sample_mail, samples
from pipeline.demo import write_maildir
from tests.cli import body_text, exported, intake, maildir_replies
from tests.configs import MAILBOX, write_config

TZ = dt.timezone(dt.timedelta(hours=8))
JULY = dt.datetime(2022, 7, 20, 10, 0, tzinfo=TZ)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path)


def deliver(config: Path, *emails: bytes, at: dt.datetime = JULY) -> None:
    write_maildir(config.parent / "inbox", [(raw, at + dt.timedelta(minutes=i)) for i, raw in enumerate(emails)])


def form_email(sender: str, *forms: dict, subject: str = "推荐表", **kwargs) -> bytes:
    files = [(f"{f.get('name', '无名')}推荐表.docx", samples.build_form_docx(f)) for f in forms]
    return sample_mail.foxmail_email(sender, MAILBOX, subject, files, **kwargs)


def test_a_valid_form_is_accepted_echoed_and_exported(config):
    deliver(config, form_email("hetang@example.cn", samples.SAMPLE_CANDIDATE, message_id="<f1@example.cn>"))
    result = intake(config, "poll", "--once")
    assert result.returncode == 0, result.stderr
    [reply] = maildir_replies(config.parent / "sent")
    assert reply["X-Intake-Status"] == "accepted"
    assert reply["X-Intake-Problems"] is None
    assert reply["In-Reply-To"] == "<f1@example.cn>" and "<f1@example.cn>" in reply["References"]
    assert reply["Auto-Submitted"] == "auto-replied"
    assert reply["To"] == "hetang@example.cn"
    assert reply["Subject"].startswith("【已受理】荷塘区 张三 信息技术能手推荐表 〔2022〕荷塘-001 ")
    text = body_text(reply)
    assert "联系电话：13807310000" in text and "已占用推荐名额 1 个" in text
    assert reply.get_body(("html",)) is not None
    [cand] = exported(config)["candidates"]
    assert cand["county"] == "荷塘区" and cand["status"] == "accepted"
    assert (cand["name"], cand["sex"], cand["birth"], cand["ethnicity"], cand["phone"]) == \
        ("张三", "男", "1985-06", "汉族", "13807310000")
    assert cand["photo"] is True and cand["opinions"]["discipline"]
    assert cand["report"] is None and len(cand["versions"]) == 1


def test_a_second_poll_changes_nothing_and_sends_nothing(config):
    deliver(config, form_email("hetang@example.cn", samples.SAMPLE_CANDIDATE))
    assert intake(config, "poll", "--once").returncode == 0
    before = exported(config)
    # The same message delivered again (a client that sent it twice into the mailbox).
    raw = next((config.parent / "inbox" / "cur").iterdir()).read_bytes()
    deliver(config, raw)
    assert intake(config, "poll", "--once").returncode == 0
    assert len(maildir_replies(config.parent / "sent")) == 1
    assert exported(config) == before


def test_a_form_needing_correction_names_the_file_and_the_field(config):
    long_deeds = "他" * 701
    form = {**samples.SAMPLE_CANDIDATE, "deeds": long_deeds,
            "opinions": {**samples.SAMPLE_CANDIDATE["opinions"], "discipline": ""}}
    deliver(config, form_email("lusong@example.cn", form))
    assert intake(config, "poll", "--once").returncode == 0
    [reply] = maildir_replies(config.parent / "sent")
    assert reply["X-Intake-Status"] == "needs-correction"
    assert reply["X-Intake-Problems"] == "deeds-too-long, missing-opinion:discipline"
    text = body_text(reply)
    assert "附件《张三推荐表.docx》中主要事迹现为701字，超过600字上限，请删减后重新发送。" in text
    assert "“纪检监察部门意见”为空" in text
    [cand] = exported(config)["candidates"]
    assert cand["status"] == "needs-correction"
    assert cand["problems"] == ["deeds-too-long", "missing-opinion:discipline"]


def test_two_forms_in_one_email_are_judged_each_on_its_own(config):
    bad = {**samples.SAMPLE_CANDIDATES[1], "phone": "12345"}
    deliver(config, form_email("liling@example.cn", samples.SAMPLE_CANDIDATES[2], bad))
    assert intake(config, "poll", "--once").returncode == 0
    [reply] = maildir_replies(config.parent / "sent")
    assert reply["X-Intake-Status"] == "needs-correction"
    assert reply["X-Intake-Problems"] == "invalid-field:phone"
    text = body_text(reply)
    assert "【已受理】附件《王五推荐表.docx》：王五" in text
    assert "【需补正】附件《李四推荐表.docx》：李四" in text
    assert "已占用推荐名额 2 个" in text
    statuses = {c["name"]: c["status"] for c in exported(config)["candidates"]}
    assert statuses == {"王五": "accepted", "李四": "needs-correction"}


def test_robots_and_ourselves_get_no_reply_but_are_recorded(config):
    deliver(config,
            sample_mail.auto_reply("hetang@example.cn", MAILBOX),
            sample_mail.bounce("mx.example.cn", MAILBOX, "lusong@example.cn"),
            form_email(MAILBOX, samples.SAMPLE_CANDIDATE),
            sample_mail.foxmail_email("stranger@example.com", MAILBOX, "你好", []))
    result = intake(config, "poll", "--once")
    assert result.returncode == 0, result.stderr
    assert maildir_replies(config.parent / "sent") == []
    subs = exported(config)["submissions"]
    assert sorted((s["status"], s["reason"]) for s in subs) == [
        ("skipped", "auto-reply"), ("skipped", "bounce"), ("skipped", "own address"),
        ("skipped", "unknown sender without documents")]


@pytest.mark.parametrize("attachments, code, phrase", [
    ([], "no-attachment", "邮件中没有附件"),
    ([("说明.docx", b"PK\x03\x04 broken")], "unreadable-file", "附件《说明.docx》无法打开"),
    ([("推荐表.pdf", b"%PDF-1.4 scan")], "unreadable-file", "附件《推荐表.pdf》无法打开"),
    ([("扫描件.jpg", samples.sample_photo_png())], "scanned-only", "附件《扫描件.jpg》为扫描件"),
    ([("说明.txt", "附件为推荐材料，请查收。".encode())], "nothing-recognized", "未找到推荐表"),
    ([("报告.docx", samples.build_report_docx("关于政务数据共享的调研报告", "正文。" * 50))],
     "report-unmatched", "附件《报告.docx》无法对应到贵单位的推荐人选"),
])
def test_what_cannot_be_read_is_explained(config, attachments, code, phrase):
    deliver(config, sample_mail.foxmail_email("tianyuan@example.cn", MAILBOX, "材料", attachments))
    assert intake(config, "poll", "--once").returncode == 0
    [reply] = maildir_replies(config.parent / "sent")
    assert reply["X-Intake-Status"] == "needs-correction"
    assert reply["X-Intake-Problems"] == code
    assert phrase in body_text(reply)


def test_an_unknown_sender_with_a_form_is_rejected(config):
    deliver(config, form_email("someone@qq.com", samples.SAMPLE_CANDIDATE))
    assert intake(config, "poll", "--once").returncode == 0
    [reply] = maildir_replies(config.parent / "sent")
    assert reply["X-Intake-Status"] == "rejected"
    assert reply["X-Intake-Problems"] == "unknown-sender"
    assert "someone@qq.com 未登记" in body_text(reply)
    assert exported(config)["candidates"] == []


def test_the_received_time_is_the_servers_not_the_senders(config):
    # The sender's clock says 2030; the Maildir file says 2022-07-20 10:00 in Zhuzhou.
    deliver(config, form_email("hetang@example.cn", samples.SAMPLE_CANDIDATE,
                               date=dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)))
    assert intake(config, "poll", "--once").returncode == 0
    [sub] = exported(config)["submissions"]
    assert sub["received_at"] == "2022-07-20T10:00:00+08:00"


def test_the_demo_prints_the_table_and_leaves_replies(tmp_path):
    config = write_config(tmp_path)
    result = intake(config, "demo", "--dir", str(tmp_path / "demo"))
    assert result.returncode == 0, result.stderr
    assert "荷塘区" in result.stdout and "炎陵县" in result.stdout
    replies = maildir_replies(tmp_path / "demo" / "sent")
    assert sorted(r["X-Intake-Status"] for r in replies) == ["accepted", "accepted", "needs-correction"]
    assert all(p.suffix == ".eml" for p in (tmp_path / "demo" / "sent" / "new").iterdir())
    roster = json.loads((tmp_path / "demo" / "roster.json").read_text(encoding="utf-8"))
    assert len(roster["candidates"]) == 4 and len(roster["submissions"]) == 4


def test_withdrawing_a_name_the_county_never_sent_asks_for_a_correction(config):
    deliver(config, form_email("hetang@example.cn", samples.SAMPLE_CANDIDATE),
            sample_mail.foxmail_email("hetang@example.cn", MAILBOX, "撤回李四", []))
    assert intake(config, "poll", "--once").returncode == 0
    replies = maildir_replies(config.parent / "sent")
    assert [r["X-Intake-Status"] for r in replies] == ["accepted", "needs-correction"]
    assert replies[1]["X-Intake-Problems"] == "withdraw-unmatched"
    assert "贵单位目前的人选：张三" in body_text(replies[1])
    assert exported(config)["candidates"][0]["status"] == "accepted"


def test_a_status_query_from_a_county_with_nothing_yet(config):
    deliver(config, sample_mail.foxmail_email("youxian@example.cn", MAILBOX, "查询进度", []))
    assert intake(config, "poll", "--once").returncode == 0
    [reply] = maildir_replies(config.parent / "sent")
    assert reply["Subject"].startswith("【进度查询】攸县 信息技术能手推荐情况 〔2022〕攸县-001 ")
    assert "收件编号：〔2022〕攸县-001" in body_text(reply)
    assert "目前尚未收到贵单位的推荐表" in body_text(reply)
    assert "还可推荐 3 名" in body_text(reply)


def test_review_marks_are_kept_with_the_candidate_and_send_nothing(config):
    deliver(config, form_email("hetang@example.cn", samples.SAMPLE_CANDIDATE))
    assert intake(config, "poll", "--once").returncode == 0
    result = intake(config, "mark", "张三", "--county", "荷塘区", "--status", "shortlisted", "--note", "初选通过")
    assert result.returncode == 0, result.stderr
    [cand] = exported(config)["candidates"]
    assert cand["review"]["status"] == "shortlisted" and cand["review"]["note"] == "初选通过"
    assert cand["status"] == "accepted"
    assert len(maildir_replies(config.parent / "sent")) == 1
    missing = intake(config, "mark", "李四", "--county", "荷塘区", "--status", "pooled")
    assert missing.returncode == 1 and "荷塘区 has no candidate named 李四" in missing.stderr


def test_waiting_counties_unknown_senders_and_open_problems_are_visible(config):
    unsigned = {**samples.SAMPLE_CANDIDATES[1],
                "opinions": {**samples.SAMPLE_CANDIDATES[1]["opinions"], "discipline": ""}}
    deliver(config, form_email("lusong@example.cn", unsigned),
            form_email("clerk@qq.com", samples.SAMPLE_CANDIDATE),
            sample_mail.foxmail_email("someone@163.com", MAILBOX, "你好", []))
    assert intake(config, "poll", "--once").returncode == 0
    status = intake(config, "status", env={"COLUMNS": "200"})
    assert status.returncode == 0, status.stderr
    assert "尚未报送：荷塘区、石峰区、天元区、渌口区、醴陵市、攸县、茶陵县、炎陵县。" in status.stdout
    assert "未登记的发件地址：2 个" in status.stdout
    assert "clerk@qq.com" in status.stdout and "someone@163.com" in status.stdout
    assert "待补正：芦淞区 李四" in status.stdout and "“纪检监察部门意见”为空" in status.stdout
    export = exported(config)
    [cand] = export["candidates"]
    assert (cand["county"], cand["status"], cand["problems"]) == (
        "芦淞区", "needs-correction", ["missing-opinion:discipline"])
    unknown = {s["from"]: (s["status"], s["problems"], s["reason"]) for s in export["submissions"]
               if s["county"] is None}
    assert unknown == {"clerk@qq.com": ("rejected", ["unknown-sender"], ""),
                       "someone@163.com": ("skipped", [], "unknown sender without documents")}


def test_a_thank_you_in_answer_to_our_receipt_gets_no_correction_request(config):
    deliver(config, form_email("hetang@example.cn", samples.SAMPLE_CANDIDATE))
    assert intake(config, "poll", "--once").returncode == 0
    [receipt] = maildir_replies(config.parent / "sent")
    thanks = sample_mail.foxmail_email("hetang@example.cn", MAILBOX, "回复：" + receipt["Subject"], [],
                                       body="收到，谢谢！", extra_headers={
                                           "In-Reply-To": receipt["Message-ID"],
                                           "References": receipt["Message-ID"]})
    deliver(config, thanks, at=JULY + dt.timedelta(hours=1))
    assert intake(config, "poll", "--once").returncode == 0
    assert len(maildir_replies(config.parent / "sent")) == 1
    reasons = [s["reason"] for s in exported(config)["submissions"]]
    assert "answer to our reply without documents" in reasons
