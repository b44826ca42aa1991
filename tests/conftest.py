"""Shared fixtures: a real Dovecot IMAP server and an aiosmtpd SMTP sink.

Servers live in tests/servers/; see their module docstrings for the API.
Nothing is skipped: if Dovecot is missing the tests that need it fail and say
to run scripts/test (which installs it).
"""

from __future__ import annotations

import pytest

from tests.servers.dovecot import DovecotNotInstalled, DovecotServer
from tests.servers.smtp import SmtpServer

SMTP_USER = "intake@example.cn"
SMTP_PASSWORD = "smtp-secret"


def pytest_configure(config):
    # SmtpServer(auth=True) deliberately allows AUTH without TLS; aiosmtpd warns
    # about that on every connection.
    config.addinivalue_line(
        "filterwarnings", "ignore:Requiring AUTH while not requiring TLS:UserWarning"
    )
    config.addinivalue_line(
        "markers", "slow: a test near a minute long (run by default; -m 'not slow' leaves it out)"
    )


@pytest.fixture(scope="session")
def dovecot():
    """A private Dovecot (plain IMAP + STARTTLS on .port, IMAPS on .tls_port), session-wide.

    Tests may stop() it; it is started again before the next test that uses it.
    """
    try:
        server = DovecotServer()
    except DovecotNotInstalled as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        server.start()
    except Exception as exc:
        server.close()
        pytest.fail(f"could not start the test Dovecot: {exc}", pytrace=False)
    yield server
    server.close()


@pytest.fixture(autouse=True)
def _dovecot_running(request):
    """Restart the session Dovecot if an earlier test left it stopped."""
    if "dovecot" in request.fixturenames:
        server = request.getfixturevalue("dovecot")
        if not server.is_running():
            server.start()


@pytest.fixture
def fresh_sandbox():
    """The parsers' sandbox process started afresh for the test and stopped after it, so that no
    call read ahead or process replaced by another test is seen (use with usefixtures)."""
    from parsers import sandbox

    sandbox.shutdown()
    yield
    sandbox.shutdown()


@pytest.fixture
def imap_account(dovecot):
    """A fresh (username, password) on the session Dovecot, with an empty mailbox."""
    return dovecot.add_user()


@pytest.fixture
def smtp_server():
    """A running SmtpServer on a free port; AUTH required (intake@example.cn / smtp-secret), no TLS."""
    server = SmtpServer(auth=True, username=SMTP_USER, password=SMTP_PASSWORD).start()
    yield server
    server.close()


@pytest.fixture
def smtp_server_factory():
    """make(**SmtpServer kwargs) -> started SmtpServer; all are closed after the test.

    Defaults to the same credentials as ``smtp_server``, e.g. ``make(tls="ssl")``.
    """
    servers: list[SmtpServer] = []

    def make(**kwargs) -> SmtpServer:
        kwargs.setdefault("username", SMTP_USER)
        kwargs.setdefault("password", SMTP_PASSWORD)
        server = SmtpServer(**kwargs).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()
