"""Tests of the test servers themselves (tests/servers, tests/conftest.py)."""

from __future__ import annotations

import datetime as dt
import smtplib
import socket
import ssl
from email.message import EmailMessage

import pytest
from imapclient import IMAPClient

from tests.conftest import SMTP_PASSWORD, SMTP_USER
from tests.servers import dovecot as dovecot_module

CST = dt.timezone(dt.timedelta(hours=8))


def make_message(subject: str = "报名材料", to: str = "someone@example.cn") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = SMTP_USER
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content("你好，附件是报名表。\n")
    return msg


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


# --------------------------------------------------------------------- Dovecot


def test_append_keeps_internaldate(dovecot, imap_account):
    user, password = imap_account
    when = dt.datetime(2024, 3, 5, 9, 30, 15, tzinfo=CST)
    raw = make_message().as_bytes()
    uid = dovecot.append(user, password, raw, internaldate=when, flags=[r"\Seen"])
    assert uid == 1

    client = dovecot.client(user, password)
    client.normalise_times = False  # aware datetimes instead of naive local time
    client.select_folder("INBOX", readonly=True)
    data = client.fetch([uid], ["INTERNALDATE", "FLAGS", "BODY.PEEK[]"])[uid]
    client.logout()
    # Same instant; Maildir keeps INTERNALDATE as the file mtime, so the
    # server answers in its own timezone (UTC here), not +08:00.
    assert data[b"INTERNALDATE"] == when
    assert rb"\Seen" in data[b"FLAGS"]
    assert data[b"BODY[]"].replace(b"\r\n", b"\n") == raw.replace(b"\r\n", b"\n")


def test_special_use_folders_and_idle(dovecot, imap_account):
    user, password = imap_account
    client = dovecot.client(user, password)
    caps = client.capabilities()
    assert b"SPECIAL-USE" in caps and b"IDLE" in caps
    flags_by_name = {name: flags for flags, _sep, name in client.list_folders()}
    assert rb"\Sent" in flags_by_name["Sent"]
    assert rb"\Drafts" in flags_by_name["Drafts"]
    assert rb"\Trash" in flags_by_name["Trash"]
    assert client.find_special_folder(rb"\Sent") == "Sent"

    client.select_folder("INBOX")
    client.idle()
    try:
        dovecot.append(user, password, make_message().as_bytes())
        responses = client.idle_check(timeout=5)
    finally:
        client.idle_done()
    client.logout()
    assert (1, b"EXISTS") in responses


def test_users_added_while_running_can_log_in(dovecot):
    # The passwd-file is re-read when it changes: two users back to back.
    first = dovecot.add_user()
    second = dovecot.add_user("named-user@intake.test", "pa ss")
    for user, password in (first, second):
        client = dovecot.client(user, password)
        assert client.select_folder("INBOX")[b"EXISTS"] == 0
        client.logout()


def test_wrong_password_is_rejected(dovecot, imap_account):
    from imapclient.exceptions import LoginError

    user, _password = imap_account
    with pytest.raises(LoginError):
        dovecot.client(user, "wrong")


def test_implicit_tls_with_ca(dovecot, imap_account):
    user, password = imap_account
    ctx = ssl.create_default_context(cafile=dovecot.ca_file)
    client = IMAPClient(dovecot.host, dovecot.tls_port, ssl=True, ssl_context=ctx, timeout=10)
    client.login(user, password)
    assert client.select_folder("INBOX")[b"EXISTS"] == 0
    client.logout()


def test_implicit_tls_without_ca_fails(dovecot):
    ctx = ssl.create_default_context()  # system CAs only
    with pytest.raises(ssl.SSLCertVerificationError):
        IMAPClient(dovecot.host, dovecot.tls_port, ssl=True, ssl_context=ctx, timeout=10)


def test_starttls_on_plain_port(dovecot, imap_account):
    user, password = imap_account
    client = IMAPClient(dovecot.host, dovecot.port, ssl=False, timeout=10)
    assert b"STARTTLS" in client.capabilities()
    client.starttls(dovecot.ssl_context())
    client.login(user, password)
    client.logout()


def test_id_is_logged_between_login_and_select(dovecot, imap_account):
    user, password = imap_account
    client = dovecot.client(user, password)
    client.id_({"name": "intake", "version": "0.1.0"})
    client.select_folder("INBOX")
    client.logout()

    sessions = dovecot.wait_for_imap_command(user, "LOGOUT")
    assert sessions == [["LOGIN", "ID", "SELECT", "LOGOUT"]]
    # The raw lines: the ID arguments come from the post-login imap process.
    dovecot.wait_for_log(rf"imap\({user}\)<\d+><[^>]+>: Info: ID sent: name=intake, version=0\.1\.0")
    assert f"imap-login: Info: Login: user=<{user}>" in dovecot.log_text()


def test_id_before_login_is_seen_as_prelogin(dovecot, imap_account):
    user, password = imap_account
    client = IMAPClient(dovecot.host, dovecot.port, ssl=False, timeout=10)
    client.id_({"name": "early"})
    client.login(user, password)
    client.select_folder("INBOX")
    client.logout()
    assert dovecot.wait_for_imap_command(user, "LOGOUT") == [["ID", "LOGIN", "SELECT", "LOGOUT"]]


def test_rebuild_mailbox_changes_uidvalidity(dovecot, imap_account):
    user, password = imap_account
    dovecot.append(user, password, make_message("one").as_bytes())
    assert dovecot.append(user, password, make_message("two").as_bytes()) == 2
    client = dovecot.client(user, password)
    client.create_folder("Archive")
    old = client.select_folder("INBOX")[b"UIDVALIDITY"]
    client.logout()

    new = dovecot.rebuild_mailbox(user)

    assert new != old
    client = dovecot.client(user, password)
    status = client.select_folder("INBOX")
    assert status[b"UIDVALIDITY"] == new
    assert status[b"EXISTS"] == 0 and status[b"UIDNEXT"] == 1
    assert "Archive" not in [name for _f, _s, name in client.list_folders()]
    client.logout()
    assert dovecot.append(user, password, make_message("three").as_bytes()) == 1

    assert dovecot.rebuild_mailbox(user, uidvalidity=12345) == 12345


def test_dovecot_stop_start_keeps_ports_and_mail(dovecot, imap_account):
    user, password = imap_account
    dovecot.append(user, password, make_message().as_bytes())
    port, tls_port = dovecot.port, dovecot.tls_port

    dovecot.stop()
    assert not dovecot.is_running()
    assert not port_open(dovecot.host, port)
    assert not port_open(dovecot.host, tls_port)

    dovecot.start()
    assert dovecot.is_running()
    assert (dovecot.port, dovecot.tls_port) == (port, tls_port)
    client = dovecot.client(user, password)
    assert client.select_folder("INBOX")[b"EXISTS"] == 1
    client.logout()


def test_missing_dovecot_fails_with_setup_hint(monkeypatch):
    monkeypatch.setattr(dovecot_module, "_find_binary", lambda name: None)
    with pytest.raises(dovecot_module.DovecotNotInstalled, match="scripts/test"):
        dovecot_module.DovecotServer()


# ------------------------------------------------------------------------ SMTP


def send(server, msg: EmailMessage, *, login: bool = True, password: str = SMTP_PASSWORD) -> None:
    with smtplib.SMTP(server.host, server.port, timeout=10) as smtp:
        if login:
            smtp.login(SMTP_USER, password)
        smtp.send_message(msg)


def test_smtp_receives_message_with_auth(smtp_server):
    send(smtp_server, make_message("报名表", to="a@example.cn"))
    [got] = smtp_server.wait_for(1)
    assert got.envelope_from == SMTP_USER
    assert got.rcpt_tos == ["a@example.cn"]
    assert got.auth_login == SMTP_USER
    assert got.message["Subject"] == "报名表"
    assert got.message.get_content() == "你好，附件是报名表。\n"
    assert b"Subject:" in got.raw


def test_smtp_requires_auth(smtp_server):
    with pytest.raises(smtplib.SMTPSenderRefused) as info:
        send(smtp_server, make_message(), login=False)
    assert info.value.smtp_code == 530
    with pytest.raises(smtplib.SMTPAuthenticationError):
        send(smtp_server, make_message(), password="wrong")
    assert smtp_server.messages == []
    assert set(smtp_server.auth_failures) == {SMTP_USER}  # smtplib tries PLAIN and LOGIN


def test_smtp_scripted_421_then_accept(smtp_server):
    smtp_server.respond_with(["421 4.7.0 HL:ICC try later", "421 4.7.0 HL:ICC try later", None])
    for _ in range(2):
        with pytest.raises(smtplib.SMTPDataError) as info:
            send(smtp_server, make_message())
        assert info.value.smtp_code == 421
        assert b"HL:ICC" in info.value.smtp_error
    send(smtp_server, make_message("third time"))
    [got] = smtp_server.wait_for(1)
    assert got.message["Subject"] == "third time"
    assert [a.reply for a in smtp_server.attempts] == [
        "421 4.7.0 HL:ICC try later",
        "421 4.7.0 HL:ICC try later",
        "250 OK",
    ]
    smtp_server.clear()
    assert smtp_server.messages == [] and smtp_server.attempts == []


def test_smtp_starttls(smtp_server_factory):
    server = smtp_server_factory(auth=True, tls="starttls")
    with smtplib.SMTP(server.host, server.port, timeout=10) as smtp:
        smtp.starttls(context=ssl.create_default_context(cafile=server.ca_file))
        smtp.login(SMTP_USER, SMTP_PASSWORD)
        smtp.send_message(make_message())
    [got] = server.wait_for(1)
    assert got.tls


def test_smtp_implicit_tls(smtp_server_factory):
    server = smtp_server_factory(auth=True, tls="ssl")
    ctx = ssl.create_default_context(cafile=server.ca_file)
    with smtplib.SMTP_SSL(server.host, server.port, context=ctx, timeout=10) as smtp:
        smtp.login(SMTP_USER, SMTP_PASSWORD)
        smtp.send_message(make_message())
    assert server.wait_for(1)[0].tls
    with pytest.raises(ssl.SSLCertVerificationError):
        smtplib.SMTP_SSL(server.host, server.port, context=ssl.create_default_context(), timeout=10)


def test_smtp_stop_start_keeps_port(smtp_server):
    port = smtp_server.port
    smtp_server.stop()
    assert not port_open(smtp_server.host, port)
    smtp_server.start()
    assert smtp_server.port == port
    send(smtp_server, make_message())
    assert len(smtp_server.wait_for(1)) == 1
