"""The season's rules across emails: quota, deadlines, withdrawals, reports, status queries."""
import datetime as dt

import pytest

from pipeline import rules
from pipeline.settings import load_settings
from tests.configs import DEFAULT_CONFIG

CAMPAIGN = load_settings(DEFAULT_CONFIG).campaign
SH = dt.timezone(dt.timedelta(hours=8))


def cands(**statuses) -> list[dict]:
    return [{"name": name, "status": status} for name, status in statuses.items()]


@pytest.mark.parametrize("existing, names, expected", [
    ({}, ["张三"], [("张三", True, True)]),
    ({}, ["张三", "李四", "王五", "赵六"], [("张三", True, True), ("李四", True, True),
                                           ("王五", True, True), ("赵六", True, False)]),
    ({"张三": "accepted", "李四": "needs-correction", "王五": "accepted"}, ["赵六"], [("赵六", True, False)]),
    ({"张三": "accepted", "李四": "needs-correction", "王五": "accepted"}, ["李四"], [("李四", False, True)]),
    ({"张三": "accepted", "李四": "withdrawn", "王五": "accepted"}, ["赵六"], [("赵六", True, True)]),
    ({"张三": "accepted", "李四": "withdrawn", "王五": "accepted"}, ["李四"], [("李四", True, True)]),
    ({"张三": "accepted", "李四": "accepted", "王五": "accepted", "赵六": "quota-exceeded"}, ["赵六"],
     [("赵六", True, False)]),
    ({"张三": "accepted", "李四": "accepted"}, ["王五", "王五"], [("王五", True, True), ("王五", False, True)]),
])
def test_quota_counts_places_held_and_judges_one_email_in_order(existing, names, expected):
    decisions = rules.decide_quota(cands(**existing), names, CAMPAIGN.candidates_max)
    assert [(d.name, d.new, d.allowed) for d in decisions] == expected


@pytest.mark.parametrize("local, late", [
    (dt.datetime(2022, 7, 31, 23, 59, tzinfo=SH), False),
    (dt.datetime(2022, 8, 1, 0, 0, tzinfo=SH), True),
    # 16:30 UTC on the 31st is already 1 August in Zhuzhou.
    (dt.datetime(2022, 7, 31, 16, 30, tzinfo=dt.timezone.utc), True),
])
def test_the_form_deadline_ends_with_the_day_in_zhuzhou(local, late):
    assert rules.form_is_late(local, CAMPAIGN) is late


@pytest.mark.parametrize("local, late", [
    (dt.datetime(2022, 9, 30, 18, 0, tzinfo=SH), False),
    (dt.datetime(2022, 10, 1, 9, 0, tzinfo=SH), True),
])
def test_the_report_deadline(local, late):
    assert rules.report_is_late(local, CAMPAIGN) is late


@pytest.mark.parametrize("subject, query, withdrawal", [
    ("查询", True, False), ("查询进度", True, False), (" 查询 ", True, False), ("Re: 查询", True, False),
    ("查询张三推荐表是否收到", False, False), ("撤回张三", False, True), ("【撤回】 张三", False, True),
    ("回复：撤回 张三", False, True), ("关于撤回的说明", False, False), ("推荐表", False, False),
])
def test_queries_and_withdrawals_are_told_by_the_subject(subject, query, withdrawal):
    assert rules.is_status_query(subject) is query
    assert rules.is_withdrawal(subject) is withdrawal


@pytest.mark.parametrize("subject, expected", [
    ("撤回张三", ["张三"]),
    ("撤回 张 三", ["张三"]),
    ("撤回张三、李四", ["张三", "李四"]),
    ("撤回王五", []),          # withdrawn already
    ("撤回赵六", []),          # never put forward
    ("撤回", []),
])
def test_withdrawal_names_active_candidates_only(subject, expected):
    assert rules.withdrawal_targets(subject, cands(张三="accepted", 李四="needs-correction", 王五="withdrawn")) == expected


@pytest.mark.parametrize("subject, filename, head, expected", [
    ("张三调研报告", "报告.docx", "", "张三"),
    ("调研报告", "李四-项目总结.docx", "", "李四"),
    ("调研报告", "报告.docx", "关于政务云的调研报告\n作者：张三", "张三"),
    ("张三、李四调研报告", "报告.docx", "作者：张三", None),     # two names where it counts
    ("调研报告", "报告.docx", "无署名", None),
    ("王五调研报告", "报告.docx", "", None),                  # withdrawn
])
def test_a_report_is_tied_to_exactly_one_candidate(subject, filename, head, expected):
    candidates = cands(张三="accepted", 李四="needs-correction", 王五="withdrawn")
    assert rules.link_report(subject, filename, head, candidates) == expected


@pytest.mark.parametrize("title, filename, with_forms, expected", [
    ("推荐函", "推荐函.docx", True, False),
    ("关于政务数据的调研报告", "附件2.docx", True, True),
    ("推荐函", "张三研究论文.docx", True, True),
    ("任意文档", "材料.docx", False, True),
])
def test_a_text_beside_forms_is_a_report_only_when_it_says_so(title, filename, with_forms, expected):
    assert rules.is_report(title, filename, with_forms) is expected


def test_places_used_counts_accepted_and_pending_correction_only():
    assert rules.places_used(cands(a="accepted", b="needs-correction", c="withdrawn", d="quota-exceeded")) == 2
