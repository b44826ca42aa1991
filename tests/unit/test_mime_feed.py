"""parsers/mime_feed.py reads every email into the very tree the standard library's parser
builds: the same parts, headers, payloads, preambles, epilogues and defects."""
import email
import email.message
from pathlib import Path

import pytest

from bench.county_mail import county_email
from parsers.mime_feed import MimeFeedParser

SHARED = Path(__file__).resolve().parents[3] / "shared" / "corpora"


def _tree(msg: email.message.Message) -> list:
    out = []
    for part in msg.walk():
        payload = part.get_payload()
        out.append((part.get_unixfrom(), [(k, str(v)) for k, v in part.raw_items()],
                    [type(d).__name__ for d in part.defects], part.preamble, part.epilogue,
                    payload if isinstance(payload, str) else len(payload)))
    return out


def _ours(raw: bytes, chunk: int = 1 << 16) -> email.message.Message:
    parser = MimeFeedParser()
    for start in range(0, len(raw), chunk):
        parser.feed(raw[start:start + chunk])
    return parser.close()


def _same_tree(raw: bytes, chunk: int = 1 << 16) -> None:
    assert _tree(_ours(raw, chunk)) == _tree(email.message_from_bytes(raw))


def test_every_corpus_email_gives_the_standard_librarys_tree():
    files = sorted(SHARED.rglob("*.eml"))
    assert len(files) > 50, f"the shared corpora are expected at {SHARED} (../shared beside the repo)"
    for path in files:
        _same_tree(path.read_bytes())


def test_a_county_email_gives_the_same_tree_fed_in_any_chunks():
    raw, _ = county_email(0)
    for chunk in (1, 7, 76, 1 << 16):
        _same_tree(raw, chunk)


BOUNDARIES = ["BB", "a.b+c*d?(e)[f]{g}|h^i$j\\k", "--dash--", "=_Part_0_=", "x y"]


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"])
def test_hostile_multiparts_give_the_same_tree(boundary, eol):
    b = boundary.encode()
    quoted = b'"' + b + b'"'
    lines = [
        b"From: a@example.cn", b"Subject: x", b"MIME-Version: 1.0",
        b"Content-Type: multipart/mixed; boundary=" + quoted, b"",
        b"preamble line", b"--" + b + b"  ", b"Content-Type: text/plain", b"",
        b"-- not a boundary", b"--" + b + b"x-not-either", b"body",
        b"--" + b, b"Content-Type: multipart/alternative; boundary=\"inner\"", b"",
        b"--inner", b"Content-Type: text/html", b"", b"<p>hi</p>", b"",
        b"--" + b,  # the outer boundary closes the inner multipart early
        b"Content-Type: message/delivery-status", b"",
        b"Reporting-MTA: dns; example.cn", b"", b"Action: failed", b"",
        b"--" + b, b"Content-Type: message/rfc822", b"",
        b"Subject: inner", b"", b"inner body",
        b"--" + b + b"--", b"epilogue", b"",
    ]
    raw = eol.join(lines)
    _same_tree(raw)
    _same_tree(raw, 5)
    _same_tree(raw.rsplit(b"--" + b + b"--", 1)[0])   # no closing boundary


def test_the_boundary_match_is_the_standard_librarys():
    import re

    from parsers.mime_feed import _compile
    for boundary in BOUNDARIES + ["\n", "é", "\\"]:
        separator = "--" + boundary
        pattern = ("(?P<sep>" + re.escape(separator)
                   + r")(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$")
        ours, theirs = _compile(pattern), re.compile(pattern)
        assert not isinstance(ours, re.Pattern)   # the fast path is taken
        for line in [separator, separator + "\n", separator + "--\r\n", separator + " \t\r",
                     separator + "x\n", separator[:-1], "", "-", separator + "--  \n\n"]:
            mine, std = ours.match(line), theirs.match(line)
            assert (mine is None) == (std is None), (boundary, line)
            if std:
                assert [mine.group(g) for g in ("end", "ws", "linesep")] == \
                       [std.group(g) for g in ("end", "ws", "linesep")]
                assert mine.end() == std.end() and mine.end("linesep") == std.end("linesep")
