"""What a person wrote in an email, and whether it needs a person to read it.

`own_words` takes the body as the mail client wrote it (plain text and/or HTML) and removes what
the writer did not type just now: the quoted history (">" lines; Foxmail's and QQ's
"------------------ 原始邮件 ------------------"; Outlook's "发件人: … 发送时间:" / "From: … Sent:"
block; 163's "在 2022-07-20 10:00:00，"…" <…> 写道："; "-----Original Message-----"; HTML
<blockquote>s) and the signature ("-- " and everything after it; "发自我的iPhone", "来自网易邮箱大师";
trailing lines of names, units, phone numbers and addresses).

`judge_words` then decides, on what is left, with one rule that can be explained to the contact:
- "question": the writer asks something ("？", 请问, 是否, 能否, …) or says something of their own —
  anything that remains once acknowledgements, greetings, polite closings and punctuation are
  taken out ("收到，谢谢" leaves nothing; "我们下周补发盖章件" leaves words);
- "attachment": no question, but the text announces files ("请查收附件") that are not there;
- "thanks": nothing is left — a bare acknowledgement, or an empty body.
A false "question" costs the contact a glance; a false "thanks" loses a county's question, so
whatever is not plainly an acknowledgement goes to a person.

Pure: text in, text and a verdict out.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from lxml import etree
from lxml import html as lxml_html

MAX_INPUT = 200_000      # characters of body read; a person's note is far shorter
MAX_WORDS = 2_000        # characters of own words kept for the contact

# Lines at which the quoted history starts: everything from there on is cut.
_HISTORY_STARTS = [
    re.compile(r"^\s*-{2,}\s*(原始邮件|Original|Original Message|转发邮件信息|回复的原邮件|Forwarded message)\s*-{2,}\s*$", re.I),
    re.compile(r"^\s*_{10,}\s*$"),                                  # Outlook's rule above "发件人:"
    re.compile(r"^\s*在\s*\d{4}[-/年]\s*\d{1,2}[-/月]\s*\d{1,2}.{0,80}写道\s*[:：]\s*$"),   # 163, iPhone
    re.compile(r"^\s*On\s.{0,200}\swrote\s*:\s*$", re.I),          # Gmail, Apple Mail
    re.compile(r"^\s*\d{4}-\d{1,2}-\d{1,2}\s.{0,120}写道\s*[:：]\s*$"),   # 163 mobile, 网易邮箱大师
]
# An Outlook / Foxmail / QQ header block: "发件人:" followed within a few lines by a time line.
_FROM_LINE = re.compile(r"^\s*\**\s*(发件人|From)\s*\**\s*[:：]", re.I)
_WHEN_LINE = re.compile(r"^\s*\**\s*(发送时间|时间|日期|Sent|Date)\s*\**\s*[:：]", re.I)

# Lines that are never the writer's words: client signatures.
_CLIENT_SIGNATURES = re.compile(
    r"^\s*(发自我的\S*|来自\S*(邮箱|邮件)\S*|发自\S*(邮箱|邮件|客户端)\S*|Sent from my \S.*|Sent from \S*Mail.*|"
    r"Get Outlook for \S+|获取\s*Outlook\s*for\s*\S+)\s*$", re.I)
_SIGNATURE_RULE = re.compile(r"^\s*--\s*$")

# A trailing signature line: a phone number, an address, a name, a unit, a date.
_SIGNATURE_LINES = [
    re.compile(r"(电话|手机|座机|传真|邮编|地址|联系人|邮箱|E-?mail|Tel|Mob|Fax)\s*[:：]?", re.I),
    re.compile(r"\d[\d\s-]{6,}\d"),                                   # a phone number
    re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+"),                          # an address
    re.compile(r"^[\u4e00-\u9fff（）()·]{2,24}(局|科|办|办公室|中心|公司|委员会|政府|股|室|站|所)$"),  # a unit
    re.compile(r"^[\u4e00-\u9fff·]{2,4}$"),                           # a bare name
    re.compile(r"^\d{4}\s*[年.-]\s*\d{1,2}\s*[月.-]\s*\d{1,2}\s*日?$"),  # a date under the name
]

# What a question looks like.
_QUESTION = re.compile(r"[?？]|请问|是否|能否|可否|可不可以|能不能|要不要|怎么|怎样|如何|为什么|为何|哪些|哪里|多少|吗|么\b")
# Text that announces files: a forgotten attachment, not a question.
_ANNOUNCES_FILES = re.compile(r"附件|查收|请查阅|请审阅|见附|请收|已发送.*(推荐表|材料|报告)")

# Acknowledgements, greetings and closings: what is left once these are gone is the writer's own.
_POLITE = [
    r"[\u4e00-\u9fff]{0,2}(老师|科长|主任|局长|处长|领导|同志)(们)?",
    r"非常感谢|十分感谢|万分感谢|感谢您?|谢谢(您|你|老师)?|多谢|谢了|辛苦(了|啦)?|麻烦(您|你)?了",
    r"已?收悉|已?收到(了)?|已?知悉|已阅|好的|好滴|好嘞|好|嗯+|哦+|明白(了)?|知道(了)?|了解(了)?|没问题|OK|Okay|ok",
    r"您好|你好|各位|大家好|早上好|上午好|下午好|晚上好",
    # "您的邮件已收到，我们会尽快处理": a promise to act is an acknowledgement too
    r"(您|你)?的?(邮件|来信|回复|回信|通知)",
    r"(我们|我|我单位|我局)?(会|将)?(尽快|马上|立即|及时|按要求)(进行)?(处理|修改|补充|补正|报送|发送|重新发送|重发|办理|完善)",
    r"此致|敬礼|祝好|顺祝(商祺|工作顺利|安好)?|祝(您)?工作顺利|工作顺利|即颂|商祺",
    r"thanks?( you)?( very much)?|thx|many thanks|noted|received|got it|regards|best",
    r"[了啊呀哈呢的哒啦噢喔~～]",
]
_POLITE_RE = re.compile("|".join(f"(?:{p})" for p in _POLITE), re.I)
_PUNCTUATION = re.compile(r"[\s\W_]+", re.UNICODE)


@dataclass(frozen=True)
class Words:
    text: str          # the writer's own words, quoted history and signature removed
    verdict: str       # question | attachment | thanks


_REPLY_PREFIX = re.compile(r"^\s*(re|fw|fwd|回复|答复|转发)\s*[:：]", re.I)


def read_words(plain: str, html: str = "", subject: str = "") -> Words:
    """The writer's own words from an email body, and what they amount to. A fresh email's
    subject counts when it asks something ("请问调研报告有字数要求吗", empty body); a reply's
    subject is ours, quoted back."""
    text = own_words(plain, html)
    verdict = judge_words(text)
    subject = subject.strip()
    if verdict != "question" and subject and not _REPLY_PREFIX.match(subject) and _QUESTION.search(subject):
        return Words(f"{subject}\n{text}".strip(), "question")
    return Words(text, verdict)


def own_words(plain: str, html: str = "") -> str:
    """The body without quoted history and signature; the plain part when it says anything,
    else the HTML part turned into text."""
    text = _cut(plain[:MAX_INPUT])
    if not text and html:
        text = _cut(html_text(html[:MAX_INPUT]))
    return text[:MAX_WORDS]


def judge_words(text: str) -> str:
    if _QUESTION.search(text):
        return "question"
    if _ANNOUNCES_FILES.search(text):
        return "attachment"
    return "question" if _leftover(text) else "thanks"


def _leftover(text: str) -> str:
    """What remains once politeness and punctuation are removed."""
    return _PUNCTUATION.sub("", _POLITE_RE.sub("", text))


# ------------------------------------------------------------------ cutting

def _cut(text: str) -> str:
    lines = text.replace("\r\n", "\n").replace("\r", "\n").replace("\xa0", " ").replace("\u3000", " ").split("\n")
    lines = _before_history(lines)
    lines = _before_signature(lines)
    return "\n".join(lines).strip()


def _before_history(lines: list[str]) -> list[str]:
    kept = []
    for i, line in enumerate(lines):
        if any(p.match(line) for p in _HISTORY_STARTS):
            break
        if _FROM_LINE.match(line) and any(_WHEN_LINE.match(n) for n in lines[i + 1:i + 5]):
            break
        if line.lstrip().startswith(">"):
            continue
        kept.append(line)
    return kept


def _before_signature(lines: list[str]) -> list[str]:
    for i, line in enumerate(lines):
        if _SIGNATURE_RULE.match(line):
            lines = lines[:i]
            break
    lines = [line for line in lines if not _CLIENT_SIGNATURES.match(line)]
    while lines and not lines[-1].strip():
        lines.pop()
    # Trailing signature lines go, but never the last line with words in it above them.
    while len([ln for ln in lines if ln.strip()]) > 1 and _signature_like(lines[-1]):
        lines.pop()
        while lines and not lines[-1].strip():
            lines.pop()
    return lines


def _signature_like(line: str) -> bool:
    line = line.strip()
    if not line or _QUESTION.search(line):
        return False
    return any(p.search(line) for p in _SIGNATURE_LINES)


# ------------------------------------------------------------------ HTML

_BLOCKS = ("br", "p", "div", "tr", "li", "hr", "h1", "h2", "h3", "h4", "table", "blockquote")
# Containers the clients put the quoted history in; it and everything after it is history.
_QUOTE_CONTAINERS = ("divRplyFwdMsg", "isReplyContent", "isForwardContent", "reply-content",
                     "mail-quote", "gmail_quote", "moz-cite-prefix", "yahoo_quoted",
                     "ntes-mailmaster-quote")


def html_text(markup: str) -> str:
    """The readable text of an HTML body: <blockquote>s and the clients' quote containers
    (Outlook's divRplyFwdMsg, 163's isReplyContent, …) with all that follows them dropped, a
    line break where a block ends, entities decoded. lxml parses whatever arrives, in C."""
    try:
        doc = lxml_html.document_fromstring(markup)
    except (etree.ParserError, ValueError):
        return ""
    for el in doc.xpath("//script|//style|//head|//title|//blockquote"):
        el.drop_tree()
    marker = "\ue000QUOTE\ue000"
    for el in list(doc.iter()):
        if not isinstance(el.tag, str):
            continue
        ident = f"{el.get('id', '')} {el.get('class', '')}"
        if any(name in ident for name in _QUOTE_CONTAINERS):
            el.clear()
            el.text = marker
        elif el.tag in _BLOCKS:
            el.tail = "\n" + (el.tail or "")
    return doc.text_content().split(marker, 1)[0]
