"""RFC 3834: which messages never get an automatic reply."""
import email

import pytest

from outbox.manners import no_reply_reason
from pipeline.sample_mail import auto_reply, bounce

OWN = {"zzdztxhrj@163.com"}


def reason(raw: bytes, sender: str):
    return no_reply_reason(email.message_from_bytes(raw), sender, OWN)


def plain(headers: str) -> bytes:
    return f"From: hetang@example.cn\nTo: zzdztxhrj@163.com\nSubject: x\n{headers}\nbody\n".encode()


@pytest.mark.parametrize("headers, sender, expected", [
    ("", "hetang@example.cn", None),
    ("Auto-Submitted: no\n", "hetang@example.cn", None),
    ("Auto-Submitted: auto-replied\n", "hetang@example.cn", "auto-reply"),
    ("Auto-Submitted: auto-generated\n", "hetang@example.cn", "auto-reply"),
    ("X-Autoreply: yes\n", "hetang@example.cn", "auto-reply"),
    ("Precedence: bulk\n", "hetang@example.cn", "bulk"),
    ("Precedence: junk\n", "hetang@example.cn", "bulk"),
    ("Precedence: list\n", "hetang@example.cn", "list"),
    ("List-Id: <county.example.cn>\n", "hetang@example.cn", "list"),
    ("Return-Path: <>\n", "hetang@example.cn", "bounce"),
    ("", "MAILER-DAEMON@example.cn", "bounce"),
    ("", "postmaster@example.cn", "bounce"),
    ("", "noreply@example.cn", "bounce"),
    ("", "ZZDZTXHRJ@163.com", "own address"),
    ("X-Intake-Status: accepted\n", "hetang@example.cn", "own address"),
])
def test_who_gets_no_reply(headers, sender, expected):
    assert reason(plain(headers), sender.lower()) == expected


def test_generated_auto_reply_and_bounce_are_recognised():
    assert reason(auto_reply("hetang@example.cn", "zzdztxhrj@163.com"), "hetang@example.cn") == "auto-reply"
    assert reason(bounce("mx.example.cn", "zzdztxhrj@163.com", "x@example.cn"), "mailer-daemon@mx.example.cn") == "bounce"
