"""The municipal contact's side, end to end on Dovecot + aiosmtpd: a clerk's question reaches a
person, a thank-you does not; reminders before the deadlines; review marks in every export; the
originals for the expert review."""
import csv
import datetime as dt
import io
import zipfile
from pathlib import Path

import docx
import openpyxl

from pipeline import sample_mail, samples
from pipeline.sample_mail import client_reply
from tests.cli import intake
from tests.configs import MAIL_RECEIVED, MAILBOX

COUNTIES = {"foxmail": "hetang@example.cn", "outlook": "lusong@example.cn", "qq": "shifeng@example.cn",
            "163": "tianyuan@example.cn"}
NAMES = {"hetang@example.cn": "荷塘区", "lusong@example.cn": "芦淞区", "shifeng@example.cn": "石峰区",
         "tianyuan@example.cn": "天元区"}
QUESTIONS = {
    "foxmail": "罗老师您好，请问调研报告是否有字数要求？",
    "outlook": "张三的工作单位写错了，应为株洲市大数据中心，麻烦帮忙改一下。",
    "qq": "请问盖章的纸质推荐表需要寄到市工信局吗？",
    "163": "我县另一名人选的纪检意见还在走流程，能否延后几天报送",
}


def set_config(config: Path, **swaps: str) -> None:
    text = config.read_text(encoding="utf-8")
    for old, new in swaps.items():
        assert old in text, old
        text = text.replace(old, new)
    config.write_text(text, encoding="utf-8")


def form_email(sender: str, candidate: dict, extra: list[tuple[str, bytes]] = (), subject: str = "推荐表") -> bytes:
    files = [(f"{candidate['name']}推荐表.docx", samples.build_form_docx(candidate)), *extra]
    return sample_mail.foxmail_email(sender, MAILBOX, subject, files)


def poll(mail) -> None:
    result = mail.poll()
    assert result.returncode == 0, result.stderr


def text_of(received) -> str:
    return received.message.get_body(("plain",)).get_content()


def run(mail, *args: str):
    result = intake(mail.config, *args, env=mail.env)
    assert result.returncode == 0, result.stderr
    return result


# ------------------------------------------------------------------ questions

def test_a_clerks_question_from_each_client_reaches_the_contact_and_a_thank_you_does_not(mail, smtp_server):
    set_config(mail.config, **{"forward_questions = false": "forward_questions = true"})
    for sender in [*COUNTIES.values(), "youxian@example.cn"]:
        mail.append(form_email(sender, samples.SAMPLE_CANDIDATE))
    poll(mail)
    receipts = {r.rcpt_tos[0]: r.message for r in smtp_server.wait_for(5, timeout=60)}
    smtp_server.clear()

    later = MAIL_RECEIVED + dt.timedelta(hours=2)
    for client, sender in COUNTIES.items():
        mail.append(client_reply(client, sender, MAILBOX, QUESTIONS[client], subject=receipts[sender]["Subject"],
                                 in_reply_to=receipts[sender]["Message-ID"]), when=later)
    mail.append(client_reply("163", "youxian@example.cn", MAILBOX, "收到，谢谢",
                             in_reply_to=receipts["youxian@example.cn"]["Message-ID"]), when=later)
    poll(mail)
    got = smtp_server.wait_for(8, timeout=60)
    passed_on = {r.rcpt_tos[0]: r.message for r in got if r.message["X-Intake-Status"] == "needs-person"}
    forwards = [r for r in got if r.message["X-Intake-Question"]]
    assert set(passed_on) == set(COUNTIES.values())              # every clerk is told, the thanker is not
    assert "youxian@example.cn" not in [r.rcpt_tos[0] for r in got]
    for sender, reply in passed_on.items():
        body = reply.get_body(("plain",)).get_content()
        assert reply["Subject"].startswith(f"【已转交】{NAMES[sender]} 来信已转市工信局联系人 〔2022〕")
        assert "已转交市工信局联系人罗树刚同志" in body and "联系电话：28681892" in body
        assert "推荐表报送截止时间为2022年7月31日" in body and "主题为“查询”的邮件" in body
        assert reply["In-Reply-To"]
    assert len(forwards) == 4 and all(f.rcpt_tos == ["contact@example.cn"] for f in forwards)
    by_county = {f.message["Reply-To"]: text_of(f) for f in forwards}
    for client, sender in COUNTIES.items():
        assert QUESTIONS[client] in by_county[sender]
        assert "原始邮件" not in by_county[sender] and "张敏" not in by_county[sender]

    statuses = {s["from"]: (s["status"], s.get("words"), s["reason"])
                for s in mail.export()["submissions"] if s["received_at"].startswith("2022-07-20T12")}
    assert statuses["youxian@example.cn"] == ("skipped", None, "answer to our reply without documents")
    for client, sender in COUNTIES.items():
        assert statuses[sender] == ("needs-person", QUESTIONS[client], "")

    smtp_server.clear()
    run(mail, "digest", "--date", "2022-07-20")
    [digest] = smtp_server.wait_for(1, timeout=60)
    text = text_of(digest)
    first = text.split("一、总体情况")[0]
    assert "【待人工处理的来信（4 封）】" in first
    for question in QUESTIONS.values():
        assert question in first
    assert "写道" not in first and "原始邮件" not in first and "收到，谢谢" not in first
    assert "另有 1 封自动回复、退信等邮件" in text     # the thank-you, recorded and not answered

    listed = run(mail, "questions").stdout
    assert all(NAMES[s] in listed for s in COUNTIES.values())
    first_id = next(s["message_id"] for s in mail.export()["submissions"]
                    if s["status"] == "needs-person" and s["from"] == "hetang@example.cn")
    assert "answered at" in run(mail, "answered", first_id, "--note", "电话答复").stdout
    assert "荷塘区" not in run(mail, "questions").stdout
    today = run(mail, "digest", "--dry-run").stdout
    assert "【待人工处理的来信（3 封）】" in today and QUESTIONS["foxmail"] not in today.split("一、")[0]
    again = intake(mail.config, "answered", first_id, env=mail.env)
    assert again.returncode == 1 and "already marked answered" in again.stderr


def test_without_forwarding_the_question_waits_for_the_digest_and_only_the_clerk_hears(mail, smtp_server):
    mail.append(sample_mail.foxmail_email("liling@example.cn", MAILBOX, "请问报告截止时间", [], body=""))
    poll(mail)
    [reply] = smtp_server.wait_for(1, timeout=60)
    assert reply.rcpt_tos == ["liling@example.cn"] and reply.message["X-Intake-Status"] == "needs-person"
    assert "请问报告截止时间" in run(mail, "questions").stdout
    unknown = intake(mail.config, "answered", "<nobody@example.cn>", env=mail.env)
    assert unknown.returncode == 1 and "no question has Message-ID" in unknown.stderr


def test_a_fresh_email_that_forgot_its_attachment_is_asked_for_it_not_passed_on(mail, smtp_server):
    mail.append(sample_mail.foxmail_email("hetang@example.cn", MAILBOX, "推荐表", [], body="推荐表请查收附件，谢谢！"))
    poll(mail)
    [reply] = smtp_server.wait_for(1, timeout=60)
    assert reply.message["X-Intake-Status"] == "needs-correction"
    assert reply.message["X-Intake-Problems"] == "no-attachment"


# ------------------------------------------------------------------ reminders

def test_reminders_go_to_exactly_the_incomplete_counties_on_the_configured_dates_once(mail, smtp_server):
    set_config(mail.config, **{"days_before = []": "days_before = [7, 3, 1]"})
    no_discipline = {**samples.SAMPLE_CANDIDATES[1],
                     "opinions": {**samples.SAMPLE_CANDIDATES[1]["opinions"], "discipline": ""}}
    mail.append(form_email("hetang@example.cn", samples.SAMPLE_CANDIDATE))
    mail.append(form_email("lusong@example.cn", no_discipline))
    poll(mail)
    smtp_server.wait_for(2, timeout=60)
    smtp_server.clear()

    assert "not a reminder day" in run(mail, "remind", "--date", "2022-07-25").stdout   # 6 days before
    run(mail, "remind", "--date", "2022-07-24")                                          # 7 days before
    got = smtp_server.wait_for(8, timeout=60)
    incomplete = {"lusong@example.cn", "shifeng@example.cn", "tianyuan@example.cn", "lukou@example.cn",
                  "liling@example.cn", "youxian@example.cn", "chaling@example.cn", "yanling@example.cn"}
    assert sorted(r.rcpt_tos[0] for r in got) == sorted(incomplete)       # 荷塘区 is complete
    by_to = {r.rcpt_tos[0]: r.message for r in got}
    lusong = by_to["lusong@example.cn"].get_body(("plain",)).get_content()
    assert "推荐表报送截止时间为2022年7月31日（还有7天）" in lusong
    assert "李四的推荐表需补正" in lusong and "纪检监察部门意见" in lusong
    assert "主题为“查询”的邮件" in lusong and "28681892" in lusong
    assert "尚未收到贵单位的推荐表" in by_to["shifeng@example.cn"].get_body(("plain",)).get_content()
    assert by_to["shifeng@example.cn"]["Auto-Submitted"] == "auto-generated"

    second = run(mail, "remind", "--date", "2022-07-24").stdout              # never twice a date
    assert "already reminded today" in second
    digest = run(mail, "digest", "--date", "2022-07-24", "--dry-run").stdout
    reminders = digest.split("八、今日发出的截止前提醒")[1].split("九、")[0]
    assert "芦淞区（2022年7月31日截止）" in reminders and "荷塘区" not in reminders
    assert len(smtp_server.wait_for(8, timeout=60)) == 8

    smtp_server.clear()
    run(mail, "remind", "--date", "2022-09-29")                               # 1 day before the reports
    got = smtp_server.wait_for(2, timeout=60)
    assert sorted(r.rcpt_tos[0] for r in got) == ["hetang@example.cn", "lusong@example.cn"]
    assert "尚未收到张三的调研报告" in text_of(next(r for r in got if r.rcpt_tos[0] == "hetang@example.cn"))
    assert "not a reminder day" in run(mail, "remind", "--date", "2022-10-01").stdout  # after the deadline
    assert len(smtp_server.messages) == 2


# ------------------------------------------------------------------ marks and exports

def test_review_marks_show_in_status_digest_json_csv_and_xlsx(mail, tmp_path):
    mail.append(form_email("hetang@example.cn", samples.SAMPLE_CANDIDATE))
    mail.append(form_email("liling@example.cn", samples.SAMPLE_CANDIDATES[1]))
    poll(mail)
    assert "入围备选名单" in run(mail, "mark", "张三", "--county", "荷塘区", "--status", "入围", "--note", "初选通过").stdout
    run(mail, "mark", "李四", "--county", "醴陵市", "--status", "储备库")
    bad = intake(mail.config, "mark", "李四", "--county", "醴陵市", "--status", "优秀", env=mail.env)
    assert bad.returncode == 2 and "入库" in bad.stderr

    [zhang] = [c for c in mail.export()["candidates"] if c["name"] == "张三"]
    assert zhang["review"]["status"] == "shortlisted" and zhang["review"]["at"].endswith("+08:00")
    status = run(mail, "status").stdout
    assert "评审：荷塘区 张三 入围备选名单（初选通过）" in status and "评审：醴陵市 李四 入储备库" in status
    digest = run(mail, "digest", "--dry-run").stdout
    assert "荷塘区 张三：入围备选名单（初选通过）" in digest

    rows = list(csv.DictReader(io.StringIO(run(mail, "export", "--format", "csv").stdout.lstrip("\ufeff"))))
    assert {r["姓名"]: r["评审"] for r in rows} == {"张三": "入围备选名单（初选通过）", "李四": "入储备库"}
    assert rows[0]["联系电话"] == '="13807310000"' and rows[0]["出生年月"] == '="1985-06"'

    run(mail, "export", "--format", "xlsx", "-o", str(tmp_path / "名单.xlsx"))
    sheet = openpyxl.load_workbook(tmp_path / "名单.xlsx")["推荐人选"]
    headers = [c.value for c in sheet[1]]
    marks = {row[headers.index("姓名")].value: row[headers.index("评审")].value for row in sheet.iter_rows(min_row=2)}
    assert marks == {"张三": "入围备选名单（初选通过）", "李四": "入储备库"}
    assert sheet.page_setup.orientation == "landscape" and sheet.page_setup.fitToWidth == 1
    assert sheet.sheet_properties.pageSetUpPr.fitToPage
    assert sheet.row_dimensions[2].height > 100     # the deeds wrap over many lines


def test_the_files_export_holds_every_original_under_its_own_name(mail, tmp_path):
    form = samples.build_form_docx(samples.SAMPLE_CANDIDATE)
    scan = samples.sample_photo_png(200, 280)
    report = samples.build_report_docx("张三调研报告：政务数据共享", "一、基本情况\n全市已建成政务云平台。")
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("王五推荐表.docx", samples.build_form_docx(samples.SAMPLE_CANDIDATES[2]))
    mail.append(sample_mail.foxmail_email("hetang@example.cn", MAILBOX, "推荐表",
                                          [("张三推荐表.docx", form), ("张三推荐表盖章件.png", scan)]))
    mail.append(sample_mail.foxmail_email("hetang@example.cn", MAILBOX, "张三调研报告",
                                          [("关于政务数据共享的调研报告.docx", report)]),
                when=MAIL_RECEIVED + dt.timedelta(days=40))
    mail.append(sample_mail.foxmail_email("shifeng@example.cn", MAILBOX, "推荐表", [("石峰区材料.zip", zipped.getvalue())]))
    poll(mail)

    out = tmp_path / "评审材料"
    assert "wrote" in run(mail, "export", "--format", "files", "-o", str(out)).stdout
    assert (out / "荷塘区" / "张三" / "张三推荐表.docx").read_bytes() == form
    assert (out / "荷塘区" / "张三" / "张三推荐表盖章件.png").read_bytes() == scan
    assert (out / "荷塘区" / "张三" / "关于政务数据共享的调研报告.docx").read_bytes() == report
    assert (out / "石峰区" / "王五" / "王五推荐表.docx").exists()           # taken out of the zip
    roster = docx.Document(str(out / "信息技术能手推荐人选名单（领导小组）.docx"))
    cells = [c.text for row in roster.tables[0].rows for c in row.cells]
    assert cells[:8] == ["序号", "姓名", "性别", "出生年月", "政治面貌", "工作单位及职务", "县市区", "状态"]
    assert "张三" in cells and "王五" in cells
    whole = " ".join(cells)
    assert "13807310000" not in whole and "泰山路" not in whole           # no phone, no address
    assert roster.sections[0].page_width > roster.sections[0].page_height   # landscape

    run(mail, "export", "--format", "files", "-o", str(tmp_path / "评审材料.zip"))
    with zipfile.ZipFile(tmp_path / "评审材料.zip") as archive:
        assert archive.read("荷塘区/张三/张三推荐表.docx") == form
        assert "荷塘区/张三/关于政务数据共享的调研报告.docx" in archive.namelist()
