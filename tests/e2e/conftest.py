"""Fixtures for end-to-end tests on the real mail servers."""
import datetime as dt

import pytest

from tests.cli import exported, intake
from tests.configs import MAIL_RECEIVED, mail_server_config


@pytest.fixture
def mail(tmp_path, dovecot, imap_account, smtp_server):
    """A config reading the test account over IMAPS (trusting the test CA) and replying
    through the test SMTP server, with the passwords in the environment."""
    user, password = imap_account
    config, env = mail_server_config(tmp_path, dovecot, imap_account, smtp_server.port)

    class Mail:
        def append(self, raw: bytes, when: dt.datetime = MAIL_RECEIVED) -> None:
            dovecot.append(user, password, raw, internaldate=when)

        def poll(self):
            return intake(config, "poll", "--once", env=env)

        def export(self) -> dict:
            return exported(config, env=env)

    m = Mail()
    m.config, m.env, m.user, m.password = config, env, user, password
    return m
