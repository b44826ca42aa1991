"""The real path: a county's email APPENDed to Dovecot, `intake poll --once`, the reply at an
SMTP server (aiosmtpd), the roster in the json export."""
import email
import time

from bench.county_mail import county_emails
from pipeline import sample_mail, samples
from pipeline.sources import FETCH_BATCH
from tests.cli import exported, intake
from tests.configs import MAIL_RECEIVED, MAILBOX, SMTP_USER, mail_server_config, write_config
from tests.faults.county_mail import append_all

JULY_20 = MAIL_RECEIVED


def form_email(sender: str, form: dict, message_id: str, filename: str | None = None) -> bytes:
    name = filename or f"{form['name']}推荐表.docx"
    return sample_mail.foxmail_email(sender, MAILBOX, f"荷塘区信息技术能手推荐表（{form['name']}）",
                                     [(name, samples.build_form_docx(form))], message_id=message_id)


def test_a_foxmail_form_is_answered_once_and_recorded(mail, smtp_server):
    # 喆 is outside GB2312: Foxmail's "gb2312" label really means GBK.
    form = {**samples.SAMPLE_CANDIDATE, "name": "王喆"}
    mail.append(form_email("hetang@example.cn", form, "<fox-1@example.cn>"))

    result = mail.poll()
    assert result.returncode == 0, result.stderr
    [reply] = smtp_server.wait_for(1)
    msg = reply.message
    assert msg["X-Intake-Status"] == "accepted"
    assert msg["X-Intake-Problems"] is None
    assert msg["In-Reply-To"] == "<fox-1@example.cn>"
    assert "<fox-1@example.cn>" in msg["References"]
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["Subject"] == "【已受理】荷塘区 王喆 信息技术能手推荐表 〔2022〕荷塘-001 7月20日10:15收到"
    assert reply.rcpt_tos == ["hetang@example.cn"]
    assert reply.envelope_from == SMTP_USER  # 163 refuses any envelope sender but the login
    assert "附件《王喆推荐表.docx》：王喆" in msg.get_body(("plain",)).get_content()

    export = mail.export()
    [cand] = export["candidates"]
    assert {k: cand[k] for k in ("county", "name", "sex", "birth", "ethnicity", "native_place",
                                 "political_status", "phone", "photo", "status")} == {
        "county": "荷塘区", "name": "王喆", "sex": "男", "birth": "1985-06", "ethnicity": "汉族",
        "native_place": samples.SAMPLE_CANDIDATE["native_place"], "political_status": "中共党员",
        "phone": "13807310000", "photo": True, "status": "accepted"}
    assert cand["employer_post"] and cand["home_address"] and cand["deeds"]
    assert set(cand["opinions"]) == {"recommender", "discipline", "member_unit", "approval"}
    [sub] = export["submissions"]
    assert sub["received_at"] == "2022-07-20T10:15:00+08:00"  # INTERNALDATE, not the Date header
    assert sub["files"][0]["name"] == "王喆推荐表.docx"

    again = mail.poll()
    assert again.returncode == 0, again.stderr
    time.sleep(0.3)
    assert len(smtp_server.messages) == 1
    assert mail.export() == export


def test_a_form_to_correct_gets_the_codes_and_a_chinese_explanation(mail, smtp_server):
    form = {**samples.SAMPLE_CANDIDATE, "deeds": "事" * 650,
            "opinions": {**samples.SAMPLE_CANDIDATE["opinions"], "discipline": ""}}
    mail.append(form_email("hetang@example.cn", form, "<fox-2@example.cn>", "荷塘区推荐表.docx"))
    assert mail.poll().returncode == 0
    [reply] = smtp_server.wait_for(1)
    assert reply.message["X-Intake-Status"] == "needs-correction"
    assert reply.message["X-Intake-Problems"] == "deeds-too-long, missing-opinion:discipline"
    text = reply.message.get_body(("plain",)).get_content()
    assert "附件《荷塘区推荐表.docx》中主要事迹现为650字，超过600字上限" in text
    assert "附件《荷塘区推荐表.docx》中“纪检监察部门意见”为空" in text
    html = reply.message.get_body(("html",)).get_content()
    assert "纪检监察部门意见" in html


def test_robots_and_our_own_mail_are_recorded_but_not_answered(mail, smtp_server):
    mail.append(sample_mail.auto_reply("hetang@example.cn", MAILBOX))
    mail.append(sample_mail.bounce("mx.example.cn", MAILBOX, "lusong@example.cn"))
    mail.append(form_email(MAILBOX, samples.SAMPLE_CANDIDATE, "<own@163.com>"))
    result = mail.poll()
    assert result.returncode == 0, result.stderr
    time.sleep(0.3)
    assert smtp_server.messages == []
    reasons = sorted(s["reason"] for s in mail.export()["submissions"])
    assert reasons == ["auto-reply", "bounce", "own address"]


def test_the_id_command_follows_login_and_precedes_select(mail, dovecot):
    assert mail.poll().returncode == 0
    sessions = dovecot.wait_for_imap_command(mail.user, "SELECT")
    commands = sessions[0]
    assert commands.index("LOGIN") < commands.index("ID") < commands.index("SELECT")


def test_starttls_works_with_the_private_ca(tmp_path, dovecot, imap_account, smtp_server):
    user, password = imap_account
    config = write_config(tmp_path, mailbox={
        "transport": "imap", "host": dovecot.host, "port": dovecot.port, "security": "starttls",
        "username": user, "password_env": "PW", "ca_file": str(dovecot.ca_file)})
    dovecot.append(user, password, form_email("hetang@example.cn", samples.SAMPLE_CANDIDATE, "<st@x.cn>"),
                   internaldate=JULY_20)
    result = intake(config, "poll", "--once", env={"PW": password})
    assert result.returncode == 0, result.stderr
    assert exported(config)["candidates"][0]["name"] == "张三"


def one_clear_line(result) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [l for l in result.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("intake: error: ")
    return lines[0]


def test_a_certificate_it_cannot_verify_is_refused(tmp_path, dovecot, imap_account):
    user, password = imap_account
    config = write_config(tmp_path, mailbox={
        "transport": "imap", "host": dovecot.host, "port": dovecot.tls_port, "security": "ssl",
        "username": user, "password_env": "PW"})
    line = one_clear_line(intake(config, "poll", "--once", env={"PW": password}))
    assert "certificate cannot be verified" in line and "ca_file" in line


def test_a_wrong_password_is_one_line_without_the_password(mail):
    line = one_clear_line(intake(mail.config, "poll", "--once",
                                 env={**mail.env, "INTAKE_IMAP_PASSWORD": "wrong-Pa55"}))
    assert "refused the login" in line and "INTAKE_IMAP_PASSWORD" in line
    assert "wrong-Pa55" not in line


def test_an_unreachable_server_is_one_line(tmp_path):
    from tests.servers.dovecot import free_port
    config = write_config(tmp_path, mailbox={
        "transport": "imap", "host": "127.0.0.1", "port": free_port(), "security": "ssl",
        "username": "u@example.cn", "password_env": "PW"})
    line = one_clear_line(intake(config, "poll", "--once", env={"PW": "x"}))
    assert "unreachable" in line


def test_a_bad_config_key_is_one_line(tmp_path):
    config = write_config(tmp_path, replace={"deeds_max_chars = 600": 'deeds_max_chars = "六百"'})
    line = one_clear_line(intake(config, "poll", "--once"))
    assert "campaign.deeds_max_chars must be a whole number" in line and str(config) in line


def test_a_missing_password_variable_is_one_line(mail):
    env = {k: v for k, v in mail.env.items() if k != "INTAKE_IMAP_PASSWORD"}
    line = one_clear_line(intake(mail.config, "poll", "--once", env=env))
    assert "INTAKE_IMAP_PASSWORD" in line


def test_a_backlog_of_several_batches_is_answered_once_in_order_over_one_login(
        tmp_path, dovecot, imap_account, smtp_server):
    # 60 emails: three fetches of FETCH_BATCH, each next one fetched while the one before is
    # processed, on the same connection (163 limits logins at once).
    user, password = imap_account
    config, env = mail_server_config(tmp_path, dovecot, imap_account, smtp_server.port,
                                     batch_size=100, per_sender_hourly_cap=100)
    emails = county_emails(2 * FETCH_BATCH + 10, tag="backlog")
    append_all(dovecot, user, password, emails)
    sent_ids = [email.message_from_bytes(raw)["Message-ID"] for raw, _ in emails]

    result = intake(config, "poll", "--once", env=env)
    assert result.returncode == 0, result.stderr
    replies = smtp_server.wait_for(len(emails))
    assert sorted(r.message["In-Reply-To"] for r in replies) == sorted(sent_ids)
    export = exported(config, env=env)
    assert [s["message_id"] for s in export["submissions"]] == sent_ids   # the mailbox's order
    [ours] = [s for s in dovecot.imap_sessions(user) if "ID" in s]
    assert ours.count("LOGIN") == 1 and ours.count("SELECT") == 1
    assert ours.count("UID FETCH") == 2 * 3   # sizes, then bodies, for each of the three batches

    assert intake(config, "poll", "--once", env=env).returncode == 0
    time.sleep(0.3)
    assert len(smtp_server.messages) == len(emails)
