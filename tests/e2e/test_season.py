"""One county's whole season, April to October, on Dovecot and aiosmtpd through `intake`."""
import datetime as dt

from pipeline import sample_mail, samples
from tests.cli import body_text
from tests.configs import MAILBOX

SH = dt.timezone(dt.timedelta(hours=8))
HETANG = "hetang@example.cn"
ZHANG, LI, WANG, ZHAO = (dict(c) for c in samples.SAMPLE_CANDIDATES[:4])


def on(month: int, day: int, hour: int = 10) -> dt.datetime:
    return dt.datetime(2022, month, day, hour, 0, tzinfo=SH)


def forms_email(subject: str, *forms: dict) -> bytes:
    files = [(f"荷塘区-{f['name']}推荐表.docx", samples.build_form_docx(f)) for f in forms]
    return sample_mail.foxmail_email(HETANG, MAILBOX, subject, files)


def plain_email(subject: str, attachments=()) -> bytes:
    return sample_mail.foxmail_email(HETANG, MAILBOX, subject, list(attachments))


def report_email(subject: str, filename: str, title: str) -> bytes:
    body = f"{title}\n" + "近年来，株洲市推进政务数据共享，取得明显成效。" * 30
    return plain_email(subject, [(filename, samples.build_report_docx(title, body))])


def test_a_county_season(mail, smtp_server):
    def step(raw: bytes, when: dt.datetime, status: str, problems: str | None):
        mail.append(raw, when)
        result = mail.poll()
        assert result.returncode == 0, result.stderr
        replies = smtp_server.wait_for(step.count + 1)
        step.count += 1
        msg = replies[-1].message
        assert (msg["X-Intake-Status"], msg["X-Intake-Problems"]) == (status, problems), body_text(msg)
        return msg
    step.count = 0

    li_unsigned = {**LI, "opinions": {**LI["opinions"], "discipline": ""}}
    msg = step(forms_email("荷塘区推荐表两份", ZHANG, li_unsigned), on(4, 10),
               "needs-correction", "missing-opinion:discipline")
    assert "【已受理】附件《荷塘区-张三推荐表.docx》：张三" in body_text(msg)
    assert "已占用推荐名额 2 个" in body_text(msg)

    msg = step(forms_email("李四推荐表（补正）", LI), on(4, 15), "accepted", None)
    assert "已占用推荐名额 2 个" in body_text(msg)  # an update, not a new place

    step(forms_email("王五推荐表", WANG), on(5, 1), "accepted", None)

    msg = step(forms_email("赵六推荐表", ZHAO), on(5, 10), "needs-correction", "quota-exceeded")
    assert "最多推荐3名" in body_text(msg) and "撤回" in body_text(msg)

    msg = step(plain_email("撤回李四"), on(5, 20), "withdrawn", None)
    assert msg["Subject"] == "【已撤回】荷塘区 李四 信息技术能手推荐人选 〔2022〕荷塘-005 5月20日10:00收到"
    assert "已撤回推荐人选：李四" in body_text(msg) and "已占用推荐名额 2 个" in body_text(msg)

    msg = step(forms_email("赵六推荐表（重新报送）", ZHAO), on(5, 21), "accepted", None)
    assert msg["Subject"].startswith("【已受理】荷塘区 赵六（第2次报送） 信息技术能手推荐表 〔2022〕荷塘-006")
    assert "已占用推荐名额 3 个" in body_text(msg)

    msg = step(plain_email("查询"), on(6, 1), "accepted", None)
    text = body_text(msg)
    assert msg["Subject"] == "【进度查询】荷塘区 信息技术能手推荐情况 〔2022〕荷塘-007 6月1日10:00收到"
    for line in ("张三：已受理", "王五：已受理", "赵六：已受理", "李四：已撤回"):
        assert line in text
    assert "调研报告：尚未收到" in text

    msg = step(report_email("张三调研报告", "调研报告.docx", "关于株洲市政务数据共享的调研报告"),
               on(9, 10), "accepted", None)
    assert "【已收到】调研报告《调研报告.docx》：张三" in body_text(msg)

    msg = step(report_email("王五项目总结", "项目总结.docx", "株洲市政务云建设项目总结"),
               on(10, 8), "rejected", "late")
    assert "调研报告报送截止时间为2022年9月30日" in body_text(msg)

    msg = step(forms_email("补报推荐表", {**ZHANG, "name": "钱七"}), on(8, 5), "rejected", "late")
    assert "推荐表报送截止时间为2022年7月31日" in body_text(msg)

    export = mail.export()
    people = {c["name"]: c for c in export["candidates"]}
    assert {n: c["status"] for n, c in people.items()} == {
        "张三": "accepted", "李四": "withdrawn", "王五": "accepted", "赵六": "accepted"}
    assert [v["status"] for v in people["李四"]["versions"]] == ["needs-correction", "accepted"]
    assert [v["status"] for v in people["赵六"]["versions"]] == ["quota-exceeded", "accepted"]
    assert people["张三"]["report"]["title"] == "关于株洲市政务数据共享的调研报告"
    assert people["张三"]["report"]["chars"] > 300
    assert people["王五"]["report"] is None
    assert "钱七" not in people
    # The export lists messages by receipt time: the August form before the September report.
    assert [(s["received_at"][5:10], s["status"]) for s in export["submissions"]] == [
        ("04-10", "needs-correction"), ("04-15", "accepted"), ("05-01", "accepted"),
        ("05-10", "needs-correction"), ("05-20", "withdrawn"), ("05-21", "accepted"),
        ("06-01", "accepted"), ("08-05", "rejected"), ("09-10", "accepted"), ("10-08", "rejected")]
