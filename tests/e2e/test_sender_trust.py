"""A registered county address whose mail failed SPF/DMARC at the receiving server is held, not
accepted, until an operator confirms it with the county and runs `intake release`."""
import base64
import datetime as dt

import pytest

from pipeline import sample_mail, samples
from pipeline.demo import write_maildir
from tests.cli import exported, intake, maildir_replies
from tests.configs import MAILBOX, write_config

TZ = dt.timezone(dt.timedelta(hours=8))
JULY_20 = dt.datetime(2022, 7, 20, 10, 0, tzinfo=TZ)
FORGED = ("Authentication-Results: mx.163.com; spf=fail smtp.mailfrom=hetang@example.cn; "
          "dkim=none; dmarc=fail header.from=example.cn")
PASSED = ("Authentication-Results: mx.163.com; spf=pass smtp.mailfrom=hetang@example.cn; "
          "dkim=pass header.d=example.cn; dmarc=pass header.from=example.cn")
RELAY = "Authentication-Results: relay.example.net; spf=pass; dkim=pass; dmarc=pass"


def received(*headers: str, message_id: str, name: str = "张三") -> bytes:
    """A county's form as it sits in the mailbox: the receiving servers' headers on top,
    the last one to receive it topmost."""
    raw = sample_mail.foxmail_email("hetang@example.cn", MAILBOX, f"推荐表（{name}）",
                                    [(f"{name}推荐表.docx", samples.build_form_docx({"name": name}))],
                                    message_id=message_id)
    return "".join(h + "\n" for h in headers).encode() + raw


def deliver(config, *emails: bytes) -> None:
    write_maildir(config.parent / "inbox", [(raw, JULY_20 + dt.timedelta(minutes=i))
                                             for i, raw in enumerate(emails)])


def test_a_forged_county_address_is_held_until_released(tmp_path):
    config = write_config(tmp_path)
    deliver(config, received(FORGED, message_id="<forged@example.cn>"))
    result = intake(config, "poll", "--once")
    assert result.returncode == 0, result.stderr
    [sub] = exported(config)["submissions"]
    assert sub["status"] == "held" and "dmarc=fail" in sub["reason"] and "spf=fail" in sub["reason"]
    assert exported(config)["candidates"] == []
    assert maildir_replies(tmp_path / "sent") == []

    # The contact phoned the county: the email is theirs.
    result = intake(config, "release", "<forged@example.cn>")
    assert result.returncode == 0, result.stderr
    assert "<forged@example.cn>: accepted; replies sent 1" in result.stdout
    [reply] = maildir_replies(tmp_path / "sent")
    assert reply["To"] == "hetang@example.cn" and reply["X-Intake-Status"] == "accepted"
    assert reply["In-Reply-To"] == "<forged@example.cn>"
    export = exported(config)
    [sub] = export["submissions"]
    assert sub["status"] == "accepted"
    assert [c["name"] for c in export["candidates"]] == ["张三"]

    # Released once: a second release says so, a later poll changes nothing.
    again = intake(config, "release", "<forged@example.cn>")
    assert again.returncode == 1 and "no held message" in again.stderr
    assert intake(config, "poll", "--once").returncode == 0
    assert len(maildir_replies(tmp_path / "sent")) == 1


def test_a_forged_header_below_our_servers_does_not_hold(tmp_path):
    config = write_config(tmp_path)
    # The sender wrote a failing header into the message; 163 added its passing one on top.
    deliver(config, received(PASSED, FORGED, message_id="<ok@example.cn>"))
    assert intake(config, "poll", "--once").returncode == 0
    [sub] = exported(config)["submissions"]
    assert sub["status"] == "accepted"
    assert len(maildir_replies(tmp_path / "sent")) == 1


def test_authserv_id_picks_our_servers_header(tmp_path):
    (tmp_path / "trusted").mkdir()
    (tmp_path / "anyone").mkdir()
    trusted = write_config(tmp_path / "trusted", mailbox={
        "transport": "maildir", "path": str(tmp_path / "trusted" / "inbox"), "authserv_id": "mx.163.com"})
    anyone = write_config(tmp_path / "anyone")
    # A relay above 163 says pass; 163 itself said fail.
    for config in (trusted, anyone):
        deliver(config, received(RELAY, FORGED, message_id="<relay@example.cn>"))
        assert intake(config, "poll", "--once").returncode == 0
    assert exported(trusted)["submissions"][0]["status"] == "held"
    assert maildir_replies(tmp_path / "trusted" / "sent") == []
    assert exported(anyone)["submissions"][0]["status"] == "accepted"


def test_an_unregistered_sender_is_never_held(tmp_path):
    config = write_config(tmp_path)
    raw = received(FORGED, message_id="<stranger@example.cn>").replace(b"hetang@example.cn", b"stranger@example.com")
    deliver(config, raw)
    assert intake(config, "poll", "--once").returncode == 0
    [sub] = exported(config)["submissions"]
    assert sub["status"] == "rejected" and sub["problems"] == ["unknown-sender"]


def b_words(text: str) -> str:
    return f"=?utf-8?B?{base64.b64encode(text.encode()).decode()}?="


def from_header(raw: bytes, value: str) -> bytes:
    head, sep, body = raw.partition(b"\n\n")
    lines = [line for line in head.split(b"\n") if not line.startswith(b"From:")]
    return b"\n".join([f"From: {value}".encode(), *lines]) + sep + body


SPOOFED_FROMS = {
    # A display name that decodes to the county's address: the real sender is the attacker.
    "encoded-name-with-address": f"{b_words('荷塘区 <hetang@example.cn>')} <evil@attacker.example>",
    "encoded-name-with-comma": f"{b_words('荷塘区 <hetang@example.cn>,')} <evil@attacker.example>",
    "two-mailboxes": "hetang@example.cn, evil@attacker.example",
}


@pytest.mark.parametrize("value", SPOOFED_FROMS.values(), ids=SPOOFED_FROMS.keys())
def test_a_from_naming_a_county_it_is_not_from_is_held(tmp_path, value):
    config = write_config(tmp_path)
    withdraw = sample_mail.foxmail_email("hetang@example.cn", MAILBOX, "撤回 张三",
                                         message_id="<withdraw@attacker.example>")
    deliver(config, received(PASSED, message_id="<real@example.cn>"),
            from_header(received(PASSED, message_id="<spoof@attacker.example>", name="李四"), value),
            from_header(PASSED.encode() + b"\n" + withdraw, value))
    assert intake(config, "poll", "--once").returncode == 0
    export = exported(config)
    assert [(s["status"], s["county"]) for s in export["submissions"]] == [
        ("accepted", "荷塘区"), ("held", None), ("held", None)]
    assert all(s["reason"].startswith("sender unclear") for s in export["submissions"][1:])
    assert [(c["name"], c["status"]) for c in export["candidates"]] == [("张三", "accepted")]
    assert [r["In-Reply-To"] for r in maildir_replies(tmp_path / "sent")] == ["<real@example.cn>"]


def test_a_county_with_an_encoded_display_name_is_its_county(tmp_path):
    config = write_config(tmp_path)
    deliver(config, from_header(received(PASSED, message_id="<named@example.cn>"),
                                f"{b_words('荷塘区科工信局 hetang@example.cn')} <hetang@example.cn>"),
            from_header(received(PASSED, message_id="<gb@example.cn>", name="李四"),
                        f"{sample_mail.gb_words('荷塘区科工信局')} <HeTang@example.cn>"))
    assert intake(config, "poll", "--once").returncode == 0
    export = exported(config)
    assert [(s["status"], s["county"]) for s in export["submissions"]] == [("accepted", "荷塘区")] * 2
    assert sorted(c["name"] for c in export["candidates"]) == ["张三", "李四"]
    assert [r["To"] for r in maildir_replies(tmp_path / "sent")] == ["hetang@example.cn"] * 2
