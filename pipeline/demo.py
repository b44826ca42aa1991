"""`intake demo`: the whole job on a fresh Maildir, with sample county emails.

Seeds var/demo with generated emails — a valid form, a form that needs correction, two forms in
one email, an out-of-office auto-reply — runs one pass and shows where the replies are.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import shutil
from email import policy
from email.parser import BytesParser
from pathlib import Path

from rich.console import Console

from pipeline import sample_mail, samples
from pipeline.errors import IntakeError
from pipeline.poll import run_pass
from pipeline.roster import export_roster
from pipeline.settings import Settings
from store.repository import Store


def demo_settings(settings: Settings, base: Path) -> Settings:
    """The configured campaign and counties, with every path moved under `base`, Maildir in and out."""
    return dataclasses.replace(
        settings,
        mailbox=dataclasses.replace(settings.mailbox, transport="maildir", path=base / "inbox"),
        smtp=dataclasses.replace(settings.smtp, transport="maildir", path=base / "sent"),
        store=dataclasses.replace(settings.store, path=base / "intake.json", files=base / "files"),
    )


def seed_emails(settings: Settings) -> list[tuple[bytes, dt.datetime]]:
    """Sample emails from the first counties, received a week before the form deadline."""
    counties = settings.counties
    if len(counties) < 4:
        raise ValueError("the demo needs at least four configured counties")
    to = settings.smtp.from_address
    day = dt.datetime.combine(settings.campaign.submission_deadline - dt.timedelta(days=7),
                              dt.time(9, 30), tzinfo=settings.campaign.timezone)
    first, second, third, fourth = (dict(c) for c in samples.SAMPLE_CANDIDATES[:4])
    deeds = second["deeds"]
    while len(deeds) <= settings.campaign.deeds_max_chars:
        deeds += second["deeds"]
    too_long = {**second, "deeds": deeds, "opinions": {**second["opinions"], "discipline": ""}}
    emails = [
        sample_mail.foxmail_email(counties[0].senders[0], to, f"{counties[0].name}信息技术能手推荐表",
                                  [(f"{counties[0].name}-{first['name']}推荐表.docx",
                                    samples.build_form_docx(first))]),
        sample_mail.foxmail_email(counties[1].senders[0], to, f"报送{counties[1].name}推荐人选",
                                  [(f"{too_long['name']}推荐表.docx", samples.build_form_docx(too_long))]),
        sample_mail.foxmail_email(counties[2].senders[0], to, f"{counties[2].name}两名推荐人选材料",
                                  [(f"{third['name']}.docx", samples.build_form_docx(third)),
                                   (f"{fourth['name']}.docx", samples.build_form_docx(fourth))]),
        sample_mail.auto_reply(counties[3].senders[0], to),
    ]
    return [(raw, day + dt.timedelta(minutes=17 * i)) for i, raw in enumerate(emails)]


def write_maildir(path: Path, emails: list[tuple[bytes, dt.datetime]]) -> None:
    """Deliver emails into a Maildir's new/, each file's mtime set to its receipt time."""
    for sub in ("tmp", "new", "cur"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    for i, (raw, received) in enumerate(emails):
        target = path / "new" / f"{int(received.timestamp())}.demo{i}.intake"
        target.write_bytes(raw)
        os.utime(target, (received.timestamp(), received.timestamp()))


MARKER = ".intake-demo"   # in a folder the demo made: it may be emptied for the next run


def fresh_folder(base: Path) -> None:
    """Empty `base` for a new demo if the demo made it; refuse any other folder that holds files."""
    if base.exists() and any(base.iterdir()):
        if not (base / MARKER).is_file():
            raise IntakeError(f"{base} is not empty and was not made by intake demo: "
                              f"give --dir a new or empty folder")
        shutil.rmtree(base)
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    (base / MARKER).write_text("made by intake demo; emptied by the next one\n", encoding="utf-8")


def run_demo(settings: Settings, base: Path, console: Console) -> None:
    from pipeline.cli import print_county_table

    fresh_folder(base)
    demo = demo_settings(settings, base)
    emails = seed_emails(demo)
    write_maildir(demo.mailbox.path, emails)
    console.print(f"Seeded {len(emails)} county emails into {demo.mailbox.path}/new")
    store = Store(demo.store.path, demo.store.files)
    try:
        report = run_pass(demo, store)
        console.print(report.summary())
        print_county_table(store, demo, console)
    finally:
        store.close()
    replies = sorted((demo.smtp.path / "new").glob("*.eml"))
    console.print(f"\n{len(replies)} replies written to {demo.smtp.path / 'new'}:")
    for path in replies:
        msg = BytesParser(policy=policy.default).parsebytes(path.read_bytes(), headersonly=True)
        console.print(f"  {path.name}  {msg['X-Intake-Status']:<16} {msg['Subject']}", markup=False)
    roster = base / "roster.json"
    store = Store(demo.store.path, demo.store.files)
    try:
        roster.write_text(json.dumps(export_roster(store), ensure_ascii=False, indent=2), encoding="utf-8")
    finally:
        store.close()
    console.print(f"The roster (as `intake export --format json` writes it): {roster}", markup=False)
