"""The emails a benchmark sends: county clerks' Foxmail submissions with a real .docx form, from
the senders registered in config/intake.toml, received (INTERNALDATE) in July 2022, before the
31 July form deadline. Each county sends versions of its three candidates' forms, so a long
backlog is resubmissions, as a real season's is, not a flood of quota-exceeded names; each
version is edited (a county sending the very same file again and again is a robot, which the
repeat rule rightly stops answering: pipeline/process.py's REPEAT_ANSWERS)."""
from __future__ import annotations

import datetime as dt
import functools
import zoneinfo

from pipeline import sample_mail, samples
from pipeline.settings import load_settings
from tests.configs import DEFAULT_CONFIG, MAILBOX

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
FIRST_DAY = dt.datetime(2022, 7, 1, 8, 30, tzinfo=SHANGHAI)
FAMILY_NAMES = ("张", "李", "王", "赵", "孙", "周", "吴", "郑", "钱")
GIVEN = ("伟", "芳", "强")


@functools.cache
def county_senders() -> list[tuple[str, str]]:
    """(county, its first registered address) for every county of the shipped config."""
    settings = load_settings(DEFAULT_CONFIG)
    return [(c.name, c.senders[0]) for c in settings.counties]


@functools.cache
def form(name: str, variant: int) -> bytes:
    fields = {**samples.SAMPLE_CANDIDATES[variant % len(samples.SAMPLE_CANDIDATES)], "name": name}
    return samples.build_form_docx(fields)


@functools.cache
def edited_form(name: str, variant: int, edit: int) -> bytes:
    """The candidate's form after `edit` edits (the home address's room number changes)."""
    if not edit:
        return form(name, variant)
    fields = {**samples.SAMPLE_CANDIDATES[variant % len(samples.SAMPLE_CANDIDATES)], "name": name}
    fields["home_address"] += f"{edit + 100}室"
    return samples.build_form_docx(fields)


def county_email(i: int, tag: str = "bench") -> tuple[bytes, dt.datetime]:
    """The i-th email of a season: (raw bytes, its INTERNALDATE). Counties take turns; each
    sends its three candidates' forms in turn, each time edited; arrivals spread over 1–30 July."""
    counties = county_senders()
    county_no, round_no = i % len(counties), i // len(counties)
    _, sender = counties[county_no]
    name = FAMILY_NAMES[county_no] + GIVEN[round_no % len(GIVEN)]
    received = FIRST_DAY + dt.timedelta(minutes=83 * (i % 500))   # 500 fill July to the 29th
    raw = sample_mail.foxmail_email(
        sender, MAILBOX, f"信息技术能手推荐表（{name}）",
        [(f"{name}推荐表.docx", edited_form(name, county_no, round_no // len(GIVEN)))], date=received,
        message_id=f"<{tag}-{i}.{int(received.timestamp())}@{sender.split('@')[1]}>")
    return raw, received


def county_emails(count: int, tag: str = "bench") -> list[tuple[bytes, dt.datetime]]:
    return [county_email(i, tag) for i in range(count)]


def describe(emails) -> str:
    total = sum(len(raw) for raw, _ in emails)
    return f"{len(emails)} emails, {total / len(emails) / 1024:.0f} kB each"


