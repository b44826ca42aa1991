"""The daily digest email (SPEC §5): HTML with inline CSS and a text twin from jinja2 templates,
the places chart inline (cid:), the roster attached as .xlsx.

The figures come in ready-made (pipeline/digest.py computes them); this module only words and
lays them out. The attachment's Chinese name is written by outbox.compose.add_attachment.
"""
from __future__ import annotations

import datetime as dt
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

import jinja2

from outbox.chart import Bar, cjk_font_path, places_chart
from outbox.compose import REVIEW_WORDS, STATUS_WORDS, add_attachment
from outbox.wording import day_text, deadline_line  # noqa: F401  (deadline_line: said here too)

SENDER_NAME = "株洲市工信局信息技术能手评选"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
KIND_WORDS = {"reply": "回复", "digest": "每日汇总", "reminder": "截止前提醒", "forward": "来信转交"}
OUTBOX_WORDS = {"failed": "发送失败", "undeliverable": "无法投递"}
CHART_CID = "<places-chart@intake.digest>"

_loader = jinja2.PackageLoader("outbox", "templates")
_env_html = jinja2.Environment(loader=_loader, autoescape=True, trim_blocks=True, lstrip_blocks=True)
_env_text = jinja2.Environment(loader=_loader, autoescape=False, trim_blocks=True, lstrip_blocks=True,
                               keep_trailing_newline=True)


def digest_subject(date: dt.date) -> str:
    return f"【信息技术能手】每日汇总 {day_text(date)}"


def roster_filename(date: dt.date) -> str:
    return f"信息技术能手推荐名单_{date.isoformat()}.xlsx"


def render_digest(figures) -> tuple[str, str]:
    """(text, html) for a pipeline.digest.DigestFigures; the HTML shows the chart as cid:chart."""
    ctx = digest_view(figures)
    return (_env_text.get_template("digest.txt.j2").render(ctx),
            _env_html.get_template("digest.html.j2").render(ctx))


def compose_digest(figures, *, from_address: str, to: tuple[str, ...] | list[str],
                   roster: tuple[str, bytes], message_id: str, now: dt.datetime) -> EmailMessage:
    text, html = render_digest(figures)
    msg = EmailMessage()
    msg["From"] = Address(SENDER_NAME, addr_spec=from_address)
    msg["To"] = ", ".join(to)
    msg["Subject"] = digest_subject(figures.date)
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = message_id
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    msg["X-Intake-Digest"] = figures.date.isoformat()
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    html_part = msg.get_payload()[1]
    html_part.add_related(chart_png(figures), "image", "png", cid=CHART_CID,
                          filename="places.png", disposition="inline")
    filename, data = roster
    add_attachment(msg, filename, data, XLSX_TYPE)
    return msg


def chart_png(figures) -> bytes:
    """The places-per-county chart the HTML shows as cid:places-chart@intake.digest."""
    return places_chart([Bar(r.county, r.accepted, r.needs_correction, r.places_max)
                         for r in figures.rows])


# ---------------------------------------------------------------------- the view

def digest_view(f) -> dict:
    """Everything the templates show, as display-ready text."""
    t = f.totals
    return {
        "f": f,
        "subject": digest_subject(f.date),
        "day": day_text(f.date),
        "cutoff": _until(f.cutoff),
        "previous_cutoff": _until(f.previous_cutoff) if f.previous_cutoff else "",
        "deadline": day_text(f.deadline),
        "deadline_line": deadline_line(f.days_left, f.deadline),
        "summary": (f"全市{t.counties}个县市区中，已有{t.counties_with_candidates}个报送推荐人选，"
                    f"共{t.candidates}名（已受理{t.accepted}名、需补正{t.needs_correction}名），"
                    f"占用名额{t.places_used}/{t.places_total}"
                    + (f"；已撤回{t.withdrawn}名" if t.withdrawn else "")
                    + (f"；未受理{t.rejected}名" if t.rejected else "")
                    + f"；已收到调研报告{t.reports}份。"),
        "rows": [_row_view(r) for r in f.rows],
        "waiting": [{"county": w.county,
                     "note": f"已来信{w.emails}封，尚无有效推荐表" if w.emails else "尚未来信"}
                    for w in f.waiting],
        "new": [{"when": _when(n.received_at), "county": n.county or "（未登记）", "sender": n.sender,
                 "subject": n.subject or "（无主题）", "status": n.status,
                 "status_word": STATUS_WORDS.get(n.status, n.status),
                 "names": "、".join(n.names) or "—"} for n in f.new],
        "problem_groups": _problem_groups(f.problems),
        "unsealed": [{"county": u.county, "name": u.name,
                      "note": f"扫描件中{u.missing}栏未见印章" if u.scanned else "尚未收到盖章扫描件"}
                     for u in getattr(f, "unsealed", [])],
        "unknown": [{"address": u.address, "emails": u.emails, "when": _when(u.last_received),
                     "subject": u.last_subject or "（无主题）"} for u in f.unknown_senders],
        "failed": [{"to": r.to, "subject": r.subject, "kind": KIND_WORDS.get(r.kind, r.kind),
                    "status_word": OUTBOX_WORDS.get(r.status, r.status),
                    "error": r.error or "—", "when": _when(r.created_at)} for r in f.failed_replies],
        "questions": [{"county": q.county, "when": _when(q.received_at), "sender": q.sender,
                       "subject": q.subject or "（无主题）", "words": q.words} for q in f.questions],
        "reminders": [{"county": r.county, "deadline": day_text(dt.date.fromisoformat(r.deadline)),
                       "missing": r.missing} for r in f.reminders],
        "reviews": [{"county": r.county, "name": r.name, "word": REVIEW_WORDS.get(r.status, r.status),
                     "note": r.note, "when": _when(r.at) if r.at else ""} for r in f.reviews],
        "chart_cid": CHART_CID[1:-1],
        "chart_legend": "" if cjk_font_path() else
                        "；".join(f"{i}. {r.county}" for i, r in enumerate(f.rows, start=1)),
        "colours": {"accepted": "#2e7d32", "needs-correction": "#b86e00", "rejected": "#a12622",
                    "withdrawn": "#666666"},
    }


def _row_view(r) -> dict:
    return {"county": r.county, "accepted": r.accepted, "needs_correction": r.needs_correction,
            "withdrawn": r.withdrawn, "rejected": r.rejected,
            "places": f"{r.places_used}/{r.places_max}", "full": r.places_used >= r.places_max,
            "empty": r.places_used == 0, "reports": r.reports,
            "last": _when(r.last_submission) if r.last_submission else "—"}


def _problem_groups(problems) -> list[dict]:
    groups: dict[str, list[dict]] = {}
    for p in problems:
        groups.setdefault(p.county, []).append(
            {"name": p.name, "status": p.status, "status_word": STATUS_WORDS.get(p.status, p.status),
             "when": _when(p.received_at) if p.received_at else "",
             "sentences": p.sentences or ["（无具体说明）"]})
    return [{"county": county, "candidates": items} for county, items in groups.items()]




def _until(moment: dt.datetime) -> str:
    """A cut-off at midnight reads as the end of the day before: "7月20日 24:00"."""
    if moment.time() == dt.time(0) and moment.second == 0:
        before = moment - dt.timedelta(days=1)
        return f"{before.month}月{before.day}日 24:00"
    return _when(moment.isoformat())


def _when(iso: str) -> str:
    """"7月20日 10:00", in the time zone the time was recorded in (the campaign's)."""
    if not iso:
        return ""
    moment = dt.datetime.fromisoformat(iso)
    return f"{moment.month}月{moment.day}日 {moment:%H:%M}"
