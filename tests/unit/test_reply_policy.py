"""Replies are composed with a policy that remembers parsed and folded headers (outbox/compose.py's
_ReplyPolicy, for speed): the bytes must be exactly what the standard library's policy.default
writes, whatever the county's email held."""
import datetime as dt
import email
import re
from email import policy
from email.message import EmailMessage

import pytest

from outbox import compose

NOW = dt.datetime(2022, 7, 20, 2, 0, tzinfo=dt.timezone.utc)
RECEIVED = dt.datetime(2022, 7, 20, 10, 15, tzinfo=dt.timezone(dt.timedelta(hours=8)))

CASES = {
    "accepted": dict(status="accepted", original_subject="荷塘区信息技术能手推荐表（张三）"),
    "ascii subject": dict(status="needs-correction", original_subject="Re: form"),
    "encoded word typed in the subject": dict(status="rejected", original_subject="=?utf-8?b?5byg5LiJ?= form"),
    "long references": dict(status="accepted", original_subject="推荐表",
                            references=[f"<ref-{i}.1656929220@example.cn>" for i in range(12)]),
    "a long ascii id": dict(status="accepted", original_subject="x",
                            original_message_id="<" + "a" * 90 + "@example.cn>"),
    "display name in to": dict(status="accepted", original_subject="推荐表", to='"Li, Ling" <liling@example.cn>'),
}


def composed(case: dict, reply_policy) -> bytes:
    return re.sub(rb"={15}\d+==", b"BOUNDARY", composed_raw(case, reply_policy))


def composed_raw(case: dict, reply_policy=compose.REPLY_POLICY) -> bytes:
    fields = {"to": "hetang@example.cn", "county": "荷塘区", "received_at": RECEIVED,
              "original_message_id": "<fox-1@example.cn>", "receipt": "〔2022〕荷塘-001", **case}
    saved, compose.REPLY_POLICY = compose.REPLY_POLICY, reply_policy
    try:
        msg = compose.compose_reply(compose.ReplyContent(**fields), "zzdztxhrj@163.com", "<fox-1@example.cn>", NOW)
    finally:
        compose.REPLY_POLICY = saved
    return msg.as_bytes()


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_a_reply_is_byte_for_byte_what_the_default_policy_writes(case):
    reference = composed(case, policy.default)
    assert composed(case, compose.REPLY_POLICY) == reference
    assert composed(case, compose.REPLY_POLICY) == reference   # and again, from what it remembered


def test_each_reply_has_a_boundary_of_its_own_and_parses_back_into_its_two_parts():
    case = CASES["accepted"]
    first, second = (email.message_from_bytes(composed_raw(case)) for _ in range(2))
    assert first.get_boundary() != second.get_boundary()
    assert re.fullmatch(r"={15}\d{19}==", first.get_boundary())   # the generator's form
    text, html = first.get_payload()
    assert "荷塘区信息技术能手推荐表（张三）" in text.get_payload(decode=True).decode()
    assert html.get_content_type() == "text/html"


def test_a_boundary_found_in_a_part_is_never_used(monkeypatch):
    taken = "=" * 15 + f"{42:019d}" + "=="
    msg = EmailMessage()
    msg.set_content(f"a line of a part:\n--{taken}\n")
    msg.add_alternative("<p>html</p>", subtype="html")
    draws = iter([42, 43])
    monkeypatch.setattr(compose.secrets, "randbelow", lambda n: next(draws))
    assert compose._fresh_boundary(msg) == "=" * 15 + f"{43:019d}" + "=="
