"""What intake holds stays with the service user: logs name Message-IDs and counties, never a
candidate's phone number, address or deeds, nor a password; the store and its files are 0600 in
0700 directories."""
import datetime as dt
import stat

from pipeline import sample_mail, samples
from tests.cli import exported, intake
from tests.configs import MAILBOX, write_config

TZ = dt.timezone(dt.timedelta(hours=8))
JULY_20 = dt.datetime(2022, 7, 20, 10, 0, tzinfo=TZ)
IMAP_PASSWORD = "Imap-Pa55-4711"
SMTP_USER, SMTP_PASSWORD = "intake@example.cn", "Smtp-Pa55-0815"

CANDIDATE = {**samples.SAMPLE_CANDIDATE, "name": "周七", "phone": "139 7331 4455",
             "home_address": "株洲市荷塘区红旗路77号3栋",
             "deeds": "独立开发了全市中小学智慧校园管理平台，覆盖学校210所，服务师生18万人。"}
SECRETS = ("13973314455", "139 7331 4455", "7331", "红旗路77号", "智慧校园", "18万人",
           IMAP_PASSWORD, SMTP_PASSWORD)


def test_logs_carry_no_personal_data_or_passwords_and_the_store_is_private(tmp_path, dovecot, smtp_server_factory):
    user, _ = dovecot.add_user(password=IMAP_PASSWORD)
    smtp = smtp_server_factory(auth=True, password=SMTP_PASSWORD)
    config = write_config(
        tmp_path,
        mailbox={"transport": "imap", "host": dovecot.host, "port": dovecot.tls_port, "security": "ssl",
                 "username": user, "password_env": "INTAKE_IMAP_PASSWORD", "folder": "INBOX",
                 "ca_file": str(dovecot.ca_file)},
        smtp={"transport": "smtp", "host": "127.0.0.1", "port": smtp.port, "security": "none",
              "username": SMTP_USER, "password_env": "INTAKE_SMTP_PASSWORD", "from_address": MAILBOX},
        # the store in a directory intake creates itself
        replace={f'path = "{tmp_path}/intake.json"': f'path = "{tmp_path}/var/intake.json"',
                 f'files = "{tmp_path}/files"': f'files = "{tmp_path}/var/files"'})
    env = {"INTAKE_IMAP_PASSWORD": IMAP_PASSWORD, "INTAKE_SMTP_PASSWORD": SMTP_PASSWORD}
    for i, form in enumerate((CANDIDATE, {**CANDIDATE, "deeds": CANDIDATE["deeds"] * 20})):
        dovecot.append(user, IMAP_PASSWORD, sample_mail.foxmail_email(
            "hetang@example.cn", MAILBOX, "推荐表", [("周七推荐表.docx", samples.build_form_docx(form))],
            message_id=f"<pii-{i}@example.cn>"), internaldate=JULY_20)

    logs = []
    result = intake(config, "-v", "poll", "--once", env=env)
    assert result.returncode == 0, result.stderr
    logs.append(result.stderr)
    assert "<pii-0@example.cn> from county 荷塘区: accepted" in result.stderr   # what a log does say
    assert "<pii-1@example.cn> from county 荷塘区: needs-correction" in result.stderr
    assert len(smtp.wait_for(2)) == 2
    # The failure paths speak too: a refused SMTP login, a refused IMAP login.
    dovecot.append(user, IMAP_PASSWORD, sample_mail.foxmail_email(
        "lusong@example.cn", MAILBOX, "推荐表", [("周七推荐表.docx", samples.build_form_docx(CANDIDATE))],
        message_id="<pii-2@example.cn>"), internaldate=JULY_20)
    refused = intake(config, "-v", "poll", "--once", env={**env, "INTAKE_SMTP_PASSWORD": SMTP_PASSWORD + "x"})
    assert refused.returncode == 1 and "refused the login" in refused.stderr
    logs.append(refused.stderr)
    refused = intake(config, "-v", "poll", "--once", env={**env, "INTAKE_IMAP_PASSWORD": IMAP_PASSWORD + "x"})
    assert refused.returncode == 1
    logs.append(refused.stderr)
    for command in (("status",), ("outbox",), ("failed",)):
        shown = intake(config, "-v", *command, env=env)
        assert shown.returncode == 0, shown.stderr
        logs.append(shown.stderr)

    for text in logs:
        for secret in SECRETS:
            assert secret not in text, f"{secret!r} in the log:\n{text}"
    assert exported(config)["candidates"][0]["phone"] == "13973314455"   # it is kept, in the store

    var = tmp_path / "var"
    entries = [var, *var.rglob("*")]
    assert any(p.name.startswith("intake.json") for p in entries)
    assert sum(1 for p in entries if p.is_file() and p.parent.parent.name == "files") >= 1
    for path in entries:
        mode = stat.S_IMODE(path.stat().st_mode)
        if path.is_dir():
            assert mode == 0o700, f"{path} is {oct(mode)}"
        else:
            assert mode & 0o077 == 0, f"{path} is {oct(mode)}"
