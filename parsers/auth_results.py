"""The receiving server's verdict on the sender (RFC 8601 Authentication-Results)."""
from __future__ import annotations

import re
from email.message import Message

_RESULT = re.compile(r"\b(spf|dkim|dmarc)\s*=\s*([a-z]+)", re.IGNORECASE)


def authentication_failures(headers: Message, authserv_id: str = "") -> list[str]:
    """The failed checks ("dmarc=fail", "spf=fail") reported by the server that received the
    message: the topmost Authentication-Results header, or the topmost one from `authserv_id`
    when set (a sender can forge headers below those our server adds, never above them).

    Failing means DMARC failed, or SPF failed without a passing DKIM signature to vouch."""
    header = _trusted_header(headers, authserv_id)
    if header is None:
        return []
    results: dict[str, list[str]] = {}
    for method, result in _RESULT.findall(header):
        results.setdefault(method.lower(), []).append(result.lower())
    failed = []
    if "fail" in results.get("dmarc", []):
        failed.append("dmarc=fail")
    if "fail" in results.get("spf", []) and "pass" not in results.get("dkim", []):
        failed.append("spf=fail")
    return failed


def _trusted_header(headers: Message, authserv_id: str) -> str | None:
    try:
        values = [str(v) for v in headers.get_all("Authentication-Results") or []]
    except Exception:  # noqa: BLE001
        return None
    for value in values:
        server = value.split(";", 1)[0].strip().split()[0].lower() if value.strip() else ""
        if not authserv_id or server == authserv_id:
            return value
    return None
