"""The receiving server's verdict on the sender (RFC 8601 Authentication-Results)."""
from __future__ import annotations

import re
from email.message import Message

# Each result is "method[/version]=result" at the start of its ";"-separated resinfo; words
# further on are properties (smtp.mailfrom=, header.d=) whose values the sender chooses.
_METHOD_RESULT = re.compile(r"\s*([a-z0-9_-]+)(?:\s*/\s*\d+)?\s*=\s*([a-z]+)", re.IGNORECASE)
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')
_COMMENT = re.compile(r"\((?:[^()\\]|\\.)*\)")


def authentication_failures(headers: Message, authserv_id: str = "") -> list[str]:
    """The failed checks ("dmarc=fail", "spf=fail") reported by the server that received the
    message: the topmost Authentication-Results header, or the topmost one from `authserv_id`
    when set (a sender can forge headers below those our server adds, never above them).

    Failing means DMARC failed, or SPF failed without a passing DKIM signature to vouch."""
    results: dict[str, list[str]] = {}
    for resinfo in _trusted_resinfos(headers, authserv_id):
        match = _METHOD_RESULT.match(resinfo)
        if match:
            results.setdefault(match.group(1).lower(), []).append(match.group(2).lower())
    failed = []
    if "fail" in results.get("dmarc", []):
        failed.append("dmarc=fail")
    if "fail" in results.get("spf", []) and "pass" not in results.get("dkim", []):
        failed.append("spf=fail")
    return failed


def _trusted_resinfos(headers: Message, authserv_id: str) -> list[str]:
    try:
        values = [str(v) for v in headers.get_all("Authentication-Results") or []]
    except Exception:  # noqa: BLE001
        return []
    for value in values:
        chunks = _without_quotes_and_comments(value).split(";")
        server = (chunks[0].split() or [""])[0].lower()
        if not authserv_id or server == authserv_id.strip().lower():
            return chunks[1:]
    return []


def _without_quotes_and_comments(value: str) -> str:
    """Quoted strings (a quoted envelope address may hold ";" or "dkim=pass") and comments,
    innermost first, left out."""
    value = _QUOTED.sub('""', value)
    while True:
        shorter = _COMMENT.sub(" ", value)
        if shorter == value:
            return value
        value = shorter
