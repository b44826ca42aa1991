"""The receiving server's verdict (RFC 8601 Authentication-Results), read the way a forger
cannot bend: only the topmost header (or the topmost from our server), only each result's own
method=result, never a word inside a property value or a comment the sender chose."""
import email

import pytest

from parsers.auth_results import authentication_failures


def headers(*values: str) -> email.message.Message:
    """A message whose Authentication-Results headers are `values`, topmost first."""
    text = "".join(f"Authentication-Results: {v}\n" for v in values)
    return email.message_from_string(text + "From: hetang@example.cn\nSubject: x\n\nbody\n")


@pytest.mark.parametrize("value, failed", [
    # what 163 writes for a forged county address
    ("mx.163.com; spf=fail smtp.mailfrom=hetang@example.cn; dkim=none; dmarc=fail header.from=example.cn",
     ["dmarc=fail", "spf=fail"]),
    ("mx.163.com; spf=pass smtp.mailfrom=hetang@example.cn; dkim=pass header.d=example.cn; dmarc=pass", []),
    # a passing DKIM signature vouches for a message SPF could not (a forwarder)
    ("mx.163.com; spf=fail smtp.mailfrom=a@example.cn; dkim=pass header.d=example.cn; dmarc=pass", []),
    ("mx.163.com; spf=fail smtp.mailfrom=a@example.cn; dkim=fail header.d=example.cn", ["spf=fail"]),
    ("mx.163.com; spf=pass smtp.mailfrom=a@example.cn; dkim=fail; dmarc=fail", ["dmarc=fail"]),
    # softfail, neutral, none, temperror: not failures
    ("mx.163.com; spf=softfail smtp.mailfrom=a@example.cn; dkim=none; dmarc=none", []),
    ("mx.163.com; spf=neutral; dkim=temperror; dmarc=permerror", []),
    ("mx.163.com; none", []),
    # one of two signatures passing is enough
    ("mx.163.com; spf=fail; dkim=fail header.d=relay.example; dkim=pass header.d=example.cn", []),
    # case, comments and a version number
    ("MX.163.COM 1; SPF=FAIL (sender IP is 203.0.113.9) smtp.mailfrom=a@example.cn; DKIM=none (no signature);"
     " DMARC=fail (p=none dis=none)", ["dmarc=fail", "spf=fail"]),
    # folded over several lines, as servers write long headers
    ("mx.163.com;\n\tspf=fail smtp.mailfrom=a@example.cn;\n\tdkim=none;\n\tdmarc=fail", ["dmarc=fail", "spf=fail"]),
    # The sender chooses the envelope address and comment texts: words in them are not results.
    ('mx.163.com; spf=fail smtp.mailfrom=dkim=pass@evil.example; dkim=none; dmarc=none', ["spf=fail"]),
    ('mx.163.com; spf=fail smtp.mailfrom="x;dkim=pass"@evil.example; dkim=none', ["spf=fail"]),
    ('mx.163.com; spf=fail (dkim=pass) smtp.mailfrom=a@evil.example; dkim=none', ["spf=fail"]),
    ("mx.163.com; dkim=none header.s=dkim=pass; spf=fail", ["spf=fail"]),
])
def test_the_topmost_header_decides(value, failed):
    assert authentication_failures(headers(value)) == failed


def test_no_header_is_no_failure():
    assert authentication_failures(headers()) == []


TOP_PASS = "mx.163.com; spf=pass smtp.mailfrom=hetang@example.cn; dkim=pass; dmarc=pass"
FORGED_FAIL = "mx.163.com; spf=fail; dkim=none; dmarc=fail"
FORGED_PASS = "mx.163.com; spf=pass; dkim=pass; dmarc=pass"
RELAY_PASS = "relay.example.net; spf=pass; dkim=pass; dmarc=pass"


@pytest.mark.parametrize("values, authserv_id, failed", [
    # a sender writes headers below the one our server adds, never above it
    ((TOP_PASS, FORGED_FAIL), "", []),
    ((FORGED_FAIL, FORGED_PASS), "", ["dmarc=fail", "spf=fail"]),
    # with authserv_id, only our server's topmost header counts, whatever sits above it
    ((RELAY_PASS, FORGED_FAIL), "mx.163.com", ["dmarc=fail", "spf=fail"]),
    ((RELAY_PASS, FORGED_FAIL), "", []),
    ((TOP_PASS, FORGED_FAIL), "mx.163.com", []),
    ((RELAY_PASS,), "mx.163.com", []),          # nothing from our server: nothing to hold on
    ((FORGED_FAIL,), "MX.163.com", ["dmarc=fail", "spf=fail"]),   # the id is not case-sensitive
])
def test_which_header_is_trusted(values, authserv_id, failed):
    assert authentication_failures(headers(*values), authserv_id) == failed
