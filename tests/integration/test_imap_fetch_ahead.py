"""The IMAP source fetches one batch ahead on a thread (pipeline/sources._FetchAhead), over the
pass's own connection: whoever uses that connection next, within the same login, finds it free,
and what was fetched ahead but not taken is still new."""
import email

import pytest

from bench.county_mail import county_emails
from pipeline.settings import load_settings
from pipeline.sources import FETCH_BATCH, ImapSource
from store.repository import Store
from tests.configs import mail_server_config
from tests.faults.county_mail import append_all


def message_id(raw: bytes) -> str:
    return email.message_from_bytes(raw)["Message-ID"]


@pytest.fixture
def backlog(tmp_path, dovecot, imap_account, smtp_server, monkeypatch):
    user, password = imap_account
    config, env = mail_server_config(tmp_path, dovecot, imap_account, smtp_server.port)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    emails = county_emails(2 * FETCH_BATCH + 5, tag="ahead")
    append_all(dovecot, user, password, emails)
    settings = load_settings(config)
    return settings, Store(settings.store.path, settings.store.files), emails


def test_a_pass_stopped_early_leaves_the_connection_usable_and_the_rest_new(backlog, dovecot, imap_account):
    settings, store, emails = backlog
    with ImapSource(settings.mailbox) as source:
        messages = source.new_messages(store.ledger)
        taken = [next(messages) for _ in range(FETCH_BATCH + 3)]   # the third batch is on its way
        for incoming in taken:
            source.mark_done(incoming, store.ledger)
        # The Sent copy goes over the same connection while the generator is still open.
        assert source.append_sent(b"Subject: copy\r\n\r\nsent\r\n") is True
        rest = list(source.new_messages(store.ledger))
    assert [message_id(m.raw) for m in taken + rest] == [message_id(raw) for raw, _ in emails]
    user, password = imap_account
    client = dovecot.client(user, password)
    try:
        client.select_folder("Sent", readonly=True)
        assert len(client.search(["ALL"])) == 1
    finally:
        client.logout()
