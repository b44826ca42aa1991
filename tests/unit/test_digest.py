"""The digest's figures, its once-per-date rule and its email, on a real TinyDB store whose
records are shaped as the pass writes them."""
import datetime as dt
import io
from email import policy
from email.parser import BytesParser

import pytest
from PIL import Image

from outbox.digest import compose_digest, render_digest, roster_filename
from outbox.transports import MaildirTransport
from pipeline.digest import build_figures, digest_message_id, due_digest, send_digest
from pipeline.settings import load_settings
from store.repository import Store
from tests.configs import write_config

TZ = dt.timezone(dt.timedelta(hours=8))
JULY_20 = dt.date(2022, 7, 20)


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2022, 7, day, hour, minute, tzinfo=TZ)


@pytest.fixture
def settings(tmp_path):
    return load_settings(write_config(tmp_path))


@pytest.fixture
def store(settings):
    s = Store(settings.store.path, settings.store.files)
    yield s
    s.close()


def problem(code: str, file: str = "推荐表.docx", **detail) -> dict:
    return {"code": code, "file": file, "field": "", "detail": detail}


def version(message_id: str, when: dt.datetime, status: str, problems=(), **fields) -> dict:
    return {"message_id": message_id, "received_at": when.isoformat(), "file": "推荐表.docx",
            "sha256": "0" * 64, "status": status, "problems": list(problems), "fields": fields}


def add_candidate(store, county: str, name: str, *versions: dict, status: str | None = None,
                  report=None) -> None:
    latest = versions[-1]
    store.candidates.put({
        "name": name, "county": county, "status": status or latest["status"],
        "problems": [p["code"] for p in latest["problems"]], "versions": list(versions),
        "report": report, "photo": True, "opinions": {}, "updated_at": latest["received_at"],
    })


def add_submission(store, message_id: str, sender: str, county: str | None, when: dt.datetime,
                   status: str, problems=(), reason: str = "", subject: str = "推荐表") -> None:
    store.submissions.add({"message_id": message_id, "from": sender, "county": county,
                           "subject": subject, "received_at": when.isoformat(), "status": status,
                           "reason": reason, "problems": list(problems), "files": []})


def add_reply(store, reply_id: str, status: str, error: str = "") -> None:
    store.outbox.add({"reply_id": reply_id, "submission_id": reply_id, "kind": "reply",
                      "to": "lusong@example.cn", "subject": "【需补正】芦淞区 李四 信息技术能手推荐表",
                      "status": status, "attempts": 1, "created_at": "2022-07-20T02:00:00+00:00",
                      "sent_at": None, "last_error": error, "raw": ""})


@pytest.fixture
def season(store):
    """Three counties have written: 荷塘区 has one accepted candidate and a report, 芦淞区 one to
    correct, 石峰区 withdrew its only one; a stranger sent a form, a robot answered."""
    add_submission(store, "<h1@x>", "hetang@example.cn", "荷塘区", at(20, 9), "accepted")
    add_candidate(store, "荷塘区", "张三", version("<h1@x>", at(20, 9), "accepted"),
                  report={"title": "政务云调研报告", "chars": 5200, "file": "报告.docx"})
    add_submission(store, "<l1@x>", "lusong@example.cn", "芦淞区", at(20, 10), "needs-correction",
                   ["deeds-too-long"])
    add_candidate(store, "芦淞区", "李四", version("<l1@x>", at(20, 10), "needs-correction",
                                                 [problem("deeds-too-long", "李四推荐表.docx", count=701, limit=600)]))
    add_submission(store, "<s1@x>", "shifeng@example.cn", "石峰区", at(20, 11), "accepted")
    add_candidate(store, "石峰区", "王五", version("<s1@x>", at(20, 11), "accepted"), status="withdrawn")
    add_submission(store, "<u1@x>", "stranger@qq.com", None, at(20, 12), "rejected", ["unknown-sender"])
    add_submission(store, "<u2@x>", "stranger@qq.com", None, at(20, 13), "skipped",
                   reason="unknown sender without documents")
    add_submission(store, "<a1@x>", "tianyuan@example.cn", "天元区", at(20, 14), "skipped", reason="auto-reply")
    add_reply(store, "<r-sent@x>", "sent")
    add_reply(store, "<r-wait@x>", "pending")
    add_reply(store, "<r-fail@x>", "failed", "550 5.1.1 user unknown")
    add_reply(store, "<r-bounce@x>", "undeliverable", "bounced: mailbox full")
    return store


def test_the_figures_of_a_day(settings, season):
    f = build_figures(season, settings, JULY_20, now=at(25, 8))
    rows = {r.county: r for r in f.rows}
    assert [r.county for r in f.rows][:3] == ["荷塘区", "芦淞区", "石峰区"]   # the config's order
    assert (rows["荷塘区"].accepted, rows["荷塘区"].places_used, rows["荷塘区"].reports) == (1, 1, 1)
    assert (rows["芦淞区"].needs_correction, rows["芦淞区"].places_used) == (1, 1)
    assert (rows["石峰区"].withdrawn, rows["石峰区"].places_used) == (1, 0)
    assert rows["荷塘区"].last_submission == at(20, 9).isoformat()
    assert rows["天元区"].last_submission == ""          # an auto-reply is not a submission
    t = f.totals
    assert (t.candidates, t.accepted, t.needs_correction, t.withdrawn, t.places_used,
            t.places_total, t.reports) == (2, 1, 1, 1, 2, 27, 1)
    assert (t.emails, t.skipped) == (4, 2)
    assert [w.county for w in f.waiting] == ["石峰区", "天元区", "渌口区", "醴陵市", "攸县", "茶陵县", "炎陵县"]
    assert f.days_left == 11 and not f.urgent
    [p] = f.problems
    assert (p.county, p.name, p.status) == ("芦淞区", "李四", "needs-correction")
    assert p.sentences == ["附件《李四推荐表.docx》中主要事迹现为701字，超过600字上限，请删减后重新发送。"]
    [u] = f.unknown_senders
    assert (u.address, u.emails, u.last_received) == ("stranger@qq.com", 2, at(20, 13).isoformat())
    assert [(r.status, r.error) for r in f.failed_replies] == [
        ("failed", "550 5.1.1 user unknown"), ("undeliverable", "bounced: mailbox full")]
    assert f.failed_replies[0].created_at == "2022-07-20T10:00:00+08:00"   # shown in local time


def test_the_deadline_turns_red_in_the_last_week(settings, store):
    assert build_figures(store, settings, dt.date(2022, 7, 24), at(24, 9)).urgent is False
    assert build_figures(store, settings, dt.date(2022, 7, 25), at(25, 9)).urgent is True
    text, html = render_digest(build_figures(store, settings, dt.date(2022, 7, 25), at(25, 9)))
    assert "距推荐表报送截止（2022年7月31日）还有 6 天。" in text
    assert "color:#c62828" in html
    text, _ = render_digest(build_figures(store, settings, dt.date(2022, 8, 2), at(25, 9)))
    assert "推荐表报送已于2022年7月31日截止。" in text


def test_a_sender_registered_since_is_no_longer_listed(tmp_path, season):
    settings = load_settings(write_config(tmp_path, replace={
        'senders = ["yanling@example.cn"]': 'senders = ["yanling@example.cn", "stranger@qq.com"]'}))
    assert build_figures(season, settings, JULY_20, at(25, 8)).unknown_senders == []


def test_new_means_received_after_the_previous_digests_cut_off(settings, season):
    season.digests.record("2022-07-19", "<d19@x>", at(20, 10, 30).isoformat(), at(20, 10, 30).isoformat())
    f = build_figures(season, settings, JULY_20, at(25, 8))
    assert f.previous_cutoff == at(20, 10, 30)
    assert [(n.county, n.status) for n in f.new] == [("石峰区", "accepted"), (None, "rejected")]
    assert f.new[0].names == ["王五"]
    assert f.new_skipped == 2
    text, _ = render_digest(f)
    assert "自上期汇总（7月20日 10:30）以来的新来信" in text


def test_a_past_date_shows_the_roster_as_it_stood_that_evening(settings, store):
    add_submission(store, "<h1@x>", "hetang@example.cn", "荷塘区", at(20, 9), "needs-correction")
    add_submission(store, "<h2@x>", "hetang@example.cn", "荷塘区", at(21, 9), "accepted")
    add_candidate(store, "荷塘区", "张三",
                  version("<h1@x>", at(20, 9), "needs-correction", [problem("missing-photo")], phone="1"),
                  version("<h2@x>", at(21, 9), "accepted", phone="13807310000"))
    add_submission(store, "<l1@x>", "lusong@example.cn", "芦淞区", at(21, 10), "accepted")
    add_candidate(store, "芦淞区", "李四", version("<l1@x>", at(21, 10), "accepted"))
    f = build_figures(store, settings, JULY_20, now=at(25, 8))
    assert f.cutoff == dt.datetime(2022, 7, 21, 0, 0, tzinfo=f.cutoff.tzinfo)
    rows = {r.county: r for r in f.rows}
    assert (rows["荷塘区"].needs_correction, rows["荷塘区"].accepted) == (1, 0)
    assert rows["芦淞区"].places_used == 0
    [open_problem] = f.problems
    assert open_problem.sentences[0].startswith("附件《推荐表.docx》中未贴一寸免冠照片")
    text, _ = render_digest(f)
    assert "截至7月20日 24:00" in text
    # Today's digest counts what has arrived up to now.
    today = build_figures(store, settings, dt.date(2022, 7, 21), now=at(21, 9, 30))
    assert {r.county: r.accepted for r in today.rows}["荷塘区"] == 1
    assert {r.county: r.places_used for r in today.rows}["芦淞区"] == 0


def test_a_later_withdrawal_or_report_does_not_change_an_earlier_days_figures(settings, store):
    add_submission(store, "<h1@x>", "hetang@example.cn", "荷塘区", at(20, 9), "accepted")
    add_candidate(store, "荷塘区", "张三", version("<h1@x>", at(20, 9), "accepted"),
                  report={"title": "调研报告", "chars": 3000, "file": "报告.docx", "message_id": "<h2@x>",
                          "received_at": at(22, 9).isoformat()})
    add_submission(store, "<h2@x>", "hetang@example.cn", "荷塘区", at(22, 9), "accepted", subject="调研报告")
    add_submission(store, "<l1@x>", "lusong@example.cn", "芦淞区", at(20, 10), "accepted")
    add_candidate(store, "芦淞区", "李四", version("<l1@x>", at(20, 10), "accepted"))
    candidate = store.candidates.get("芦淞区", "李四")
    store.candidates.put({**candidate, "status": "withdrawn", "updated_at": at(21, 9).isoformat(),
                          "withdrawals": [{"status": "withdrawn", "message_id": "<l2@x>",
                                           "at": at(21, 9).isoformat()}]})
    rows = {r.county: r for r in build_figures(store, settings, JULY_20, at(25, 8)).rows}
    assert (rows["荷塘区"].reports, rows["芦淞区"].accepted, rows["芦淞区"].withdrawn) == (0, 1, 0)
    later = build_figures(store, settings, dt.date(2022, 7, 22), at(25, 8))
    rows = {r.county: r for r in later.rows}
    assert (rows["荷塘区"].reports, rows["芦淞区"].accepted, rows["芦淞区"].withdrawn) == (1, 0, 1)
    assert [n.names for n in later.new if n.subject == "调研报告"] == [["张三"]]


@pytest.mark.parametrize("now, due", [
    (at(20, 8, 29), None),
    (at(20, 8, 30), JULY_20),
    (at(20, 23, 59), JULY_20),                                             # down at 08:30: later the same day
    (dt.datetime(2022, 7, 20, 0, 31, tzinfo=dt.timezone.utc), JULY_20),    # 08:31 in Zhuzhou
    (dt.datetime(2022, 7, 19, 23, 0, tzinfo=dt.timezone.utc), None),       # 07:00 in Zhuzhou
])
def test_the_digest_is_due_at_half_past_eight_zhuzhou_time(settings, store, now, due):
    assert due_digest(settings, store, now) == due


def test_a_digest_sent_is_not_due_again_that_day_and_a_missed_day_is_not_sent(settings, store):
    store.digests.record("2022-07-20", "<d@x>", at(20, 8, 30).isoformat(), at(20, 8, 30).isoformat())
    assert due_digest(settings, store, at(20, 9)) is None
    assert due_digest(settings, store, at(20, 23)) is None
    assert due_digest(settings, store, at(22, 8, 31)) == dt.date(2022, 7, 22)   # not the 21st


def test_the_message_id_is_stable_for_a_date_and_new_when_forced():
    a = digest_message_id(JULY_20, 0, "zzdztxhrj@163.com")
    assert a == digest_message_id(JULY_20, 0, "zzdztxhrj@163.com")
    assert a.endswith("@163.com>")
    assert digest_message_id(JULY_20, 1, "zzdztxhrj@163.com") != a
    assert digest_message_id(dt.date(2022, 7, 21), 0, "zzdztxhrj@163.com") != a


def parsed_file(path):
    return BytesParser(policy=policy.default).parsebytes(path.read_bytes())


def parsed(msg):
    """The message as the contact's client sees it, after the trip through the outbox's raw text."""
    return BytesParser(policy=policy.default).parsebytes(msg.as_bytes())


def test_the_email_has_both_bodies_the_chart_inline_and_the_roster_attached(settings, season):
    f = build_figures(season, settings, JULY_20, at(25, 8))
    msg = parsed(compose_digest(f, from_address="zzdztxhrj@163.com", to=("a@example.cn", "b@example.cn"),
                                roster=(roster_filename(JULY_20), b"PK\x03\x04xlsx"),
                                message_id="<d@163.com>", now=at(25, 8)))
    assert msg["Subject"] == "【信息技术能手】每日汇总 2022年7月20日"
    assert msg["X-Intake-Digest"] == "2022-07-20"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["To"] == "a@example.cn, b@example.cn"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "已有2个报送推荐人选，共2名（已受理1名、需补正1名），占用名额2/27；已撤回1名" in text
    assert "stranger@qq.com" in text and "无法投递" in text and "550 5.1.1 user unknown" in text
    assert "<table" in html and 'src="cid:places-chart@intake.digest"' in html
    [image] = [p for p in msg.walk() if p.get_content_type() == "image/png"]
    assert image["Content-ID"] == "<places-chart@intake.digest>"
    assert Image.open(io.BytesIO(image.get_content())).size[0] > 0
    [attachment] = list(msg.iter_attachments())
    assert attachment.get_filename() == "信息技术能手推荐名单_2022-07-20.xlsx"
    assert attachment.get_content() == b"PK\x03\x04xlsx"


def test_the_attachment_name_is_written_both_ways_for_qq_163_and_outlook(settings, store):
    f = build_figures(store, settings, JULY_20, at(25, 8))
    raw = compose_digest(f, from_address="zzdztxhrj@163.com", to=("a@example.cn",),
                         roster=(roster_filename(JULY_20), b"x"), message_id="<d@163.com>",
                         now=at(25, 8)).as_bytes().decode("ascii")
    assert 'name="=?utf-8?B?' in raw.replace("UTF-8", "utf-8")
    assert "filename*0*=utf-8''%E4%BF%A1" in raw.replace("UTF-8", "utf-8")
    assert all(len(line) <= 998 for line in raw.splitlines())   # RFC 5322's hard limit


def test_send_digest_once_per_date_and_again_when_forced(tmp_path, settings, season):
    transport = MaildirTransport(tmp_path / "out")
    def digests_out() -> list[str]:
        sent = [parsed_file(p) for p in (tmp_path / "out" / "new").iterdir()]
        return sorted(m["Message-ID"] for m in sent if m["X-Intake-Digest"] == "2022-07-20")

    first = send_digest(settings, season, JULY_20, at(25, 8), transport=transport)
    assert first.queued and digests_out() == [first.message_id]
    again = send_digest(settings, season, JULY_20, at(25, 9), transport=transport)
    assert not again.queued and again.message_id == first.message_id
    assert digests_out() == [first.message_id]
    forced = send_digest(settings, season, JULY_20, at(25, 10), force=True, transport=transport)
    assert forced.queued and forced.message_id != first.message_id
    assert digests_out() == sorted([first.message_id, forced.message_id])
    ledger = season.digests.get("2022-07-20")
    assert ledger["message_ids"] == [first.message_id, forced.message_id]
    assert [r["kind"] for r in season.outbox.all() if r["kind"] == "digest"] == ["digest", "digest"]


def test_candidates_without_the_stamped_form_are_shown_to_the_contact(settings, store):
    sealed = {"recommender": True, "discipline": True, "member_unit": False, "approval": False}
    add_candidate(store, "荷塘区", "张三", version("<a@x>", at(20, 9), "accepted"))
    add_candidate(store, "芦淞区", "李四", version("<b@x>", at(20, 10), "accepted"))
    add_candidate(store, "石峰区", "王五", version("<c@x>", at(20, 11), "accepted"))
    for name, seals, scan in (("张三", sealed, "张三.jpg"), ("李四", {**sealed, "discipline": False}, "李四.jpg")):
        cand = next(c for c in store.candidates.all() if c["name"] == name)
        store.candidates.put({**cand, "seals": seals, "seal_file": scan})
    figures = build_figures(store, settings, dt.date(2022, 7, 21), at(21, 9))
    assert [(u.county, u.name, u.missing, u.scanned) for u in figures.unsealed] == [
        ("芦淞区", "李四", "纪检监察部门意见", True),
        ("石峰区", "王五", "推荐单位意见、纪检监察部门意见", False)]
    assert [(r.county, r.sealed) for r in figures.rows[:3]] == [("荷塘区", 1), ("芦淞区", 0), ("石峰区", 0)]
    text, html = render_digest(figures)
    assert "芦淞区 李四：扫描件中纪检监察部门意见栏未见印章" in text
    assert "石峰区 王五：尚未收到盖章扫描件" in text
    assert "尚未收到盖章扫描件" in html
