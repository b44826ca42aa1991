"""The polite reminder a county gets before a deadline, saying what is missing and by when."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from outbox.compose import _env_html, _env_text
from outbox.wording import DEADLINE_WHAT, QUERY_SENTENCE, describe


@dataclass
class ReminderContent:
    county: str
    to: tuple[str, ...]
    what: str                 # form | report
    deadline: dt.date
    days_left: int
    lines: list[str]          # missing_lines()
    contact_name: str
    contact_phone: str


def missing_lines(missing, problems: dict[str, list], places_min: int, places_max: int) -> list[str]:
    """One Chinese line per pipeline.rules.Missing; a candidate's corrections quote what the
    county was told."""
    lines = []
    for m in missing:
        if m.code == "no-form":
            lines.append(f"尚未收到贵单位的推荐表（每个县市区可推荐{places_min}至{places_max}名）。")
        elif m.code == "corrections":
            said = [describe(p) if isinstance(p, dict) else describe({"code": p}) for p in problems.get(m.name, [])]
            lines.append(f"{m.name}的推荐表需补正" + ("：" + " ".join(said) if said else "。"))
        elif m.code == "no-report":
            lines.append(f"尚未收到{m.name}的调研报告（项目总结、调研报告或研究论文均可，不限字数）。")
    return lines


def reminder_subject(content: ReminderContent) -> str:
    return f"【提醒】{content.county} 信息技术能手{DEADLINE_WHAT[content.what]}报送截止前提醒"


def compose_reminder(content: ReminderContent, *, from_address: str, message_id: str,
                     now: dt.datetime) -> EmailMessage:
    deadline = content.deadline
    ctx = {"c": content, "what": DEADLINE_WHAT[content.what],
           "deadline": f"{deadline.year}年{deadline.month}月{deadline.day}日",
           "when": "今天" if content.days_left == 0 else f"还有{content.days_left}天",
           "query_sentence": QUERY_SENTENCE}
    msg = EmailMessage()
    msg["From"] = Address("株洲市工信局信息技术能手评选", addr_spec=from_address)
    msg["To"] = ", ".join(content.to)
    msg["Subject"] = reminder_subject(content)
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = message_id
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    msg["X-Intake-Reminder"] = f"{content.what} {deadline.isoformat()}"
    msg.set_content(_env_text.get_template("reminder.txt.j2").render(ctx))
    msg.add_alternative(_env_html.get_template("reminder.html.j2").render(ctx), subtype="html")
    return msg
