"""Raw email bytes → ParsedEmail: headers, sender, threading ids and attachments.

The standard library reads the structure (mail-parser's parse still runs on the messages it
found a defect in, see _structure); attachment bytes come from each part's own
`get_payload(decode=True)`, because mail-parser's `payload` corrupts binaries that were not
sent base64. Chinese mail clients label GBK text "gb2312": those labels are read as gb18030,
a superset, so characters outside gb2312 survive.
"""
from __future__ import annotations

import binascii
import email
import email.header
import email.parser
import email.utils
import hashlib
import itertools
import quopri
import re
import unicodedata
from email.message import Message

import logging

import mailparser

# mail-parser logs every part type it does not render; that is noise for an operator.
logging.getLogger("mailparser").setLevel(logging.ERROR)
from parsers.mime_feed import MimeFeedParser
from parsers.records import Attachment, ParsedEmail

# Charsets whose labels understate what clients really send.
_CHARSET_ALIASES = {"gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "cp936": "gb18030",
                    "gb_2312-80": "gb18030", "euc-cn": "gb18030", "ks_c_5601-1987": "cp949"}
_MAX_NAME = 120
MAX_DEPTH = 50   # MIME levels kept: forwards inside forwards nest a few, hostile mail thousands
MAX_PARTS = 500  # parts read: a county attaches a handful; each one read is a file stored
_MSGID = re.compile(r"<[^<>\s]{1,250}>")   # longer ones are not ids a mail client wrote
MAX_HEADER_TEXT = 200    # characters of a subject kept, for the store, replies and the digest
MAX_REFERENCES = 20      # ids of References kept (the newest), for threading and our reply
_RAW_HEADER_CHARS = 8 * MAX_HEADER_TEXT   # what is decoded of a subject, From or an id
MAX_RAW_HEADER = 16 << 10   # what is kept of any header (a long References stays whole)


def parse_email(raw: bytes) -> ParsedEmail:
    """Parse any bytes into a ParsedEmail; garbage gives empty fields, never an exception."""
    msg = _structure(raw)
    leaves = _leaves(msg)
    from_name, from_addr, from_doubt = sender(msg)
    message_id = _first_msgid(header_text(msg, "Message-ID", _RAW_HEADER_CHARS))
    return ParsedEmail(
        message_id=message_id or synthetic_message_id(raw),
        from_addr=from_addr,
        from_name=from_name,
        from_doubt=from_doubt,
        to=[addr.lower() for _, addr in email.utils.getaddresses([header_text(msg, "To")]) if addr],
        subject=shortened(_one_line(header_text(msg, "Subject", _RAW_HEADER_CHARS))),
        in_reply_to=_first_msgid(header_text(msg, "In-Reply-To", _RAW_HEADER_CHARS)),
        references=_references(header_text(msg, "References")),
        content_type=msg.get_content_type(),
        headers=msg,
        attachments=list(_attachments(leaves)),
        text=_body_text(leaves),
        html=_body_text(leaves, "text/html"),
        cloud_links=cloud_links(leaves),
    )


def _structure(raw: bytes) -> Message:
    """The standard library's parse of the message. Unless it is well-formed (see
    _well_formed: then mail-parser's parse, ~1.5 ms an email, would change nothing),
    mail-parser's full parse runs on that tree, and where mail-parser fails on it (it does on
    some empty nested multiparts), the standard library's parse of the same bytes is read.
    Nesting deeper than MAX_DEPTH is cut off, so no later walk of the tree can recurse too deep."""
    try:
        msg = _fed(raw)
        if not _well_formed(msg):
            msg = mailparser.MailParser(_short_headers(msg)).message
    except Exception:  # noqa: BLE001
        try:
            msg = email.message_from_bytes(raw)
        except RecursionError:  # nested deeper than the parser's stack: the headers alone
            msg = email.parser.BytesParser().parsebytes(raw, headersonly=True)
            msg.set_payload("")
    _cut_nesting(msg)
    return msg


def _well_formed(msg: Message) -> bool:
    """True when the standard library read every part without a defect, nested less than
    MAX_DEPTH levels, and no header is long enough for _short_headers to cut. mail-parser's
    parse of such a tree changes nothing in it, and were it to fail, the fallback would parse
    the same bytes into the same tree: running it would give the same message."""
    if any(isinstance(value, str) and len(value) > MAX_RAW_HEADER for _, value in msg.raw_items()):
        return False
    stack = [(msg, 0)]
    while stack:
        part, depth = stack.pop()
        if part.defects or depth >= MAX_DEPTH:
            return False
        if part.is_multipart():
            stack.extend((child, depth + 1) for child in part.get_payload())
    return True


def _fed(raw: bytes, chunk: int = 1 << 16) -> Message:
    """The standard library's parse, fed in chunks: message_from_bytes would copy the whole
    message into a StringIO (4 bytes a character), so a 35 MB email peaked at 265 MB; fed,
    at 95 MB. The same tree either way (parsers/mime_feed.py: the standard library's parser,
    less three costs it pays on every multipart email)."""
    parser = MimeFeedParser()
    view = memoryview(raw)
    for start in range(0, len(raw), chunk):
        parser.feed(bytes(view[start:start + chunk]))
    return parser.close()


def _short_headers(msg: Message) -> Message:
    """The message with each of its own headers cut to MAX_RAW_HEADER characters: mail-parser
    decodes every header whole (10 s for a 10 MB subject), and intake reads only their start."""
    msg._headers = [(name, value[:MAX_RAW_HEADER] if isinstance(value, str) else value)
                    for name, value in msg._headers]   # compat32's own list, kept in order
    return msg


def _cut_nesting(msg: Message) -> None:
    """Empty every multipart nested MAX_DEPTH levels down (real mail nests a handful)."""
    stack = [(msg, 0)]
    while stack:
        part, depth = stack.pop()
        if not part.is_multipart():
            continue
        if depth >= MAX_DEPTH:
            part.set_payload([])
        else:
            stack.extend((child, depth + 1) for child in part.get_payload())


def synthetic_message_id(raw: bytes) -> str:
    """A stable id for an email without Message-ID: the same bytes give the same id."""
    return f"<{hashlib.sha256(raw).hexdigest()[:32]}@intake.invalid>"


def decode_words(value: str) -> str:
    """Decode RFC 2047 encoded words (and raw 8-bit bytes) with the charset aliases above."""
    value = _undo_surrogates(value)
    if "=?" not in value:
        return value
    try:
        chunks = email.header.decode_header(value)
    except (ValueError, LookupError, AssertionError):
        return value
    out = []
    for chunk, charset in chunks:
        if isinstance(chunk, str):
            out.append(chunk)
        else:
            out.append(_decode_bytes(chunk, charset))
    return "".join(out)


def header_text(msg: Message, name: str, raw_limit: int | None = None) -> str:
    """One header as readable text, "" when absent or undecodable; of a hostile 10 MB header
    only the first `raw_limit` characters are decoded."""
    try:
        values = msg.get_all(name) or []
    except Exception:  # noqa: BLE001 — malformed headers must not stop the pass
        return ""
    if not values:
        return ""
    value = values[0]
    if raw_limit is not None and not isinstance(value, email.header.Header) and len(value) > raw_limit:
        return _decoded_start(_undo_surrogates(value[:raw_limit]), raw_limit).strip()
    return header_value_text(value).strip()


_OPEN_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)$")


def _decoded_start(value: str, limit: int) -> str:
    """The text of a header's first `limit` characters: an encoded word cut open there (a
    hostile client writes one 10 MB word) is decoded up to its last whole character."""
    cut = value[:limit]
    word = _OPEN_WORD.search(cut)
    if word is None:
        return decode_words(cut)
    charset, encoding, text = word.groups()
    try:
        if encoding in "bB":
            data = binascii.a2b_base64(text[:len(text) // 4 * 4])
        else:
            data = quopri.decodestring(re.sub(r"=[0-9A-Fa-f]?$", "", text).replace("_", " ").encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        data = b""
    return decode_words(cut[:word.start()]) + _whole_characters(data, charset)


def _whole_characters(data: bytes, charset: str) -> str:
    """`data` decoded, less a character cut in two at its end."""
    charset = _CHARSET_ALIASES.get(charset.lower(), charset.lower())
    for drop in range(4):
        try:
            return data[:len(data) - drop].decode(charset)
        except (LookupError, UnicodeDecodeError):
            continue
    return _decode_bytes(data, charset)


def shortened(text: str, limit: int = MAX_HEADER_TEXT) -> str:
    """`text` cut to `limit` characters, an ellipsis saying so."""
    return text if len(text) <= limit else text[:limit - 1] + "…"


def header_value_text(value) -> str:
    """A header value as text. compat32 hands raw 8-bit headers over as Header objects
    labelled unknown-8bit: those bytes are read as UTF-8, else GBK."""
    if isinstance(value, email.header.Header):
        try:
            chunks = email.header.decode_header(value)
        except Exception:  # noqa: BLE001
            return str(value)
        return "".join(c if isinstance(c, str) else _decode_bytes(c, None if cs == "unknown-8bit" else cs)
                       for c, cs in chunks)
    return decode_words(str(value))


def decode_filename(part: Message) -> str:
    """The attachment's name as the sender saw it, from Content-Disposition or Content-Type."""
    for param, header in (("filename", "content-disposition"), ("name", "content-type")):
        value = _raw_param(part, param, header)
        if value is None:
            continue
        if isinstance(value, tuple):  # RFC 2231: (charset, language, text)
            charset, _, text = value
            name = _decode_bytes(text.encode("raw-unicode-escape"), charset or "utf-8")
        else:
            name = decode_words(email.utils.unquote(str(value)))
        if name.strip():
            return name
    return ""


def _raw_param(part: Message, param: str, header: str):
    """A header parameter read from the raw header, so 8-bit names (UTF-8 or GBK written
    straight into the header by some clients) decode instead of turning into U+FFFD."""
    raw = next((v for k, v in part.raw_items() if k.lower() == header), None)
    if raw is None:
        return None
    holder = Message()
    try:
        holder[header] = _undo_surrogates(str(raw))
        return holder.get_param(param, header=header)
    except Exception:  # noqa: BLE001
        return None


def sanitize_filename(name: str, fallback: str = "附件") -> str:
    """A display name safe to show and store: no directories, control characters or dot-files."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable() and ch not in '<>:"|?*')
    name = name.strip().lstrip(".").strip()
    if len(name) > _MAX_NAME:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: _MAX_NAME - len(ext) - 1] + dot + ext) if dot and len(ext) <= 10 else name[:_MAX_NAME]
    return name or fallback


def _attachments(leaves: list[tuple[Message, bool]]):
    count = 0
    for part, attached in leaves:
        if not attached:
            continue
        try:
            data = _payload_bytes(part)
        except Exception:  # noqa: BLE001
            data = None
        if data is None:
            data = b""
        count += 1
        name = sanitize_filename(decode_filename(part), fallback=f"附件{count}")
        yield Attachment(filename=name, content_type=part.get_content_type(), data=data)


def _payload_bytes(part: Message) -> bytes | None:
    """get_payload(decode=True), less its copies of a base64 part: the standard library
    re-encodes the text, splits it into lines and joins them again before decoding, about
    120 MB of passing copies for a 25 MB attachment. Damaged base64 goes to it as before."""
    payload = part.get_payload()
    if (isinstance(payload, str) and payload.isascii()
            and str(part.get("Content-Transfer-Encoding", "")).strip().lower() == "base64"):
        try:
            return binascii.a2b_base64(payload)
        except binascii.Error:
            pass
    return part.get_payload(decode=True)


def _leaves(msg: Message) -> list[tuple[Message, bool]]:
    """The leaf parts, each with whether it is an attachment: worked out once (~40 µs a part),
    for the attachments, both bodies and the cloud links."""
    return [(part, _is_attachment(part)) for part in _leaf_parts(msg)]


def _leaf_parts(msg: Message):
    """The first MAX_PARTS parts that are not containers, in order."""
    try:
        leaves = (part for part in msg.walk() if not part.is_multipart())
        yield from itertools.islice(leaves, MAX_PARTS)
    except Exception:  # noqa: BLE001 — recursion on hostile nesting ends the walk, not the pass
        return


def _is_attachment(part: Message) -> bool:
    disposition = header_value_text(part.get("Content-Disposition") or "").split(";")[0].strip().lower()
    if disposition == "attachment":
        return True
    if decode_filename(part):
        return True
    maintype = part.get_content_maintype()
    # Unnamed documents and images still count, unless they are inline pictures of an HTML body.
    return maintype in ("application", "image") and not part.get("Content-ID")


def _body_text(leaves: list[tuple[Message, bool]], content_type: str = "text/plain") -> str:
    for part, attached in leaves:
        if part.get_content_type() == content_type and not attached:
            try:
                data = part.get_payload(decode=True) or b""
            except Exception:  # noqa: BLE001
                continue
            return _decode_bytes(data, part.get_content_charset() or "utf-8")
    return ""


# Webmail "超大附件" / 文件中转站: the file stays on the provider's server behind a link that
# expires and needs a browser; intake cannot fetch it (and has no network besides the mailbox).
_URL = re.compile(r"https?://[^\s\"'<>]+", re.I)
_CLOUD = re.compile(
    r"^https?://(?:[\w-]+\.)*(?:163\.com|126\.com|yeah\.net|qq\.com)/\S*"
    r"(?:large-attachment|cloud-attachment|bigattach|ftnExs|\bftn/|ftn_handler)", re.I)


def cloud_links(leaves: list[tuple[Message, bool]]) -> list[str]:
    """Links to files left on 163/126/QQ mail's cloud storage instead of being attached."""
    found: list[str] = []
    for part, attached in leaves:
        if part.get_content_maintype() != "text" or attached:
            continue
        try:
            data = part.get_payload(decode=True) or b""
        except Exception:  # noqa: BLE001
            continue
        text = _decode_bytes(data, part.get_content_charset()).replace("&amp;", "&")
        found += [url for url in _URL.findall(text) if _CLOUD.match(url)]
    return list(dict.fromkeys(found))


def _decode_bytes(data: bytes, charset: str | None) -> str:
    charset = (charset or "utf-8").strip().lower()
    charset = _CHARSET_ALIASES.get(charset, charset)
    for candidate in (charset, "utf-8", "gb18030"):
        try:
            return data.decode(candidate)
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("utf-8", errors="replace")


_SURROGATE = re.compile("[\udc80-\udcff]")


def _undo_surrogates(value: str) -> str:
    """Headers with raw 8-bit bytes arrive as surrogate escapes: decode them as UTF-8 or GBK."""
    if value.isascii() or not _SURROGATE.search(value):
        return value
    data = value.encode("utf-8", errors="surrogateescape")
    return _decode_bytes(data, "utf-8")


def sender(msg: Message) -> tuple[str, str, str]:
    """(display name, address, doubt) of the From header, parsed as RFC 5322 says: the address
    is split out of the raw header first, and encoded words only ever decode the display name —
    a name decoding to "荷塘区 <hetang@…>," creates no address. `doubt` is "" for one plain
    mailbox, else why the header names no single sender (several mailboxes or From headers,
    another address in the display name): such mail is no county's."""
    try:
        values = [_undo_surrogates(str(v)[:_RAW_HEADER_CHARS]) for v in msg.get_all("From") or []]
        pairs = [(n, a) for n, a in email.utils.getaddresses(values) if n.strip() or a.strip()]
    except Exception:  # noqa: BLE001 — an unparseable From names nobody
        return "", "", ""
    mailboxes = [(shortened(decode_words(n).strip()), a.strip().lower())
                 for n, a in pairs if "@" in a and len(a.strip()) <= 254]
    if not mailboxes:
        return "", "", ""
    name, addr = mailboxes[0]
    if len(values) > 1:
        return name, addr, f"{len(values)} From headers"
    if len(pairs) > 1:
        return name, addr, f"the From header names {len(pairs)} mailboxes"
    if any(found.lower() != addr for found in _ADDRESS.findall(unicodedata.normalize("NFKC", name))):
        return name, addr, "the From display name carries another address"
    return name, addr, ""


_ADDRESS = re.compile(r"[^\s<>()\[\],;:\"@]+@[^\s<>()\[\],;:\"@]+")


def _first_msgid(value: str) -> str:
    match = _MSGID.search(value or "")
    return match.group(0) if match else ""


def _references(value: str) -> list[str]:
    """The newest MAX_REFERENCES ids, which are what threads a reply."""
    return _MSGID.findall(value)[-MAX_REFERENCES:]


def _one_line(value: str) -> str:
    return " ".join(value.split())
