"""Raw email bytes as Chinese mail clients write them, read into sender, subject and files."""
import base64
from pathlib import Path

import pytest

from parsers.email_message import _fed, _well_formed, parse_email, sanitize_filename
from pipeline.sample_mail import foxmail_email

CORPORA = Path(__file__).resolve().parents[3] / "shared" / "corpora" / "mail-gem"


def test_gbk_characters_under_a_gb2312_label_survive():
    # 喆 is in GBK but not in GB2312: Foxmail still labels the text gb2312.
    with pytest.raises(UnicodeEncodeError):
        "喆".encode("gb2312")
    raw = foxmail_email("HeTang@Example.cn", "zzdztxhrj@163.com", "荷塘区推荐王喆",
                        [("荷塘区-王喆推荐表.docx", b"PK\x03\x04 not really a docx")])
    email = parse_email(raw)
    assert email.subject == "荷塘区推荐王喆"
    assert email.from_addr == "hetang@example.cn"
    assert [a.filename for a in email.attachments] == ["荷塘区-王喆推荐表.docx"]
    assert email.attachments[0].data == b"PK\x03\x04 not really a docx"
    assert email.text == "请查收附件，谢谢！"


def test_binary_attachments_keep_every_byte_whatever_the_transfer_encoding():
    payload = bytes(range(256)) * 4
    raw = (b"From: a@example.cn\r\nTo: b@example.cn\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=BB\r\n\r\n--BB\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
           b"--BB\r\nContent-Type: application/octet-stream; name=\"a.bin\"\r\n"
           b"Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"a.bin\"\r\n\r\n"
           + base64.encodebytes(payload) + b"--BB--\r\n")
    assert parse_email(raw).attachments[0].data == payload


def test_rfc2231_names_and_raw_8bit_names_decode():
    raw = ("From: a@example.cn\nSubject: t\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=BB\n\n"
           "--BB\nContent-Type: application/pdf\nContent-Disposition: attachment; "
           "filename*=utf-8''%E6%8E%A8%E8%8D%90%E8%A1%A8.pdf\n\n%PDF-1.4\n--BB--\n").encode()
    assert parse_email(raw).attachments[0].filename == "推荐表.pdf"
    raw8 = ("From: a@example.cn\nSubject: t\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=BB\n\n"
            "--BB\nContent-Type: application/pdf\nContent-Disposition: attachment; filename=\"").encode() \
        + "张三推荐表.pdf".encode("gbk") + b"\"\n\n%PDF-1.4\n--BB--\n"
    assert parse_email(raw8).attachments[0].filename == "张三推荐表.pdf"


@pytest.mark.parametrize("name, expected", [
    ("../../etc/passwd", "passwd"),
    ("C:\\Users\\clerk\\推荐表.docx", "推荐表.docx"),
    (".hidden.docx", "hidden.docx"),
    ("a\x00b\r\n.docx", "ab.docx"),
    ("", "附件"),
    ("长" * 300 + ".docx", "长" * 115 + ".docx"),
])
def test_attachment_names_are_never_paths(name, expected):
    assert sanitize_filename(name) == expected


def test_an_email_without_message_id_gets_a_stable_one():
    raw = b"From: a@example.cn\nSubject: hi\n\nbody\n"
    assert parse_email(raw).message_id == parse_email(raw).message_id
    assert parse_email(raw).message_id.endswith("@intake.invalid>")


def test_every_corpus_email_parses_without_an_exception():
    files = sorted(CORPORA.rglob("*.eml"))
    assert len(files) > 50, f"the shared corpora are expected at {CORPORA} (../shared beside the repo)"
    for path in files:
        email = parse_email(path.read_bytes())
        assert email.message_id.startswith("<"), path


def test_garbage_bytes_parse_to_an_empty_email():
    email = parse_email(b"\x00\xff\xfe garbage \x80\x81")
    assert email.from_addr == "" and email.attachments == []


def test_an_empty_nested_multipart_that_trips_mail_parser_still_parses():
    # Found by the hypothesis test: mail-parser raises on this; the standard library does not.
    raw = (b'From:  <hetang@example.cn>\r\nTo: zzdztxhrj@163.com\r\nSubject: \r\nMessage-ID: <fixed@x>\r\n'
           b'Content-Type: multipart/mixed; boundary="b10"\r\n\r\n--b10\r\n'
           b'Content-Type: multipart/mixed; boundary="b11"\r\n\r\n--b11--\r\n')
    email = parse_email(raw)
    assert email.from_addr == "hetang@example.cn" and email.message_id == "<fixed@x>"


def with_from(*values: str) -> bytes:
    return "".join(f"From: {v}\r\n" for v in values).encode() + b"To: x@163.com\r\nSubject: s\r\n\r\nbody\r\n"


def b_words(text: str) -> str:
    return f"=?utf-8?B?{base64.b64encode(text.encode()).decode()}?="


@pytest.mark.parametrize("values, doubt", [
    ((f"{b_words('荷塘区 <hetang@example.cn>,')} <evil@attacker.example>",), "another address"),
    ((f"{b_words('hetang＠example.cn')} <evil@attacker.example>",), "another address"),   # full-width @
    (("hetang@example.cn, evil@attacker.example",), "2 mailboxes"),
    (("hetang@example.cn", "evil@attacker.example"), "2 From headers"),
    ((f"{b_words('荷塘区 hetang@example.cn')} <HeTang@example.cn>",), ""),   # its own address: fine
    ((f"{b_words('荷塘区科工信局')} <hetang@example.cn>",), ""),
    (('"荷塘区, 科工信局" <hetang@example.cn>',), ""),                        # a quoted comma
])
def test_from_is_split_before_its_display_name_is_decoded(values, doubt):
    parsed = parse_email(with_from(*values))
    assert (parsed.from_doubt == "") == (doubt == "") and doubt in parsed.from_doubt
    assert parsed.from_addr in ("hetang@example.cn", "evil@attacker.example")
    if "<evil" in values[0]:   # the real address, whatever the name says
        assert parsed.from_addr == "evil@attacker.example"


def test_a_ten_megabyte_subject_is_cut_to_two_hundred_characters():
    raw = foxmail_email("hetang@example.cn", "x@163.com", "推荐表" + "很长的主题" * (2 << 20))
    parsed = parse_email(raw)
    assert len(parsed.subject) == 200 and parsed.subject.startswith("推荐表很长的主题")
    assert parsed.subject.endswith("…")


@pytest.mark.parametrize("raw, well_formed", [
    (foxmail_email("hetang@example.cn", "zzdztxhrj@163.com", "推荐表", [("推荐表.docx", b"PK\x03\x04")]), True),
    (b"From: a@example.cn\r\nContent-Type: multipart/mixed; boundary=BB\r\n\r\n--BB\r\n\r\nhi\r\n", False),  # never closed
    (b"From: a@example.cn\r\nContent-Type: multipart/mixed\r\n\r\nno boundary\r\n", False),
    (b"From: a@example.cn\r\nReferences: " + b"<a@x> " * 3000 + b"\r\n\r\nbody\r\n", False),  # a header cut short
])
def test_only_a_message_read_without_a_defect_skips_mail_parser(raw, well_formed):
    # Skipping mail-parser's parse is only safe where it could not change the message read.
    assert _well_formed(_fed(raw)) is well_formed
