"""Real servers for the test suite: a private Dovecot (IMAP) and an aiosmtpd SMTP sink.

Both bind free ports on 127.0.0.1 and use certificates from a throwaway
``trustme`` CA (``ca_file`` on each server is the CA PEM to trust).
"""

from tests.servers.dovecot import DovecotError, DovecotNotInstalled, DovecotServer
from tests.servers.smtp import ReceivedMessage, SmtpServer

__all__ = [
    "DovecotError",
    "DovecotNotInstalled",
    "DovecotServer",
    "ReceivedMessage",
    "SmtpServer",
]
