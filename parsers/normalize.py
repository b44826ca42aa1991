"""Turn values as county clerks type them into the standard forms of SPEC §2.

Pure functions, no I/O. A value that cannot be normalised comes back cleaned but otherwise as
written, so that validation can quote it back to the county.
"""
from __future__ import annotations

import re
import unicodedata

ETHNICITIES = frozenset((
    "汉族", "蒙古族", "回族", "藏族", "维吾尔族", "苗族", "彝族", "壮族", "布依族", "朝鲜族",
    "满族", "侗族", "瑶族", "白族", "土家族", "哈尼族", "哈萨克族", "傣族", "黎族", "傈僳族",
    "佤族", "畲族", "高山族", "拉祜族", "水族", "东乡族", "纳西族", "景颇族", "柯尔克孜族", "土族",
    "达斡尔族", "仫佬族", "羌族", "布朗族", "撒拉族", "毛南族", "仡佬族", "锡伯族", "阿昌族", "普米族",
    "塔吉克族", "怒族", "乌孜别克族", "俄罗斯族", "鄂温克族", "德昂族", "保安族", "裕固族", "京族",
    "塔塔尔族", "独龙族", "鄂伦春族", "赫哲族", "门巴族", "珞巴族", "基诺族",
))

# The standard titles: the CPC, the Youth League, the eight democratic parties, and the rest.
POLITICAL_STATUSES = frozenset((
    "中共党员", "中共预备党员", "共青团员", "民革党员", "民盟盟员", "民建会员", "民进会员",
    "农工党党员", "致公党党员", "九三学社社员", "台盟盟员", "无党派人士", "群众",
))

# Common ways of writing each status; keys have no whitespace.
_POLITICAL_ALIASES = {
    "中共党员": ("党员", "共产党员", "中共党员", "中国共产党党员", "中国共产党员", "中共正式党员"),
    "中共预备党员": ("预备党员", "中共预备党员", "中国共产党预备党员"),
    "共青团员": ("团员", "共青团员", "共青团", "中国共产主义青年团团员", "中国共青团团员"),
    "民革党员": ("民革", "民革党员", "民革会员", "中国国民党革命委员会"),
    "民盟盟员": ("民盟", "民盟盟员", "民盟成员", "中国民主同盟", "中国民主同盟盟员"),
    "民建会员": ("民建", "民建会员", "中国民主建国会", "中国民主建国会会员"),
    "民进会员": ("民进", "民进会员", "中国民主促进会", "中国民主促进会会员"),
    "农工党党员": ("农工党", "农工党员", "农工党党员", "农工民主党", "中国农工民主党",
              "中国农工民主党党员"),
    "致公党党员": ("致公党", "致公党员", "致公党党员", "中国致公党", "中国致公党党员"),
    "九三学社社员": ("九三", "九三学社", "九三学社社员", "九三社员"),
    "台盟盟员": ("台盟", "台盟盟员", "台湾民主自治同盟", "台湾民主自治同盟盟员"),
    "无党派人士": ("无党派", "无党派人士"),
    "群众": ("群众",),
}
_POLITICAL_BY_ALIAS = {alias: std for std, aliases in _POLITICAL_ALIASES.items() for alias in aliases}

# Invisible characters Word, WPS and web forms leave behind. Removed by a regex: str.translate
# with a table looks up every character of CJK text one by one, several times slower.
_ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\u2060\ufeff\u00ad]")
_HSPACE = re.compile(r"[^\S\n]+")   # whitespace other than newline


def clean_text(s: str | None) -> str:
    """Trim a value: drop invisible characters, collapse spaces within each line, strip each
    line, and drop blank lines at the start and end (inner line breaks of deeds are kept)."""
    if not s:
        return ""
    if s.isprintable() and "  " not in s:   # one plain line: nothing but its ends to trim
        return s.strip()
    s = _ZERO_WIDTH.sub("", s).replace("\r\n", "\n").replace("\r", "\n").replace("\v", "\n")
    lines = [_HSPACE.sub(" ", line).strip() for line in s.split("\n")]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


def _compact(s: str) -> str:
    """NFKC (full-width digits and punctuation to ASCII) with every whitespace removed."""
    return "".join(unicodedata.normalize("NFKC", clean_text(s)).split())


_CJK_ONLY = re.compile(r"^[\u3400-\u9fff\uf900-\ufaff·•\s]+$")


def normalize_name(s: str) -> str:
    """Chinese names padded for alignment ("张  三") lose the padding; others are just cleaned."""
    cleaned = clean_text(s)
    if _CJK_ONLY.match(cleaned):
        return "".join(cleaned.split()).replace("•", "·")
    return cleaned


_BIRTH_SEPARATED = re.compile(
    r"^(\d{4})\s*[.\-/年]\s*(\d{1,2})\s*(?:[.\-/月]\s*(?:(\d{1,2})\s*[日号]?)?)?\.?$")
_BIRTH_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})?$")


def normalize_birth(s: str) -> str:
    """"1986.07", "1986年7月", "1990/01", "198607", "1986年07月12日" → "1986-07"."""
    cleaned = clean_text(s)
    text = _compact(cleaned)
    m = _BIRTH_SEPARATED.match(text) or _BIRTH_COMPACT.match(text)
    if not m:
        return cleaned
    year, month, day = int(m.group(1)), int(m.group(2)), m.group(3)
    if not 1 <= month <= 12 or (day is not None and not 1 <= int(day) <= 31):
        return cleaned
    return f"{year:04d}-{month:02d}"


_PHONE_JUNK = re.compile(r"[\s\-()（）—–.]")


def normalize_phone(s: str) -> str:
    """"138 0731 0000", "+86 138-0731-0000", "(0731)2822-1234" → digits only."""
    cleaned = clean_text(s)
    digits = _PHONE_JUNK.sub("", unicodedata.normalize("NFKC", cleaned))
    if digits.startswith("+86"):
        digits = digits[3:]
    elif digits.startswith("0086"):
        digits = digits[4:]
    elif len(digits) == 13 and re.match(r"^861[3-9]", digits):
        digits = digits[2:]   # "86" written without the plus
    return digits if digits.isdigit() else cleaned


_MOBILE = re.compile(r"^1[3-9]\d{9}$")
# Local numbers never start with 0 or 1; area codes are 0 plus 2 or 3 digits (010, 0731).
_LANDLINE = re.compile(r"^(?:0\d{2,3})?[2-9]\d{6,7}$")


def is_valid_phone(s: str) -> bool:
    """An 11-digit mobile number, or a landline with or without its area code."""
    return bool(_MOBILE.match(s) or _LANDLINE.match(s))


def normalize_ethnicity(s: str) -> str:
    """"汉" → "汉族"; a full name stays; anything else is returned cleaned."""
    cleaned = clean_text(s)
    name = _compact(cleaned)
    if name in ETHNICITIES:
        return name
    if name + "族" in ETHNICITIES:
        return name + "族"
    return cleaned


def normalize_political_status(s: str) -> str:
    """"党员" → "中共党员", "团员" → "共青团员", "民盟" → "民盟盟员", ...; unknown → cleaned."""
    cleaned = clean_text(s)
    return _POLITICAL_BY_ALIAS.get(_compact(cleaned), cleaned)


def normalize_sex(s: str) -> str:
    """"男"/"男性" → "男", "女"/"女性" → "女"."""
    cleaned = clean_text(s)
    return {"男": "男", "男性": "男", "女": "女", "女性": "女"}.get(_compact(cleaned), cleaned)


def count_chars(s: str) -> int:
    """Characters as the 600-character rule counts them: whitespace and invisibles excluded."""
    return sum(1 for ch in _ZERO_WIDTH.sub("", s or "") if not ch.isspace())


# What Chinese documents are written in: CJK ideographs, ASCII, CJK and full-width punctuation,
# general punctuation. Garbage decoded as text (LibreOffice's fallback for a damaged file, a
# PDF with a broken font) is mostly Hangul, private-use and rare blocks.
_EXPECTED_CHAR = re.compile(r"[\u4e00-\u9fff\u3400-\u4dbf\x20-\x7e\u3000-\u303f\uff00-\uffef"
                            r"\u2000-\u206f\u00b7\u2160-\u217f\u2460-\u24ff\u25a0-\u25ff]")


def looks_garbled(text: str, tolerated: float = 0.2) -> bool:
    """True when more than `tolerated` of the visible characters are not what a Chinese
    document is written in."""
    visible = [ch for ch in text if not ch.isspace()]
    if not visible:
        return False
    odd = sum(1 for ch in visible if not _EXPECTED_CHAR.match(ch))
    return odd > tolerated * len(visible)
