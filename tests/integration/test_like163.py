"""The stand-ins for 163's servers (tests/servers/like163.py) behave as 163 does, so a test that
passes on them means something: checked here with plain imapclient and smtplib."""
import smtplib
import ssl
import time
from email.message import EmailMessage

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError
from imapclient.imapclient import SENT

from tests.servers.dovecot import DovecotServer
from tests.servers.like163 import Imap163Proxy, Smtp163Server

ACCOUNT, CODE = "zzdztxhrj@163.com", "auth-code"


@pytest.fixture(scope="module")
def imap163():
    dovecot = DovecotServer(sent_folder="已发送").start()
    proxy = Imap163Proxy(dovecot).start()
    user, password = dovecot.add_user()
    dovecot.append(user, password, b"Subject: hi\r\n\r\nbody\r\n")
    yield proxy, user, password
    proxy.stop()
    dovecot.close()


def connect(proxy) -> IMAPClient:
    return IMAPClient(proxy.host, proxy.port, ssl=True, timeout=10,
                      ssl_context=ssl.create_default_context(cafile=proxy.ca_file))


def test_the_imap_proxy_speaks_like_163(imap163):
    proxy, user, password = imap163
    client = connect(proxy)
    try:
        client.login(user, password)
        assert set(client.capabilities()) == {b"IMAP4REV1", b"XLIST", b"SPECIAL-USE", b"ID", b"LITERAL+",
                                              b"STARTTLS", b"XAPPLEPUSHSERVICE", b"UIDPLUS", b"X-CM-EXT-1"}
        with pytest.raises(IMAPClientError, match="Unsafe Login. Please contact kefu@188.com"):
            client.select_folder("INBOX")
        client.id_({"name": "test"})
        assert client.select_folder("INBOX")[b"EXISTS"] == 1
        assert b"UIDNEXT" not in client.folder_status("INBOX")
        assert client.find_special_folder(SENT) == "已发送"
        client.append("已发送", b"Subject: copy\r\n\r\n" + b"x" * 5000 + b"\r\n")
        assert client.folder_status("已发送")[b"MESSAGES"] == 1
        with pytest.raises(IMAPClientError):
            client.idle()
    finally:
        client.logout()


@pytest.fixture
def smtp163():
    server = Smtp163Server(username=ACCOUNT, password=CODE, subject_repeats=2, per_connection=3).start()
    yield server
    server.close()


def login(server) -> smtplib.SMTP_SSL:
    conn = smtplib.SMTP_SSL(server.host, server.port, context=server.ssl_context(), timeout=10)
    conn.login(ACCOUNT, CODE)
    return conn


def message(subject: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = ACCOUNT, "hetang@example.cn", subject
    msg.set_content("正文")
    return msg


def test_the_smtp_server_refuses_like_163(smtp163):
    conn = login(smtp163)
    try:
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            conn.send_message(message("a"), from_addr="other@163.com")
        assert refused.value.smtp_code == 553 and b"Mail from must equal authorized user" in refused.value.smtp_error
        conn.send_message(message("same"))
        conn.send_message(message("same"))
        with pytest.raises(smtplib.SMTPDataError) as spam:
            conn.send_message(message("same"))
        assert spam.value.smtp_code == 554 and b"DT:SPM" in spam.value.smtp_error
        conn.send_message(message("other"))
        with pytest.raises(smtplib.SMTPSenderRefused) as dmc:   # the fourth on this connection
            conn.send_message(message("fourth"))
        assert dmc.value.smtp_code == 451 and b"MI:DMC" in dmc.value.smtp_error
    finally:
        conn.close()
    assert [str(m.message["Subject"]) for m in smtp163.messages] == ["same", "same", "other"]


def test_a_third_connection_at_once_is_turned_away(smtp163):
    held = [login(smtp163), login(smtp163)]
    with pytest.raises(smtplib.SMTPConnectError) as turned:
        login(smtp163)
    assert turned.value.smtp_code == 421 and b"HL:ICC" in turned.value.smtp_error
    held.pop().quit()
    deadline = time.monotonic() + 5
    while True:                 # a place is free again once the server has seen the QUIT
        try:
            login(smtp163).quit()
            break
        except smtplib.SMTPConnectError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    held.pop().quit()
