"""Configuration files for tests: the shipped default with the [mailbox] and [smtp] swapped."""
from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO / "config" / "intake.toml"
MAILBOX = "zzdztxhrj@163.com"
SMTP_USER, SMTP_PASSWORD = "intake@example.cn", "smtp-secret"   # the test SMTP server's login
# When test mail "arrived": before the form deadline, in Zhuzhou's time.
MAIL_RECEIVED = dt.datetime(2022, 7, 20, 10, 15, tzinfo=dt.timezone(dt.timedelta(hours=8)))


def _table(name: str, values: dict) -> str:
    lines = [f"[{name}]"]
    for key, value in values.items():
        if isinstance(value, str):
            lines.append(f'{key} = "{value}"')
        elif isinstance(value, bool):
            lines.append(f"{key} = {'true' if value else 'false'}")
        else:
            lines.append(f"{key} = {value}")
    return "\n".join(lines) + "\n"


def write_config(directory: Path, mailbox: dict | None = None, smtp: dict | None = None,
                 replace: dict[str, str] | None = None) -> Path:
    """A config under `directory`: Maildir in and out there unless `mailbox`/`smtp` say otherwise;
    the store always lives in `directory`. `replace` swaps literal text (for broken-config tests)."""
    text = DEFAULT_CONFIG.read_text(encoding="utf-8")
    mailbox = mailbox or {"transport": "maildir", "path": str(directory / "inbox")}
    smtp = smtp or {"transport": "maildir", "from_address": MAILBOX, "path": str(directory / "sent")}
    store = {"path": str(directory / "intake.json"), "files": str(directory / "files")}
    text = _swap(text, "mailbox", _table("mailbox", mailbox))
    text = _swap(text, "smtp", _table("smtp", smtp))
    text = _swap(text, "store", _table("store", store))
    for old, new in (replace or {}).items():
        assert old in text, old
        text = text.replace(old, new)
    path = directory / "intake.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _swap(text: str, name: str, table: str) -> str:
    pattern = re.compile(rf"^\[{name}\]\n(?:(?!\[).*\n)*", re.MULTILINE)
    assert pattern.search(text), name
    return pattern.sub(lambda _: table + "\n", text, count=1)


def mail_server_config(directory: Path, dovecot, account: tuple[str, str], smtp_port: int,
                       **extra_smtp) -> tuple[Path, dict]:
    """A config reading `account` on the test Dovecot over IMAPS (trusting its CA) and replying
    through the test SMTP server; with the environment that holds both passwords."""
    user, password = account
    config = write_config(
        directory,
        mailbox={"transport": "imap", "host": dovecot.host, "port": dovecot.tls_port,
                 "security": "ssl", "username": user, "password_env": "INTAKE_IMAP_PASSWORD",
                 "folder": "INBOX", "ca_file": str(dovecot.ca_file)},
        smtp={"transport": "smtp", "host": "127.0.0.1", "port": smtp_port, "security": "none",
              "username": SMTP_USER, "password_env": "INTAKE_SMTP_PASSWORD",
              "from_address": MAILBOX, **extra_smtp})
    return config, {"INTAKE_IMAP_PASSWORD": password, "INTAKE_SMTP_PASSWORD": SMTP_PASSWORD}
