"""The TOML configuration of SPEC §7, loaded into typed settings.

A bad or missing key stops with one line naming the key and the file. Secrets never live in the
file: it names the environment variable that holds each password.
"""
from __future__ import annotations

import dataclasses
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
    require_seals: bool = False    # a form without seals in both required boxes goes back to the county
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
    """Reads typed keys from one TOML table and names the key and file in every error.

    It remembers the keys asked for: `reject_unknown` then refuses any other key, because a
    misspelt key silently left at its default (authserv-id for authserv_id) switches off what
    it was written for."""

    def __init__(self, data: dict, name: str, source: Path, base: Path):
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: [{name}] must be a table")
        self.data, self.name, self.source, self.base = data, name, source, base
        self.asked: set[str] = set()

    def _fail(self, key: str, what: str) -> ConfigError:
        return ConfigError(f"{self.source}: {self.name}.{key} {what}")

    def get(self, key: str, kind: type, default=...):
        self.asked.add(key)
        if key not in self.data:
            if default is ...:
                raise self._fail(key, "is missing")
            return default
        value = self.data[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if kind is dt.date:
            return self._date(key, value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self._fail(key, f"must be {_KIND_NAMES.get(kind, kind.__name__)}, not {value!r}")
        return value

    def _date(self, key: str, value) -> dt.date:
        if isinstance(value, str):
            raise self._fail(key, f"is the string {value!r}, not a date: TOML dates take no "
                                  f"quotes ({key} = 2022-07-31)")
        if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
            raise self._fail(key, f"must be a date like 2022-07-31, not {value!r}")
        return value

    def reject_unknown(self, also=()) -> None:
        """Refuse keys nobody asked for (nor named in `also`), suggesting the closest one."""
        known = self.asked | set(also)
        for key in self.data:
            if key not in known:
                raise self._fail(key, f"is not a known key{_suggestion(key, known)}")

    def choice(self, key: str, choices: tuple[str, ...], default=...) -> str:
        value = self.get(key, str, default)
        if value not in choices:
            raise self._fail(key, f"must be one of {', '.join(choices)}, not {value!r}")
        return value

    def path(self, key: str, default=...) -> Path | None:
        value = self.get(key, str, default)
        if value is None:
            return None
        return Path(os.path.normpath(self.base / value))

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
SECTIONS = ("mailbox", "smtp", "store", "campaign", "digest", "reminders", "counties")


def _suggestion(name: str, known) -> str:
    import difflib   # only for a misspelt key: every command loads the settings

    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else f" (known: {', '.join(sorted(known))})"


def _field_names(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


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
    for name in data:
        if name not in SECTIONS:
            raise ConfigError(f"{source}: [{name}] is not a known section{_suggestion(name, SECTIONS)}")
    # Relative paths are taken from the configuration file's folder, so a command gives the same
    # answer from whatever folder it is run in.
    base = source.absolute().parent

    def section(name: str, read, settings_class=None):
        if name not in data:
            raise ConfigError(f"{source}: section [{name}] is missing")
        s = _Section(data[name], name, source, base)
        # Keys of the other transport (host under maildir) are known, only unused.
        known = _field_names(settings_class) if settings_class else ()
        try:
            value = read(s)
        except ConfigError:
            if known:   # the full list: "hots is not a known key; did you mean host?" says more
                s.reject_unknown(known)
            raise
        s.reject_unknown(known)
        return value

    return Settings(
        source=source,
        mailbox=section("mailbox", _mailbox, MailboxSettings),
        smtp=section("smtp", _smtp, SmtpSettings),
        store=section("store", _store, StoreSettings),
        campaign=section("campaign", _campaign),
        digest=section("digest", _digest, DigestSettings),
        counties=_counties(data.get("counties"), source, base),
        reminders=section("reminders", _reminders) if "reminders" in data else ReminderSettings(),
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
        require_seals=s.get("require_seals", bool, False),
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


def _counties(raw, source: Path, base: Path) -> tuple[County, ...]:
    if not raw:
        raise ConfigError(f"{source}: no [[counties]] are configured")
    if not isinstance(raw, list):
        raise ConfigError(f"{source}: counties must be an array of tables ([[counties]])")
    counties, county_of = [], {}
    for i, item in enumerate(raw):
        s = _Section(item, f"counties[{i}]", source, base)
        county = County(name=s.get("name", str).strip(), senders=s.addresses("senders"))
        s.reject_unknown()
        if county.name in (c.name for c in counties):
            raise ConfigError(f"{source}: the county {county.name} is listed twice in [[counties]]")
        for address in county.senders:
            # One address, one county: otherwise its forms would count against whichever came first.
            other = county_of.setdefault(address, county.name)
            if other != county.name:
                raise ConfigError(f"{source}: the sender {address} is listed under both {other} and "
                                  f"{county.name}; an address may belong to one county only")
        counties.append(county)
    return tuple(counties)
