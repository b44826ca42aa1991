"""Generated MIME structures and header values: whatever arrives is recorded, nothing crashes."""
import datetime as dt
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

from pipeline.process import process_message
from pipeline.settings import load_settings
from store.repository import Store
from tests.configs import write_config

WHEN = dt.datetime(2022, 7, 20, 2, 0, tzinfo=dt.timezone.utc)
CRLF = b"\r\n"

header_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)
raw_bytes = st.binary(max_size=300)
charsets = st.sampled_from(["utf-8", "gb2312", "gbk", "big5", "iso-8859-1", "x-unknown", "", "utf-7"])
encodings = st.sampled_from(["base64", "quoted-printable", "7bit", "8bit", "binary", "x-uuencode", "bogus"])
types = st.sampled_from(["text/plain", "text/html", "application/pdf", "image/png", "application/zip",
                         "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                         "message/rfc822", "message/delivery-status", "application/ms-tnef", "bogus"])
senders = st.sampled_from(["hetang@example.cn", "stranger@example.com", "MAILER-DAEMON@x.cn",
                           "zzdztxhrj@163.com", "not an address", ""])


def encoded_word(text: str, charset: str) -> bytes:
    try:
        return text.encode(charset or "utf-8")
    except (LookupError, UnicodeEncodeError):
        return text.encode("utf-8", "surrogatepass")


@st.composite
def leaf(draw) -> bytes:
    name = draw(st.one_of(st.none(), header_text, st.just("../../etc/passwd"), st.just("推荐表.docx")))
    head = [b"Content-Type: " + draw(types).encode() + b"; charset=" + draw(charsets).encode(),
            b"Content-Transfer-Encoding: " + draw(encodings).encode()]
    if name is not None:
        head.append(b'Content-Disposition: attachment; filename="' + encoded_word(name, draw(charsets)) + b'"')
    return CRLF.join(head) + CRLF + CRLF + draw(raw_bytes)


@st.composite
def part(draw, depth: int = 0) -> bytes:
    if depth >= 3 or draw(st.booleans()):
        return draw(leaf())
    boundary = draw(st.sampled_from(["b1", "b2", "=_x", "a b", ""])).encode() + str(depth).encode()
    children = draw(st.lists(part(depth + 1), max_size=4))
    body = b"".join(b"--" + boundary + CRLF + child + CRLF for child in children)
    closing = draw(st.sampled_from([b"--" + boundary + b"--", b""]))
    subtype = draw(st.sampled_from([b"mixed", b"alternative", b"report", b"related"]))
    return b"Content-Type: multipart/" + subtype + b'; boundary="' + boundary + b'"' + CRLF + CRLF + body + closing


@st.composite
def message(draw) -> bytes:
    headers = [
        b"From: " + encoded_word(draw(header_text), "utf-8") + b" <" + draw(senders).encode() + b">",
        b"To: zzdztxhrj@163.com",
        b"Subject: " + encoded_word(draw(header_text), draw(charsets)),
        b"Message-ID: " + draw(st.sampled_from([b"<fixed@x>", b"", b"<" + draw(raw_bytes)[:20].hex().encode() + b"@x>"])),
    ]
    headers += draw(st.lists(st.sampled_from([
        b"Auto-Submitted: auto-replied", b"Precedence: bulk", b"List-Id: <x>", b"Return-Path: <>",
        b"MIME-Version: 1.0", b"X-Intake-Status: accepted", b"References: <a@x> <b@x> garbage"]), max_size=3))
    return CRLF.join(headers) + CRLF + draw(part())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(message(), min_size=1, max_size=3))
def test_generated_mail_is_always_recorded(raws):
    with tempfile.TemporaryDirectory() as tmp:
        config = load_settings(write_config(Path(tmp)))
        store = Store(config.store.path, config.store.files)
        for raw in raws:
            with store.transaction():
                submission = process_message(raw, WHEN, store, config, WHEN)
            if submission is not None:
                # held: a From naming no single sender ("0; <hetang@…>") waits for an operator
                assert submission["status"] in ("accepted", "needs-correction", "rejected", "skipped",
                                                "withdrawn", "held", "needs-person")
                assert store.submissions.get(submission["message_id"]) is not None
        assert len(store.submissions.all()) >= 1
