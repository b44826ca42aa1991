"""The outbox as an operator sees it: `intake poll --once` passes against an SMTP server that
refuses, throttles or is down, and `intake outbox [--retry]` listing what waits or failed.

The retry base is a fraction of a second in these configurations, so a later pass is a short
sleep away; everything else is the shipped behaviour."""
import datetime as dt
import os
import time
from collections import Counter

import pytest

from pipeline import sample_mail, samples
from tests.cli import intake
from tests.configs import MAILBOX, write_config

TZ = dt.timezone(dt.timedelta(hours=8))
JULY = dt.datetime(2022, 7, 20, 10, 0, tzinfo=TZ)
BACKOFF = 0.3  # seconds: retry_base_seconds in these configs
WIDE = {"COLUMNS": "200"}  # rich tables: one line per reply


@pytest.fixture
def setup(tmp_path, smtp_server):
    return make_setup(tmp_path, smtp_server)


def make_setup(tmp_path, smtp_server, **smtp_keys):
    config = write_config(tmp_path, smtp={
        "transport": "smtp", "host": "127.0.0.1", "port": smtp_server.port, "security": "none",
        "username": "intake@example.cn", "password_env": "SMTP_PW", "from_address": MAILBOX,
        "timeout": 5, "retry_base_seconds": BACKOFF, "retry_max_seconds": 1, **smtp_keys})
    env = {"SMTP_PW": "smtp-secret", **WIDE}

    class Setup:
        def county_sends(self, sender: str, name: str, message_id: str) -> None:
            form = {**samples.SAMPLE_CANDIDATE, "name": name}
            raw = sample_mail.foxmail_email(sender, MAILBOX, f"{name}推荐表",
                                            [(f"{name}推荐表.docx", samples.build_form_docx(form))],
                                            message_id=message_id)
            inbox = tmp_path / "inbox"
            for sub in ("tmp", "new", "cur"):
                (inbox / sub).mkdir(parents=True, exist_ok=True)
            target = inbox / "new" / f"{message_id.strip('<>')}.eml"
            target.write_bytes(raw)
            os.utime(target, (JULY.timestamp(), JULY.timestamp()))

        def poll(self):
            result = intake(config, "poll", "--once", env=env)
            assert result.returncode == 0, result.stderr
            return result

        def outbox(self, *args: str):
            result = intake(config, "outbox", *args, env=env)
            assert result.returncode == 0, result.stderr
            return result.stdout

        def digest_text(self) -> str:
            result = intake(config, "digest", "--dry-run", env=env)
            assert result.returncode == 0, result.stderr
            return result.stdout

    return Setup()


def row_of(table: str, needle: str) -> str:
    [line] = [l for l in table.splitlines() if needle in l]
    return line


def deliveries_per_reply(server) -> Counter:
    return Counter(m.message["In-Reply-To"] for m in server.messages)


def test_421_twice_then_accepted_goes_out_once_over_passes(setup, smtp_server):
    setup.county_sends("hetang@example.cn", "张三", "<ht-1@example.cn>")
    smtp_server.respond_with(["421 4.7.0 HL:ICC", "421 4.7.0 HL:ICC"])

    first = setup.poll()
    assert "replies sent 0" in first.stdout and "waiting 1" in first.stdout
    assert "slow down" in first.stderr and "HL:ICC" in first.stderr
    row = row_of(setup.outbox(), "hetang@example.cn")
    assert "pending" in row and "421 4.7.0 HL:ICC" in row and "【已受理】荷塘区 张三" in row

    for _ in range(6):
        time.sleep(BACKOFF * 2 + 0.1)
        setup.poll()
        if smtp_server.messages:
            break
    assert [a.reply.split()[0] for a in smtp_server.attempts] == ["421", "421", "250"]
    for _ in range(2):
        time.sleep(BACKOFF)
        setup.poll()
    assert deliveries_per_reply(smtp_server) == {"<ht-1@example.cn>": 1}
    row = row_of(setup.outbox(), "hetang@example.cn")
    assert "sent" in row and "3" in row.split("│")[4]


def test_554_is_failed_listed_and_not_retried_until_the_operator_says_so(setup, smtp_server):
    setup.county_sends("lusong@example.cn", "李四", "<ls-1@example.cn>")
    smtp_server.respond_with(["554 5.7.1 testmail rejected: content not allowed"])
    assert "failed 1" in setup.poll().stdout
    for _ in range(2):
        time.sleep(BACKOFF * 2)
        setup.poll()
    assert len(smtp_server.attempts) == 1 and smtp_server.messages == []
    row = row_of(setup.outbox(), "lusong@example.cn")
    assert "failed" in row and "554 5.7.1" in row and "—" not in row  # when it failed

    listing = setup.outbox("--retry")
    assert "re-queued 1 failed" in listing
    assert "pending" in row_of(listing, "lusong@example.cn")
    setup.poll()
    setup.poll()
    assert deliveries_per_reply(smtp_server) == {"<ls-1@example.cn>": 1}


def test_a_spam_refusal_is_retried_then_given_up_and_told_to_the_contact(tmp_path, smtp_server):
    """163's 554 DT:SPM is not final: the reply waits and goes again; only past the give-up
    window (here 2 seconds, 24 hours by default) is it failed, in `intake outbox` and the digest."""
    setup = make_setup(tmp_path, smtp_server, spam_retry_seconds=0.2, retry_give_up_hours=0.001)
    setup.county_sends("lusong@example.cn", "李四", "<ls-2@example.cn>")
    smtp_server.respond_with(["554 DT:SPM 163 smtp14: Mail rejected as spam"] * 50)
    assert "failed 0, waiting 1" in setup.poll().stdout
    assert "pending" in row_of(setup.outbox(), "lusong@example.cn")
    deadline = time.monotonic() + 60
    while "failed" not in row_of(setup.outbox(), "lusong@example.cn"):
        assert time.monotonic() < deadline
        time.sleep(0.3)
        setup.poll()
    assert len(smtp_server.attempts) >= 2   # sent again before it was given up
    row = row_of(setup.outbox(), "lusong@example.cn")
    assert "failed" in row and "gave up after" in row and "DT:SPM" in row
    assert "lusong@example.cn" in setup.digest_text().split("七、未能送达的邮件")[1]
    assert smtp_server.messages == []


def test_smtp_down_during_a_poll_the_replies_go_out_on_a_later_pass(setup, smtp_server):
    setup.county_sends("hetang@example.cn", "张三", "<ht-2@example.cn>")
    setup.county_sends("shifeng@example.cn", "王五", "<sf-1@example.cn>")
    smtp_server.stop()
    down = setup.poll()
    assert "recorded" in down.stdout and "waiting 2" in down.stdout
    assert "replies not sent yet" in down.stderr and "unreachable" in down.stderr
    assert all("unreachable" in row_of(setup.outbox(), addr)
               for addr in ("hetang@example.cn", "shifeng@example.cn"))

    smtp_server.start()
    time.sleep(BACKOFF + 0.1)
    setup.poll()
    smtp_server.wait_for(2)
    for _ in range(3):
        time.sleep(BACKOFF)
        setup.poll()
    assert deliveries_per_reply(smtp_server) == {"<ht-2@example.cn>": 1, "<sf-1@example.cn>": 1}


def test_outbox_help_ends_with_an_example(setup):
    assert "Example: intake outbox --retry" in setup.outbox("--help")
