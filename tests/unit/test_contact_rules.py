"""Pure rules for the contact's side: which deadline applies, which day a reminder is due, what
a county is missing; the settings that switch them on; review marks in Chinese."""
import datetime as dt
from pathlib import Path

import pytest

from outbox.wording import deadline_sentence, problem_label
from pipeline import rules
from pipeline.errors import ConfigError, IntakeError
from pipeline.review import review_status
from pipeline.settings import load_settings
from tests.configs import write_config

TZ = dt.timezone(dt.timedelta(hours=8))


@pytest.fixture
def settings(tmp_path: Path):
    return load_settings(write_config(tmp_path, replace={"days_before = []": "days_before = [7, 3, 1]"}))


def test_the_deadline_that_applies_moves_on_as_the_season_goes(settings):
    campaign = settings.campaign
    july = rules.deadlines_ahead(dt.datetime(2022, 7, 31, 23, 59, tzinfo=TZ), campaign)
    august = rules.deadlines_ahead(dt.datetime(2022, 8, 1, 0, 1, tzinfo=TZ), campaign)
    october = rules.deadlines_ahead(dt.datetime(2022, 10, 1, tzinfo=TZ), campaign)
    assert deadline_sentence(july) == "推荐表报送截止时间为2022年7月31日，调研报告报送截止时间为2022年9月30日。"
    assert deadline_sentence(august) == "调研报告报送截止时间为2022年9月30日。"
    assert deadline_sentence(october, campaign.report_deadline) == "本次报送工作已于2022年9月30日截止。"


def test_reminders_fall_on_the_configured_days_and_never_after_a_deadline(settings):
    due = lambda day: rules.reminder_deadlines(day, settings.campaign, settings.reminders.days_before)  # noqa: E731
    assert due(dt.date(2022, 7, 24)) == [("form", dt.date(2022, 7, 31))]
    assert due(dt.date(2022, 7, 30)) == [("form", dt.date(2022, 7, 31))]
    assert due(dt.date(2022, 7, 25)) == [] and due(dt.date(2022, 7, 31)) == []
    assert due(dt.date(2022, 9, 27)) == [("report", dt.date(2022, 9, 30))]
    assert due(dt.date(2022, 8, 1)) == [] and due(dt.date(2022, 10, 1)) == []


def test_what_a_county_is_missing():
    accepted = {"name": "张三", "status": "accepted", "report": None}
    fixing = {"name": "李四", "status": "needs-correction", "report": {"title": "报告"}}
    withdrawn = {"name": "王五", "status": "withdrawn", "report": None}
    assert [m.code for m in rules.missing_for("form", [])] == ["no-form"]
    assert [m.code for m in rules.missing_for("form", [withdrawn])] == ["no-form"]
    assert [(m.code, m.name) for m in rules.missing_for("form", [accepted, fixing])] == [("corrections", "李四")]
    assert rules.missing_for("form", [accepted]) == []
    assert [(m.code, m.name) for m in rules.missing_for("report", [accepted, fixing, withdrawn])] == [("no-report", "张三")]


def test_reminders_are_off_unless_configured_and_bad_days_are_refused(tmp_path):
    (tmp_path / "a").mkdir()
    off = load_settings(write_config(tmp_path / "a"))
    assert off.reminders.days_before == ()
    assert off.campaign.contact_name == "罗树刚" and off.campaign.contact_phone == "28681892"
    assert off.campaign.end_date == dt.date(2022, 10, 30) and not off.digest.forward_questions
    (tmp_path / "b").mkdir()
    with pytest.raises(ConfigError, match="reminders.days_before"):
        load_settings(write_config(tmp_path / "b", replace={"days_before = []": 'days_before = ["七"]'}))


def test_review_marks_take_the_notices_words():
    assert [review_status(w) for w in ("入库", "储备库", "入围", "备选名单", "推荐", "建议人选", "未入选", "pooled")] == [
        "pooled", "pooled", "shortlisted", "shortlisted", "selected", "selected", "not-selected", "pooled"]
    with pytest.raises(IntakeError):
        review_status("优秀")


def test_problem_codes_have_short_chinese_names():
    assert problem_label("missing-field:phone") == "缺联系电话"
    assert problem_label("invalid-field:birth") == "出生年月有误"
    assert problem_label("missing-opinion:discipline") == "缺纪检监察部门意见"
    assert problem_label("late") == "逾期" and problem_label("something-new") == "something-new"
