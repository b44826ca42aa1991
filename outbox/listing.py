"""`intake outbox`: the replies waiting, failed, undeliverable or sent recently, as a table."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from rich.table import Table

from outbox.queue import stored_time

STATUS_WORDS = {"pending": "待发送", "failed": "发送失败", "undeliverable": "无法投递", "sent": "已发送",
                "uncertain": "投递情况不明"}
_ORDER = ("failed", "uncertain", "undeliverable", "pending", "sent")


@dataclass
class OutboxRow:
    to: str
    subject: str
    status: str
    attempts: int
    last_error: str
    when: str            # ISO: next attempt (pending), sent, failed, or bounced (undeliverable)


def outbox_rows(store, now: dt.datetime, sent_within: dt.timedelta = dt.timedelta(hours=24)) -> list[OutboxRow]:
    """Every reply not sent yet or refused, and those sent within `sent_within` of `now`."""
    rows = []
    for r in store.outbox.all():
        if r["status"] == "sent" and now - stored_time(r.get("sent_at") or r["created_at"]) > sent_within:
            continue
        when = {"pending": r.get("next_attempt_at"), "sent": r.get("sent_at"),
                "failed": r.get("failed_at"), "uncertain": r.get("failed_at"),
                "undeliverable": r.get("bounced_at")}.get(r["status"]) or ""
        error = r.get("last_error") or ""
        if r["status"] == "undeliverable" and r.get("flagged_address"):
            error = f"{r['flagged_address']}: {error}"
        rows.append(OutboxRow(r["to"], r["subject"], r["status"], r.get("attempts", 0), error, when))
    return sorted(rows, key=lambda row: (_ORDER.index(row.status) if row.status in _ORDER else 9, row.when))


def outbox_table(rows: list[OutboxRow], tz: dt.tzinfo) -> Table:
    table = Table(title="回复邮件发送情况（intake outbox）")
    for header in ("收件人", "主题", "状态", "尝试", "最近错误", "时间"):
        table.add_column(header)
    for row in rows:
        when = stored_time(row.when).astimezone(tz).strftime("%m-%d %H:%M") if row.when else "—"
        table.add_row(row.to, row.subject, f"{STATUS_WORDS.get(row.status, row.status)} {row.status}",
                      str(row.attempts), row.last_error or "—", when)
    return table
