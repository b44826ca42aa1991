"""What each problem code says to a county: which file, which field, what is wrong, what to do."""
from __future__ import annotations

import datetime as dt

from parsers.records import FIELD_LABELS

FORM = "《株洲市“十大能手”评选推荐表》（信息技术能手类别）"


UNREGISTERED = "未登记"   # the receipt series of senders registered for no county


def receipt_number(year: int, county: str | None, number: int) -> str:
    """A receipt number as official documents write it: 〔2022〕荷塘-003 (the county's name less
    its 区/县/市, unless that would leave a single character, as 攸县 would)."""
    short = county or UNREGISTERED
    if len(short) > 2 and short[-1] in "区县市":
        short = short[:-1]
    return f"〔{year}〕{short}-{number:03d}"


def describe(problem: dict) -> str:
    """One polite Chinese sentence (or two) for a stored problem dict."""
    code = problem["code"]
    base, _, sub = code.partition(":")
    field = problem.get("field") or sub
    ctx = {
        "file": problem.get("file") or "",
        "label": FIELD_LABELS.get(field, field),
        **(problem.get("detail") or {}),
    }
    writer = _SENTENCES.get(code) or _SENTENCES.get(f"{base}:*") or _SENTENCES.get(base)
    if writer is None:
        return f"附件《{ctx['file']}》存在问题（{code}），请核对后重新发送。"
    return writer(ctx)


DEADLINE_WHAT = {"form": "推荐表", "report": "调研报告"}
QUERY_SENTENCE = "如需了解贵单位的报送情况，请发送主题为“查询”的邮件至本邮箱，系统将自动回复。"


def deadline_sentence(ahead: list[tuple[str, "object"]], last_deadline=None) -> str:
    """The deadline that applies next (and the later one), or that reporting has closed.
    `ahead`: pipeline.rules.deadlines_ahead(); `last_deadline`: the report deadline."""
    if not ahead:
        return f"本次报送工作已于{day_text(last_deadline)}截止。" if last_deadline else ""
    (what, first), *later = ahead
    sentence = f"{DEADLINE_WHAT[what]}报送截止时间为{day_text(first)}"
    if later:
        sentence += "，" + "，".join(f"{DEADLINE_WHAT[w]}报送截止时间为{day_text(d)}" for w, d in later)
    return sentence + "。"


def day_text(day) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


def _invalid(ctx: dict) -> str:
    return (f"附件《{ctx['file']}》中“{ctx['label']}”填写为“{ctx.get('value', '')}”，无法识别，"
            f"请核对后重新发送。")


def _invalid_birth(ctx: dict) -> str:
    if "age" in ctx:
        return (f"附件《{ctx['file']}》中“出生年月”为“{ctx['value']}”，截至{_date(ctx['deadline'])}"
                f"年满{ctx['age']}周岁，不在{ctx['min_age']}至{ctx['max_age']}周岁的范围内，"
                f"请核实出生年月是否填写正确。")
    return (f"附件《{ctx['file']}》中“出生年月”填写为“{ctx['value']}”，无法识别，"
            f"请按“1985.06”或“1985年6月”的格式填写后重新发送。")


def _date(iso: str) -> str:
    year, month, day = iso.split("-")
    return f"{int(year)}年{int(month)}月{int(day)}日"


_SENTENCES = {
    "no-attachment": lambda c: (
        f"邮件中没有附件，只有网盘（超大附件/文件中转站）下载链接，系统无法自动下载。"
        f"请将填写完整的{FORM}直接作为邮件附件重新发送。" if c.get("cloud") else
        f"邮件中没有附件。请将填写完整的{FORM}作为附件重新发送。"),
    "nothing-recognized": lambda c: (
        f"附件中未找到推荐表或调研报告（收到的附件：{c.get('files') or '无'}）。"
        f"请确认所附文件为{FORM}后重新发送。"),
    "unreadable-file": lambda c: (
        f"附件《{c['file']}》无法打开（{c.get('reason', '文件已损坏')}）。"
        f"请检查文件后重新发送，推荐表请使用 Word 另存为 .docx 格式。"),
    "scanned-only": lambda c: (
        f"附件《{c['file']}》为扫描件，系统已识别其中的文字，但“{c['unread']}”无法准确识别（或未填写）。"
        f"请发送推荐表的 Word（.docx）版本（盖章扫描件可一并附上），或重新扫描清晰的盖章件后发送。"
        if c.get("unread") else
        f"附件《{c['file']}》为扫描件或图片，系统无法读取其中的文字。"
        f"请同时发送推荐表的 Word（.docx）版本，盖章扫描件可一并附上。"),
    "missing-seal:*": lambda c: (
        f"附件《{c['file']}》中“{c['label']}”一栏未见公章。推荐表须经签署意见并盖章，"
        f"请发送盖章后的推荐表扫描件。"),
    "missing-field:*": lambda c: (
        f"附件《{c['file']}》中“{c['label']}”一栏为空，请填写后重新发送。"),
    "invalid-field:sex": lambda c: (
        f"附件《{c['file']}》中“性别”填写为“{c.get('value', '')}”，请填写“男”或“女”后重新发送。"),
    "invalid-field:birth": _invalid_birth,
    "invalid-field:ethnicity": lambda c: (
        f"附件《{c['file']}》中“民族”填写为“{c.get('value', '')}”，不是规范的民族名称，"
        f"请填写如“汉族”“苗族”“土家族”等后重新发送。"),
    "invalid-field:political_status": lambda c: (
        f"附件《{c['file']}》中“政治面貌”填写为“{c.get('value', '')}”，请按规范名称填写，"
        f"如“中共党员”“共青团员”“群众”等，然后重新发送。"),
    "invalid-field:phone": lambda c: (
        f"附件《{c['file']}》中“联系电话”填写为“{c.get('value', '')}”，不是有效的电话号码，"
        f"请填写11位手机号码或带区号的固定电话后重新发送。"),
    "invalid-field:*": _invalid,
    "deeds-too-long": lambda c: (
        f"附件《{c['file']}》中主要事迹现为{c['count']}字，超过{c['limit']}字上限，请删减后重新发送。"),
    "missing-opinion:recommender": lambda c: (
        f"附件《{c['file']}》中“推荐单位意见”为空，请由推荐单位签署意见并盖章后重新发送。"),
    "missing-opinion:discipline": lambda c: (
        f"附件《{c['file']}》中“纪检监察部门意见”为空。按通知要求，推荐人选须经纪检监察部门"
        f"签署意见后方可报送，请补充后重新发送。"),
    "missing-opinion:*": lambda c: (
        f"附件《{c['file']}》中“{c['label']}”为空，请补充后重新发送。"),
    "missing-photo": lambda c: (
        f"附件《{c['file']}》中未贴一寸免冠照片，邮件中也没有附照片。"
        f"请在推荐表中插入照片，或将照片与推荐表一并发送。"),
    "quota-exceeded": lambda c: (
        f"贵单位已有{c.get('used', '')}名推荐人选，每个县市区最多推荐{c.get('limit', '')}名，"
        f"附件《{c['file']}》中的{c.get('name', '人选')}未予计入。如需更换人选，"
        f"请先发送主题以“撤回”开头并注明姓名的邮件撤回其中一名。"),
    "late": lambda c: (
        f"{c.get('what', '推荐表')}报送截止时间为{_date(c['deadline'])}，本邮件于"
        f"{c.get('received', '')}收到，已超过截止时间，不予受理。如有特殊情况，请与市工信局联系。"),
    "unknown-sender": lambda c: (
        f"发件地址 {c.get('address', '')} 未登记为任何县市区的报送邮箱，本邮件未予受理。"
        f"请使用已登记的邮箱发送，或联系市工信局登记新的报送地址。"),
    "message-too-large": lambda c: (
        f"本邮件大小约为{c.get('size_mb', '')} MB，超过系统可接收的{c.get('limit_mb', '')} MB上限，"
        f"附件未能读取。请压缩附件（如扫描件降低分辨率）或分多封邮件发送。"),
    "withdraw-unmatched": lambda c: (
        f"邮件主题“{c.get('subject', '')}”中未找到可撤回的推荐人选（贵单位目前的人选：{c.get('names', '无')}）。"
        f"请发送主题为“撤回+人选姓名”的邮件，例如“撤回张三”。"),
    "report-unmatched": lambda c: (
        f"附件《{c['file']}》无法对应到贵单位的推荐人选，请在邮件主题或文件名中注明人选姓名后重新发送。"),
}


# Short Chinese names of the problem codes (SPEC §3), for tables that show the codes.
_LABELS = {
    "no-attachment": "无附件", "nothing-recognized": "未识别到推荐表或报告", "unreadable-file": "文件无法打开",
    "scanned-only": "仅有扫描件", "deeds-too-long": "主要事迹超字数", "missing-photo": "缺照片",
    "quota-exceeded": "超出名额", "late": "逾期", "unknown-sender": "未登记的发件人",
    "report-unmatched": "报告无法对应人选", "withdraw-unmatched": "撤回未找到人选",
    "message-too-large": "邮件过大",
}


def problem_label(code: str) -> str:
    """"missing-field:phone" → "缺联系电话"; an unknown code is shown as it is."""
    base, _, sub = code.partition(":")
    label = FIELD_LABELS.get(sub, sub)
    if base == "missing-field":
        return f"缺{label}"
    if base == "invalid-field":
        return f"{label}有误"
    if base == "missing-opinion":
        return f"缺{label}"
    return _LABELS.get(code, code)


# The contact's review marks (intake mark), as the replies, the digest and `intake status` say them.
REVIEW_WORDS = {"pooled": "入储备库", "shortlisted": "入围备选名单", "selected": "建议人选",
                "not-selected": "未入选"}


def deadline_line(days_left: int, deadline: dt.date) -> str:
    if days_left > 0:
        return f"距推荐表报送截止（{day_text(deadline)}）还有 {days_left} 天。"
    if days_left == 0:
        return f"今天（{day_text(deadline)}）是推荐表报送截止日。"
    return f"推荐表报送已于{day_text(deadline)}截止。"


def day_text(date: dt.date) -> str:
    return f"{date.year}年{date.month}月{date.day}日"
