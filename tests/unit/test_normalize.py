"""How the values county clerks type become the standard values of SPEC §2."""
import pytest

from parsers.normalize import (
    ETHNICITIES, POLITICAL_STATUSES, clean_text, count_chars, is_valid_phone, normalize_birth,
    normalize_ethnicity, normalize_name, normalize_phone, normalize_political_status,
    normalize_sex,
)


def test_there_are_56_ethnic_groups_all_named_with_zu():
    assert len(ETHNICITIES) == 56
    assert all(name.endswith("族") for name in ETHNICITIES)


def test_political_statuses_are_the_thirteen_standard_titles():
    assert len(POLITICAL_STATUSES) == 13
    assert {"中共党员", "九三学社社员", "无党派人士", "群众"} <= POLITICAL_STATUSES


@pytest.mark.parametrize("raw, expected", [
    ("  张三  ", "张三"),
    ("\u3000\u3000株洲市\u3000天元区\xa0", "株洲市 天元区"),
    ("\u200b张\u200d三\ufeff", "张三"),
    ("a   b\t\tc", "a b c"),
    ("\n\n  第一段。  \n\u3000\u3000第二段。\n\n", "第一段。\n第二段。"),
    ("第一段。\r\n第二段。", "第一段。\n第二段。"),
    ("", ""),
    (None, ""),
])
def test_clean_text(raw, expected):
    assert clean_text(raw) == expected


@pytest.mark.parametrize("raw, expected", [
    ("张  三", "张三"),
    ("\u3000李\u3000四\u3000", "李四"),
    ("阿依古丽•买买提", "阿依古丽·买买提"),
    ("Zhang San", "Zhang San"),
])
def test_normalize_name(raw, expected):
    assert normalize_name(raw) == expected


@pytest.mark.parametrize("raw, expected", [
    ("1986.07", "1986-07"),
    ("1986.7", "1986-07"),
    ("1986年7月", "1986-07"),
    ("1979年3月", "1979-03"),
    ("1979 年 3 月", "1979-03"),
    ("1990-1", "1990-01"),
    ("1990/01", "1990-01"),
    ("198607", "1986-07"),
    ("19860712", "1986-07"),
    ("1986.7.12", "1986-07"),
    ("1986年07月12日", "1986-07"),
    ("１９８６．０７", "1986-07"),
    ("１９８６年７月", "1986-07"),
    ("1986.07.", "1986-07"),
    (" 1985-06 ", "1985-06"),
    # Not a birth month: kept as written (cleaned) so validation can quote it.
    ("1986.13", "1986.13"),
    ("198600", "198600"),
    ("1986年", "1986年"),
    ("八六年七月", "八六年七月"),
    ("  不详 ", "不详"),
    ("", ""),
])
def test_normalize_birth(raw, expected):
    assert normalize_birth(raw) == expected


@pytest.mark.parametrize("raw, expected", [
    ("13807310000", "13807310000"),
    ("138 0731 0000", "13807310000"),
    ("138-0731-0000", "13807310000"),
    ("+86 138 0731 0000", "13807310000"),
    ("+86-13807310000", "13807310000"),
    ("0086 13807310000", "13807310000"),
    ("8613807310000", "13807310000"),
    ("１３８０７３１００００", "13807310000"),
    ("0731-28221234", "073128221234"),
    ("(0731)2822 1234", "073128221234"),
    ("（0731）28221234", "073128221234"),
    ("28221234", "28221234"),
    # Not only digits after cleanup: kept as written.
    ("138 0731 0000 / 0731-28221234", "138 0731 0000 / 0731-28221234"),
    ("0731-28221234转8001", "0731-28221234转8001"),
    ("无", "无"),
])
def test_normalize_phone(raw, expected):
    assert normalize_phone(raw) == expected


@pytest.mark.parametrize("digits, valid", [
    ("13807310000", True),
    ("19912345678", True),
    ("12807310000", False),     # no mobile prefix 12
    ("1380731000", False),      # 10 digits
    ("138073100001", False),    # 12 digits, not a landline either
    ("28221234", True),         # local 8 digits
    ("2822123", True),          # local 7 digits
    ("073128221234", True),     # 0731 + 8
    ("07312822123", True),      # 0731 + 7
    ("01062345678", True),      # Beijing 010 + 8
    ("02112345678", True),      # Shanghai 021 + 8
    ("123456", False),
    ("08221234", False),        # a local number never starts with 0
    ("0731", False),
    ("", False),
    ("138 0731 0000", False),   # validation sees normalised digits only
])
def test_is_valid_phone(digits, valid):
    assert is_valid_phone(digits) is valid


@pytest.mark.parametrize("raw, expected", [
    ("汉", "汉族"),
    ("汉族", "汉族"),
    (" 苗 ", "苗族"),
    ("土家", "土家族"),
    ("维吾尔", "维吾尔族"),
    ("蒙古族", "蒙古族"),
    ("汉\u3000族", "汉族"),
    ("穿青人", "穿青人"),
    ("汉人", "汉人"),
    ("", ""),
])
def test_normalize_ethnicity(raw, expected):
    assert normalize_ethnicity(raw) == expected


def test_every_ethnicity_without_zu_is_recognised():
    for name in ETHNICITIES:
        assert normalize_ethnicity(name[:-1]) == name


@pytest.mark.parametrize("raw, expected", [
    ("党员", "中共党员"),
    ("共产党员", "中共党员"),
    ("中共党员", "中共党员"),
    ("中国共产党党员", "中共党员"),
    ("中共 党员", "中共党员"),
    ("预备党员", "中共预备党员"),
    ("中共预备党员", "中共预备党员"),
    ("团员", "共青团员"),
    ("共青团员", "共青团员"),
    ("中国共产主义青年团团员", "共青团员"),
    ("民革", "民革党员"),
    ("民盟", "民盟盟员"),
    ("民建", "民建会员"),
    ("民进", "民进会员"),
    ("农工党", "农工党党员"),
    ("致公党", "致公党党员"),
    ("九三学社", "九三学社社员"),
    ("台盟", "台盟盟员"),
    ("无党派", "无党派人士"),
    ("无党派人士", "无党派人士"),
    ("群众", "群众"),
    ("  群众 ", "群众"),
    ("少先队员", "少先队员"),
    ("", ""),
])
def test_normalize_political_status(raw, expected):
    assert normalize_political_status(raw) == expected


def test_every_standard_political_status_is_kept():
    for status in POLITICAL_STATUSES:
        assert normalize_political_status(status) == status


@pytest.mark.parametrize("raw, expected", [
    ("男", "男"), ("男性", "男"), (" 女 ", "女"), ("女性", "女"), ("M", "M"), ("", ""),
])
def test_normalize_sex(raw, expected):
    assert normalize_sex(raw) == expected


@pytest.mark.parametrize("text, expected", [
    ("", 0),
    ("同意推荐。", 5),
    ("第一段。\n\u3000\u3000第二段。", 8),
    ("a b\tc\xa0d", 4),
    ("零\u200b宽", 2),
    ("字" * 600, 600),
])
def test_count_chars_ignores_whitespace(text, expected):
    assert count_chars(text) == expected
