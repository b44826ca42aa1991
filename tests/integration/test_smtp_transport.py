"""Replies leave over SMTP as 163 wants them: TLS verified, login, envelope sender = login."""
import datetime as dt
from pathlib import Path

import pytest

from outbox.queue import deliver_pending, enqueue
from outbox.transports import SmtpTransport, TransportUnavailable
from store.repository import Store
from tests.replies import reply

NOW = dt.datetime(2022, 7, 20, 2, 0, tzinfo=dt.timezone.utc)


def transport(server, security: str, password: str = "smtp-secret", ca: bool = True) -> SmtpTransport:
    return SmtpTransport("127.0.0.1", server.port, security, "intake@example.cn", password,
                         "zzdztxhrj@163.com", Path(server.ca_file) if ca else None, timeout=5)


@pytest.mark.parametrize("security", ["none", "starttls", "ssl"])
def test_each_security_mode_delivers_with_login(smtp_server_factory, security):
    server = smtp_server_factory(auth=True, tls=security if security != "none" else "none")
    with transport(server, security) as t:
        t.send(reply())
    [got] = server.wait_for(1)
    assert got.envelope_from == "intake@example.cn"
    assert got.auth_login == "intake@example.cn"
    assert got.tls is (security != "none")
    assert got.message["Subject"].startswith("【已受理】")


def test_an_unverifiable_certificate_is_refused(smtp_server_factory):
    server = smtp_server_factory(auth=True, tls="ssl")
    with pytest.raises(TransportUnavailable, match="cannot be verified") as err:
        with transport(server, "ssl", ca=False):
            pass
    assert err.value.needs_operator


def test_a_refused_login_needs_the_operator(smtp_server):
    with pytest.raises(TransportUnavailable, match="refused the login") as err:
        with transport(smtp_server, "none", password="wrong"):
            pass
    assert err.value.needs_operator


def test_replies_wait_in_the_store_while_the_server_is_down(tmp_path, smtp_server):
    store = Store(tmp_path / "intake.json", tmp_path / "files")
    with store.transaction():
        enqueue(store, reply(1), "<sub-1@x>", "reply", NOW)
        enqueue(store, reply(2), "<sub-2@x>", "reply", NOW)
    smtp_server.stop()
    report = deliver_pending(store, transport(smtp_server, "none"), NOW)
    assert (report.sent, report.waiting) == (0, 2) and "unreachable" in report.error
    assert not report.fatal
    smtp_server.start()
    assert deliver_pending(store, transport(smtp_server, "none"), NOW).sent == 0  # backing off
    later = NOW + dt.timedelta(minutes=2)
    report = deliver_pending(store, transport(smtp_server, "none"), later)
    assert (report.sent, report.waiting) == (2, 0)
    assert deliver_pending(store, transport(smtp_server, "none"), later).sent == 0
    assert len(smtp_server.wait_for(2)) == 2


def test_a_permanent_refusal_is_failed_not_retried(tmp_path, smtp_server):
    store = Store(tmp_path / "intake.json", tmp_path / "files")
    with store.transaction():
        enqueue(store, reply(1), "<sub-1@x>", "reply", NOW)
    smtp_server.respond_with(["554 5.7.1 Message rejected: content not allowed"])
    report = deliver_pending(store, transport(smtp_server, "none"), NOW)
    assert report.failed == 1
    [failed] = store.outbox.with_status("failed")
    assert "554" in failed["last_error"]
    assert deliver_pending(store, transport(smtp_server, "none"), NOW).sent == 0
