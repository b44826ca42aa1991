"""The TOML configuration of SPEC §7, loaded into typed settings.

A bad or missing key stops with one line naming the key and the file. Secrets never live in the
file: it names the environment variable that holds each password.
"""
from __future__ import annotations

import datetime as dt
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pipeline.errors import ConfigError

SECURITIES = ("ssl", "starttls", "none")


@dataclass(frozen=True)
class MailboxSettings:
    transport: str
    host: str = ""
    port: int = 993
    security: str = "ssl"
    username: str = ""
    password_env: str = ""
    folder: str = "INBOX"
    path: Path = Path("var/mail/inbox")
    poll_seconds: int = 60
    ca_file: Path | None = None
    max_message_mb: int = 50
    authserv_id: str = ""          # trust only Authentication-Results from this server
    email_seconds: int = 50        # what reading one email's files may take, all of them
    email_expanded_mb: int = 300   # what they may expand to, all of them

    @property
    def max_bytes(self) -> int:
        return self.max_message_mb * 1024 * 1024

    def password(self) -> str:
        return _secret(self.password_env, "mailbox.password_env")


@dataclass(frozen=True)
class SmtpSettings:
    transport: str
    host: str = ""
    port: int = 465
    security: str = "ssl"
    username: str = ""
    password_env: str = ""
    from_address: str = ""
    path: Path = Path("var/mail/sent")
    ca_file: Path | None = None
    timeout: float = 30.0
    # The outbox (outbox/queue.py, outbox/manners.py): retries and the caps against loops.
    batch_size: int = 10
    retry_base_seconds: float = 60.0
    retry_max_seconds: float = 3600.0
    retry_give_up_hours: float = 24.0
    spam_retry_seconds: float = 900.0     # 163's 554 DT:SPM and rate refusals: 15 min at least
    per_sender_hourly_cap: int = 20
    thread_window_minutes: float = 60.0

    def password(self) -> str:
        return _secret(self.password_env, "smtp.password_env")


@dataclass(frozen=True)
class StoreSettings:
    path: Path
    files: Path


@dataclass(frozen=True)
class CampaignSettings:
    submission_deadline: dt.date
    report_deadline: dt.date
    candidates_min: int
    candidates_max: int
    deeds_max_chars: int
    timezone: ZoneInfo
    min_age: int = 18
    max_age: int = 65
    contact_name: str = "罗树刚"          # the notice's contact: named in every reply
    contact_phone: str = "28681892"
    ends: dt.date | None = None           # after it the worker sends no digest; None: report_deadline + 30 days

    @property
    def end_date(self) -> dt.date:
        return self.ends or self.report_deadline + dt.timedelta(days=30)


@dataclass(frozen=True)
class DigestSettings:
    to: tuple[str, ...]
    at: dt.time
    forward_questions: bool = False   # a county's question goes to `to` at once, not only in the digest


@dataclass(frozen=True)
class ReminderSettings:
    days_before: tuple[int, ...] = ()   # () = no reminders (the default)
    at: dt.time = dt.time(8, 30)


@dataclass(frozen=True)
class County:
    name: str
    senders: tuple[str, ...]


@dataclass(frozen=True)
class Settings:
    source: Path
    mailbox: MailboxSettings
    smtp: SmtpSettings
    store: StoreSettings
    campaign: CampaignSettings
    digest: DigestSettings
    counties: tuple[County, ...] = field(default_factory=tuple)
    reminders: ReminderSettings = field(default_factory=ReminderSettings)

    def county_of(self, address: str) -> str | None:
        """The county that registered this sender address, compared case-insensitively."""
        address = address.strip().lower()
        for county in self.counties:
            if address in county.senders:
                return county.name
        return None

    def own_addresses(self) -> set[str]:
        return {a.lower() for a in (self.smtp.from_address, self.smtp.username,
                                    self.mailbox.username) if a}


def _secret(env_name: str, key: str) -> str:
    if not env_name:
        return ""
    value = os.environ.get(env_name)
    if value is None:
        raise ConfigError(f"environment variable {env_name} (named by {key}) is not set")
    return value


class _Section:
    """Reads typed keys from one TOML table and names the key and file in every error."""

    def __init__(self, data: dict, name: str, source: Path, base: Path):
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: [{name}] must be a table")
        self.data, self.name, self.source, self.base = data, name, source, base

    def _fail(self, key: str, what: str) -> ConfigError:
        return ConfigError(f"{self.source}: {self.name}.{key} {what}")

    def get(self, key: str, kind: type, default=...):
        if key not in self.data:
            if default is ...:
                raise self._fail(key, "is missing")
            return default
        value = self.data[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self._fail(key, f"must be {_KIND_NAMES.get(kind, kind.__name__)}, not {value!r}")
        return value

    def choice(self, key: str, choices: tuple[str, ...], default=...) -> str:
        value = self.get(key, str, default)
        if value not in choices:
            raise self._fail(key, f"must be one of {', '.join(choices)}, not {value!r}")
        return value

    def path(self, key: str, default=...) -> Path | None:
        value = self.get(key, str, default)
        if value is None:
            return None
        p = Path(value)
        return p if p.is_absolute() else self.base / p

    def port(self, key: str, default=...) -> int:
        value = self.get(key, int, default)
        if not 0 < value < 65536:
            raise self._fail(key, f"must be a port number, not {value}")
        return value

    def addresses(self, key: str, default=...) -> tuple[str, ...]:
        value = self.get(key, list, default)
        if not all(isinstance(a, str) and "@" in a for a in value):
            raise self._fail(key, "must be a list of email addresses")
        return tuple(a.strip().lower() for a in value)


_KIND_NAMES = {str: "a string", int: "a whole number", float: "a number", list: "a list",
               dict: "a table", dt.date: "a date (YYYY-MM-DD)", bool: "true or false"}


def load_settings(path: str | os.PathLike) -> Settings:
    source = Path(path)
    try:
        data = tomllib.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"configuration file {source} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read configuration file {source}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    # Relative paths are taken from the directory the command runs in, as the spec's
    # examples ("var/intake.json") read; an operator can always write absolute ones.
    base = Path.cwd()

    def section(name: str) -> _Section:
        if name not in data:
            raise ConfigError(f"{source}: section [{name}] is missing")
        return _Section(data[name], name, source, base)

    return Settings(
        source=source,
        mailbox=_mailbox(section("mailbox")),
        smtp=_smtp(section("smtp")),
        store=_store(section("store")),
        campaign=_campaign(section("campaign")),
        digest=_digest(section("digest")),
        counties=_counties(data.get("counties"), source),
        reminders=_reminders(_Section(data.get("reminders", {}), "reminders", source, base)),
    )


def _mailbox(s: _Section) -> MailboxSettings:
    transport = s.choice("transport", ("imap", "maildir"))
    poll = s.get("poll_seconds", int, 60)
    if poll < 1:
        raise s._fail("poll_seconds", "must be at least 1")
    max_mb = s.get("max_message_mb", int, 50)
    if max_mb < 1:
        raise s._fail("max_message_mb", "must be at least 1")
    common = {"poll_seconds": poll, "max_message_mb": max_mb,
              "authserv_id": s.get("authserv_id", str, "").strip().lower(),
              "email_seconds": s.get("email_seconds", int, 50),
              "email_expanded_mb": s.get("email_expanded_mb", int, 300)}
    for key in ("email_seconds", "email_expanded_mb"):
        if common[key] < 1:
            raise s._fail(key, "must be at least 1")
    if transport == "maildir":
        return MailboxSettings(transport, path=s.path("path"), **common)
    return MailboxSettings(
        transport, host=s.get("host", str), port=s.port("port", 993),
        security=s.choice("security", SECURITIES, "ssl"), username=s.get("username", str),
        password_env=s.get("password_env", str), folder=s.get("folder", str, "INBOX"),
        ca_file=s.path("ca_file", None), **common)


def _smtp(s: _Section) -> SmtpSettings:
    transport = s.choice("transport", ("smtp", "maildir"))
    from_address = s.get("from_address", str)
    if "@" not in from_address:
        raise s._fail("from_address", "must be an email address")
    if transport == "maildir":
        return SmtpSettings(transport, from_address=from_address, path=s.path("path"), **_outbox_keys(s))
    return SmtpSettings(
        transport, host=s.get("host", str), port=s.port("port", 465),
        security=s.choice("security", SECURITIES, "ssl"), username=s.get("username", str, ""),
        password_env=s.get("password_env", str, ""), from_address=from_address,
        ca_file=s.path("ca_file", None), timeout=s.get("timeout", float, 30.0), **_outbox_keys(s))


def _outbox_keys(s: _Section) -> dict:
    """The optional [smtp] keys of the outbox; each must be above zero."""
    keys = {"batch_size": (int, 10), "retry_base_seconds": (float, 60.0),
            "retry_max_seconds": (float, 3600.0), "retry_give_up_hours": (float, 24.0),
            "spam_retry_seconds": (float, 900.0), "per_sender_hourly_cap": (int, 20),
            "thread_window_minutes": (float, 60.0)}
    values = {key: s.get(key, kind, default) for key, (kind, default) in keys.items()}
    for key, value in values.items():
        if value <= 0:
            raise s._fail(key, f"must be above zero, not {value}")
    return values


def _store(s: _Section) -> StoreSettings:
    return StoreSettings(path=s.path("path"), files=s.path("files"))


def _campaign(s: _Section) -> CampaignSettings:
    quota = s.get("candidates_per_county", list, [1, 3])
    if len(quota) != 2 or not all(isinstance(n, int) for n in quota) or not 0 < quota[0] <= quota[1]:
        raise s._fail("candidates_per_county", "must be [min, max], e.g. [1, 3]")
    tz_name = s.get("timezone", str, "Asia/Shanghai")
    try:
        tz = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise s._fail("timezone", f"is not a known time zone: {tz_name!r}") from None
    campaign = CampaignSettings(
        submission_deadline=s.get("submission_deadline", dt.date),
        report_deadline=s.get("report_deadline", dt.date),
        candidates_min=quota[0], candidates_max=quota[1],
        deeds_max_chars=s.get("deeds_max_chars", int, 600), timezone=tz,
        contact_name=s.get("contact_name", str, "罗树刚").strip(),
        contact_phone=s.get("contact_phone", str, "28681892").strip(),
        ends=s.get("ends", dt.date, None))
    if campaign.end_date < campaign.report_deadline:
        raise s._fail("ends", "must not be before report_deadline")
    return campaign


def _time_of_day(s: _Section, key: str, default: str) -> dt.time:
    at = s.get(key, str, default)
    try:
        return dt.time.fromisoformat(at)
    except ValueError:
        raise s._fail(key, f"must be a time of day like \"08:30\", not {at!r}") from None


def _digest(s: _Section) -> DigestSettings:
    return DigestSettings(to=s.addresses("to"), at=_time_of_day(s, "at", "08:30"),
                          forward_questions=s.get("forward_questions", bool, False))


def _reminders(s: _Section) -> ReminderSettings:
    days = s.get("days_before", list, [])
    if not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= 60 for d in days):
        raise s._fail("days_before", "must be a list of whole days between 0 and 60, e.g. [7, 3, 1]")
    return ReminderSettings(days_before=tuple(sorted(set(days), reverse=True)),
                            at=_time_of_day(s, "at", "08:30"))


def _counties(raw, source: Path) -> tuple[County, ...]:
    if not raw:
        raise ConfigError(f"{source}: no [[counties]] are configured")
    if not isinstance(raw, list):
        raise ConfigError(f"{source}: counties must be an array of tables ([[counties]])")
    counties = []
    for i, item in enumerate(raw):
        s = _Section(item, f"counties[{i}]", source, Path.cwd())
        counties.append(County(name=s.get("name", str).strip(), senders=s.addresses("senders")))
    names = [c.name for c in counties]
    if len(set(names)) != len(names):
        raise ConfigError(f"{source}: a county is listed twice in [[counties]]")
    return tuple(counties)
