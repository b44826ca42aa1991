"""A reply's multipart Content-Type is kept as text until asked for more (outbox/compose.py's
_WithBoundary): asked, it answers as the header the standard library parses."""
import datetime as dt

from outbox import compose

NOW = dt.datetime(2022, 7, 20, 2, 0, tzinfo=dt.timezone.utc)


def test_the_multipart_content_type_of_a_reply_answers_like_a_parsed_header():
    content = compose.ReplyContent(to="hetang@example.cn", county="荷塘区", status="accepted",
                                   received_at=NOW, original_subject="推荐表",
                                   original_message_id="<fox-1@example.cn>")
    msg = compose.compose_reply(content, "zzdztxhrj@163.com", "<fox-1@example.cn>", NOW)
    header = msg["Content-Type"]
    parsed = compose.REPLY_POLICY.header_factory("Content-Type", str(header))
    assert header.content_type == "multipart/alternative"
    assert header.params == parsed.params and header.params["boundary"] == msg.get_boundary()
    assert list(header.defects) == [] and header.name == "Content-Type"
