"""The field rules of SPEC §3 on one form, and the sentence a county reads for each problem."""
import dataclasses

import pytest

from outbox.wording import describe
from parsers.records import FormRecord, Problem
from pipeline import rules
from pipeline.settings import load_settings
from tests.configs import DEFAULT_CONFIG

CAMPAIGN = load_settings(DEFAULT_CONFIG).campaign
FILE = "张三推荐表.docx"


def good_form(**changes) -> FormRecord:
    form = FormRecord(
        name="张三", sex="男", birth="1985-06", ethnicity="汉族", native_place="湖南株洲",
        political_status="中共党员", employer_post="株洲市大数据中心 副主任",
        home_address="株洲市天元区泰山路88号", phone="13807310000", honours="",
        deeds="长期从事政务信息化建设。",
        opinions={"recommender": "同意推荐。", "discipline": "同意。", "member_unit": "", "approval": ""},
        photo=True)
    return dataclasses.replace(form, **changes)


def codes(form: FormRecord, photo_in_email: bool = False) -> list[str]:
    return [p.code for p in rules.validate_form(form, FILE, CAMPAIGN, photo_in_email)]


def test_a_complete_form_has_no_problem_and_honours_may_be_empty():
    assert codes(good_form()) == []


@pytest.mark.parametrize("field", rules.REQUIRED_FIELDS)
def test_every_required_field_when_empty(field):
    assert codes(good_form(**{field: ""})) == [f"missing-field:{field}"]


@pytest.mark.parametrize("field, value", [
    ("sex", "未知"), ("birth", "八五年"), ("birth", "1950-01"), ("birth", "2010-01"),
    ("ethnicity", "火星族"), ("political_status", "党员候选"), ("phone", "12345"),
])
def test_invalid_values(field, value):
    assert codes(good_form(**{field: value})) == [f"invalid-field:{field}"]


@pytest.mark.parametrize("birth, ok", [
    ("2004-07", True),    # 18 on the 2022-07-31 deadline
    ("2004-08", False),   # 17 until August
    ("1957-07", True),    # 65
    ("1956-07", False),   # 66
])
def test_age_is_counted_at_the_submission_deadline(birth, ok):
    assert (codes(good_form(birth=birth)) == []) is ok


def test_deeds_are_counted_without_whitespace():
    assert codes(good_form(deeds="字" * 600 + " \n\u3000" * 50)) == []
    problems = rules.validate_form(good_form(deeds="字" * 732), FILE, CAMPAIGN)
    assert [p.code for p in problems] == ["deeds-too-long"]
    assert describe(problems[0].to_dict()) == (
        "附件《张三推荐表.docx》中主要事迹现为732字，超过600字上限，请删减后重新发送。")


@pytest.mark.parametrize("key", ["recommender", "discipline"])
def test_required_opinions(key):
    form = good_form()
    form.opinions[key] = ""
    assert codes(form) == [f"missing-opinion:{key}"]


def test_photo_may_come_in_the_form_or_the_same_email():
    assert codes(good_form(photo=False)) == ["missing-photo"]
    assert codes(good_form(photo=False), photo_in_email=True) == []


@pytest.mark.parametrize("problem_codes, status", [
    ([], "accepted"),
    (["missing-photo"], "needs-correction"),
    (["missing-photo", "late"], "rejected"),
    (["unknown-sender"], "rejected"),
])
def test_status_follows_the_problems(problem_codes, status):
    assert rules.status_for([Problem(c) for c in problem_codes]) == status


def test_the_worst_status_of_an_email_wins():
    assert rules.worst_status(["accepted", "needs-correction"]) == "needs-correction"
    assert rules.worst_status(["accepted", "rejected", "needs-correction"]) == "rejected"
    assert rules.worst_status(["accepted"]) == "accepted"


ALL_CODES = ["no-attachment", "nothing-recognized", "unreadable-file", "scanned-only",
             "missing-field:phone", "invalid-field:sex", "invalid-field:birth",
             "invalid-field:ethnicity", "invalid-field:political_status", "invalid-field:phone",
             "deeds-too-long", "missing-opinion:recommender", "missing-opinion:discipline",
             "missing-photo", "quota-exceeded", "late", "unknown-sender", "report-unmatched"]


@pytest.mark.parametrize("code", ALL_CODES)
def test_every_code_has_a_chinese_sentence_that_names_the_file(code):
    detail = {"value": "某", "count": 700, "limit": 600, "reason": "文件已损坏", "files": FILE,
              "deadline": "2022-07-31", "received": "2022年8月2日 10:00", "address": "a@b.cn",
              "used": 3, "name": "张三"}
    text = describe({"code": code, "file": FILE, "field": code.partition(":")[2], "detail": detail})
    assert "（" not in code and text.endswith("。")
    prose = text.replace(FILE, "").replace("a@b.cn", "").replace("Word", "").replace(".docx", "")
    assert not any(ch.isascii() and ch.isalpha() for ch in prose), text
    if code not in ("no-attachment", "late", "unknown-sender"):
        assert FILE in text


def test_a_field_sentence_names_the_field_in_the_forms_words():
    text = describe(Problem("missing-field:employer_post", FILE, "employer_post").to_dict())
    assert text == "附件《张三推荐表.docx》中“工作单位及职务”一栏为空，请填写后重新发送。"


# ---- scanned, stamped forms ------------------------------------------------------------------

def test_on_a_scan_a_seal_signs_an_opinion_box_left_without_text():
    blank = {"recommender": "", "discipline": "", "member_unit": "", "approval": ""}
    stamped = {"recommender": True, "discipline": True, "member_unit": False, "approval": False}
    assert codes(good_form(opinions=blank, seals=stamped, source="scan")) == []
    assert codes(good_form(opinions=blank, source="scan")) == [
        "missing-opinion:recommender", "missing-opinion:discipline"]


def test_fields_a_scan_could_not_read_are_asked_for_once_by_name():
    form = good_form(phone="", native_place="", source="scan")
    [problem] = rules.validate_form(form, FILE, CAMPAIGN, unread=["phone"])
    assert problem.code == "scanned-only"
    sentence = describe(problem.to_dict())
    assert "“联系电话、籍贯”无法准确识别" in sentence and FILE in sentence


def test_missing_seals_go_back_to_the_county_only_when_the_campaign_requires_them():
    assert codes(good_form()) == []
    strict = dataclasses.replace(CAMPAIGN, require_seals=True)
    problems = rules.validate_form(good_form(), FILE, strict)
    assert [p.code for p in problems] == ["missing-seal:recommender", "missing-seal:discipline"]
    assert "“推荐单位意见”一栏未见公章" in describe(problems[0].to_dict())
    sealed = good_form(seals={"recommender": True, "discipline": True, "member_unit": False, "approval": False})
    assert rules.validate_form(sealed, FILE, strict) == []
