"""The municipal contact's daily digest end to end: county emails in a Maildir, `intake poll
--once`, then `intake digest` through a real SMTP server (aiosmtpd), once per date."""
import datetime as dt
import io
from pathlib import Path

import openpyxl
import pytest

from outbox.queue import deliver_pending
from outbox.transports import transport_for
from pipeline import sample_mail, samples
from pipeline.demo import write_maildir
from pipeline.settings import load_settings
from store.repository import Store
from tests.cli import intake
from tests.configs import MAILBOX, write_config

TZ = dt.timezone(dt.timedelta(hours=8))
JULY_20 = dt.datetime(2022, 7, 20, 10, 0, tzinfo=TZ)
ENV = {"INTAKE_SMTP_PASSWORD": "smtp-secret"}


@pytest.fixture
def config(tmp_path: Path, smtp_server) -> Path:
    return write_config(tmp_path, smtp={
        "transport": "smtp", "host": "127.0.0.1", "port": smtp_server.port, "security": "none",
        "username": "intake@example.cn", "password_env": "INTAKE_SMTP_PASSWORD",
        "from_address": MAILBOX})


def form_email(sender: str, *forms: dict, subject: str = "推荐表") -> bytes:
    files = [(f"{f['name']}推荐表.docx", samples.build_form_docx(f)) for f in forms]
    return sample_mail.foxmail_email(sender, MAILBOX, subject, files)


def poll(config: Path, emails: list[bytes], at: dt.datetime) -> None:
    write_maildir(config.parent / "inbox", [(raw, at + dt.timedelta(minutes=i)) for i, raw in enumerate(emails)])
    result = intake(config, "poll", "--once", env=ENV)
    assert result.returncode == 0, result.stderr


def digest(config: Path, *args: str):
    result = intake(config, "digest", *args, env=ENV)
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture
def seeded(config, smtp_server) -> Path:
    """荷塘区: 张三 accepted. 芦淞区: 张三 without the discipline opinion. 石峰区: 王五 accepted
    and 李四 with a bad phone number. A stranger sends a form; 天元区's autoresponder answers."""
    no_discipline = {**samples.SAMPLE_CANDIDATE,
                     "opinions": {**samples.SAMPLE_CANDIDATE["opinions"], "discipline": ""}}
    bad_phone = {**samples.SAMPLE_CANDIDATES[1], "phone": "12345"}
    poll(config, [
        form_email("hetang@example.cn", samples.SAMPLE_CANDIDATE),
        form_email("lusong@example.cn", no_discipline),
        form_email("shifeng@example.cn", samples.SAMPLE_CANDIDATES[2], bad_phone, subject="石峰区推荐人选"),
        form_email("someone@qq.com", samples.SAMPLE_CANDIDATES[3]),
        sample_mail.auto_reply("tianyuan@example.cn", MAILBOX),
    ], JULY_20)
    smtp_server.wait_for(4)   # the four replies
    smtp_server.clear()
    return config


def test_the_days_digest_reaches_the_contact_with_its_figures_and_the_roster(seeded, smtp_server):
    result = digest(seeded, "--date", "2022-07-20")
    assert "queued for contact@example.cn" in result.stdout
    [received] = smtp_server.wait_for(1)
    msg = received.message
    assert received.rcpt_tos == ["contact@example.cn"]
    assert msg["X-Intake-Digest"] == "2022-07-20"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["Subject"] == "【信息技术能手】每日汇总 2022年7月20日"
    text = msg.get_body(("plain",)).get_content()
    assert "全市9个县市区中，已有3个报送推荐人选，共4名（已受理2名、需补正2名），占用名额4/27" in text
    assert "- 石峰区：已受理 1，需补正 1，已撤回 0，名额 2/3，报告 0，最近来信 7月20日 10:02" in text
    assert "距推荐表报送截止（2022年7月31日）还有 11 天。" in text
    assert "- 天元区（尚未来信）" in text and "- 炎陵县（尚未来信）" in text
    assert "附件《张三推荐表.docx》中“纪检监察部门意见”为空" in text
    assert "附件《李四推荐表.docx》中“联系电话”填写为“12345”" in text
    assert "- someone@qq.com：来信 1 封" in text
    assert "另有 1 封自动回复、退信等邮件" in text
    html = msg.get_body(("html",)).get_content()
    assert "<table" in html and "cid:places-chart@intake.digest" in html
    [chart] = [p for p in msg.walk() if p.get_content_type() == "image/png"]
    assert chart.get_content().startswith(b"\x89PNG")

    [attachment] = list(msg.iter_attachments())
    assert attachment.get_filename() == "信息技术能手推荐名单_2022-07-20.xlsx"
    wb = openpyxl.load_workbook(io.BytesIO(attachment.get_content()))
    assert wb.sheetnames == ["推荐人选", "来信记录", "各县市区"]
    sheet = wb["推荐人选"]
    headers = [c.value for c in sheet[1]]
    assert headers[:17] == ["县市区", "姓名", "性别", "出生年月", "民族", "籍贯", "政治面貌", "工作单位及职务",
                            "家庭地址", "联系电话", "所获荣誉情况", "主要事迹", "推荐单位意见",
                            "纪检监察部门意见", "成员单位意见", "审批意见", "照片"]
    assert sheet.freeze_panes == "A2"
    rows = [dict(zip(headers, (c.value for c in row))) for row in sheet.iter_rows(min_row=2)]
    assert [(r["县市区"], r["姓名"], r["状态"]) for r in rows] == [
        ("荷塘区", "张三", "已受理"), ("芦淞区", "张三", "需补正"),
        ("石峰区", "李四", "需补正"), ("石峰区", "王五", "已受理")]
    assert rows[0]["联系电话"] == "13807310000" and rows[0]["出生年月"] == "1985-06"
    assert "纪检监察部门意见" in rows[1]["问题"] and rows[0]["问题"] is None
    assert wb["来信记录"].max_row == 1 + 5


def test_a_second_run_for_the_same_date_sends_nothing_and_force_sends_again(seeded, smtp_server):
    digest(seeded, "--date", "2022-07-20")
    [first] = smtp_server.wait_for(1)
    result = digest(seeded, "--date", "2022-07-20")
    assert "already sent" in result.stdout
    assert len(smtp_server.attempts) == 1
    digest(seeded, "--date", "2022-07-20", "--force")
    first_again, forced = smtp_server.wait_for(2)
    assert forced.message["X-Intake-Digest"] == "2022-07-20"
    assert forced.message["Message-ID"] != first.message["Message-ID"]


def test_a_dry_run_prints_the_digest_and_neither_sends_nor_records_it(seeded, smtp_server):
    result = digest(seeded, "--date", "2022-07-20", "--dry-run")
    assert result.stdout.startswith("【信息技术能手】每日汇总 2022年7月20日")
    assert "占用名额4/27" in result.stdout
    assert smtp_server.attempts == []
    digest(seeded, "--date", "2022-07-20")     # the dry run did not use up the date
    assert len(smtp_server.wait_for(1)) == 1


def test_the_next_days_digest_lists_what_arrived_since(seeded, smtp_server):
    digest(seeded, "--date", "2022-07-20")
    smtp_server.wait_for(1)
    poll(seeded, [form_email("youxian@example.cn", samples.SAMPLE_CANDIDATES[3], subject="攸县推荐表")],
         JULY_20 + dt.timedelta(days=1))
    smtp_server.wait_for(2)
    smtp_server.clear()
    digest(seeded, "--date", "2022-07-21")
    [received] = smtp_server.wait_for(1)
    text = received.message.get_body(("plain",)).get_content()
    assert "自上期汇总（7月20日 24:00）以来的新来信" in text
    new_section = text.split("以来的新来信")[1].split("五、")[0]
    assert "攸县 《攸县推荐表》 已受理：赵六" in new_section
    assert "荷塘区" not in new_section


def test_a_digest_the_server_could_not_take_waits_in_the_outbox_and_goes_out_once(
        seeded, smtp_server, monkeypatch):
    smtp_server.stop()
    result = intake(seeded, "digest", "--date", "2022-07-20", env=ENV)
    assert result.returncode == 0, result.stderr
    assert "not sent yet" in result.stderr
    smtp_server.start()
    result = digest(seeded, "--date", "2022-07-20")     # a second run does not make another
    assert "already queued" in result.stdout
    # The outbox retries it when its back-off is over, as the worker's next pass does.
    monkeypatch.setenv("INTAKE_SMTP_PASSWORD", ENV["INTAKE_SMTP_PASSWORD"])
    settings = load_settings(seeded)
    store = Store(settings.store.path, settings.store.files)
    try:
        later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=2)
        assert deliver_pending(store, transport_for(settings.smtp), later).sent == 1
    finally:
        store.close()
    [received] = smtp_server.wait_for(1)
    assert received.message["X-Intake-Digest"] == "2022-07-20"
    assert "already sent" in digest(seeded, "--date", "2022-07-20").stdout
    assert len(smtp_server.attempts) == 1


def test_status_shows_the_digests_figures(seeded):
    result = intake(seeded, "status", env=ENV)
    assert result.returncode == 0, result.stderr
    assert "合计：推荐人选 4 名（已受理 2，需补正 2），名额 4/27" in result.stdout
    assert "尚未报送：天元区、渌口区、醴陵市、攸县、茶陵县、炎陵县。" in result.stdout
    assert "未登记的发件地址：1 个" in result.stdout
