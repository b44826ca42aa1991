"""Replies are composed with a policy that remembers parsed and folded headers (outbox/compose.py's
_ReplyPolicy, for speed): the bytes must be exactly what the standard library's policy.default
writes, whatever the county's email held."""
import datetime as dt
import re
from email import policy

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
    fields = {"to": "hetang@example.cn", "county": "荷塘区", "received_at": RECEIVED,
              "original_message_id": "<fox-1@example.cn>", "receipt": "〔2022〕荷塘-001", **case}
    saved, compose.REPLY_POLICY = compose.REPLY_POLICY, reply_policy
    try:
        msg = compose.compose_reply(compose.ReplyContent(**fields), "zzdztxhrj@163.com", "<fox-1@example.cn>", NOW)
    finally:
        compose.REPLY_POLICY = saved
    return re.sub(rb"={15}\d+==", b"BOUNDARY", msg.as_bytes())


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_a_reply_is_byte_for_byte_what_the_default_policy_writes(case):
    reference = composed(case, policy.default)
    assert composed(case, compose.REPLY_POLICY) == reference
    assert composed(case, compose.REPLY_POLICY) == reference   # and again, from what it remembered
