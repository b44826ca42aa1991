"""Nothing stuck, nothing lost: a message whose processing fails is recorded with the error, left
in the mailbox, retried after its backoff, set aside after three attempts, listed by
`intake failed` and answered after `intake reprocess`; a crash in the middle of a message is
counted against it and retried at once."""
import datetime as dt
import os
import threading

import pytest

from parsers import sandbox
from pipeline import failures, poll, sample_mail, samples
from pipeline.demo import write_maildir
from pipeline.settings import load_settings
from store.repository import Store
from tests.cli import intake, maildir_replies
from tests.configs import MAILBOX, write_config

TZ = dt.timezone(dt.timedelta(hours=8))
JULY_20 = dt.datetime(2022, 7, 20, 10, 0, tzinfo=TZ)
T0 = dt.datetime(2022, 7, 20, 3, 0, tzinfo=dt.timezone.utc)
WIDE = {"COLUMNS": "250"}   # rich tables in a pipe: wide enough not to wrap a Message-ID


class Clock:
    def __init__(self, now: dt.datetime):
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta) -> None:
        self.now += dt.timedelta(**delta)


def form_email(sender: str, name: str, message_id: str) -> bytes:
    return sample_mail.foxmail_email(sender, MAILBOX, f"推荐表（{name}）",
                                     [(f"{name}推荐表.docx", samples.build_form_docx({"name": name}))],
                                     message_id=message_id)


@pytest.fixture
def broken(monkeypatch):
    """process_message raising for messages whose bytes hold `marker` (a bug, a full disk);
    `calls` counts the attempts at those."""
    real = poll.process_message

    class Broken:
        marker = b"<bad@example.cn>"
        calls = 0

        def fix(self):
            monkeypatch.setattr(poll, "process_message", real)

    b = Broken()

    def process(raw, *args, **kwargs):
        if b.marker in raw:
            b.calls += 1
            raise OSError(28, "No space left on device")
        return real(raw, *args, **kwargs)

    monkeypatch.setattr(poll, "process_message", process)
    return b


@pytest.fixture
def maildir(tmp_path):
    config = write_config(tmp_path)
    settings = load_settings(config)
    write_maildir(settings.mailbox.path, [
        (form_email("hetang@example.cn", "张三", "<a@example.cn>"), JULY_20),
        (form_email("lusong@example.cn", "李四", "<bad@example.cn>"), JULY_20 + dt.timedelta(minutes=1)),
        (form_email("shifeng@example.cn", "王五", "<c@example.cn>"), JULY_20 + dt.timedelta(minutes=2)),
    ])
    store = Store(settings.store.path, settings.store.files)
    yield config, settings, store
    store.close()


def new_files(settings) -> list[str]:
    return sorted(os.listdir(settings.mailbox.path / "new"))


def test_a_failing_message_is_retried_with_backoff_then_set_aside(maildir, broken):
    config, settings, store = maildir
    clock = Clock(T0)

    report = poll.run_pass(settings, store, clock)
    assert (report.read, report.recorded, report.failed) == (3, 2, 1)
    [bad_file] = new_files(settings)           # left in the mailbox; the others moved to cur/
    [failure] = store.failures.with_status("retrying")
    assert failure["message_id"] == "<bad@example.cn>" and failure["attempts"] == 1
    assert failure["ref"] == f"maildir:{bad_file}"
    assert failure["error"].startswith("OSError (details in the store)")
    assert "No space left on device" in failure["error"]
    assert store.submissions.get("<bad@example.cn>") is None
    assert len(maildir_replies(config.parent / "sent")) == 2

    # Not before its backoff (5 minutes, then 10): a pass meanwhile leaves it alone.
    for minutes, calls, attempts in ((1, 1, 1), (4, 2, 2), (9, 2, 2), (1, 3, 3)):
        clock.advance(minutes=minutes)
        poll.run_pass(settings, store, clock)
        assert broken.calls == calls, f"after {minutes} more minute(s)"
        assert store.failures.get(failure["ref"])["attempts"] == attempts
    # The third attempt set it aside: no more tries, however long we wait.
    assert store.failures.get(failure["ref"])["status"] == "failed"
    clock.advance(days=2)
    report = poll.run_pass(settings, store, clock)
    assert broken.calls == 3 and report.read == 0
    assert new_files(settings) == [bad_file]
    store.close()

    listed = intake(config, "failed", env=WIDE)
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if "<bad@example.cn>" in line)
    assert f"maildir:{bad_file}" in row and "failed" in row and " 3 " in row and "OSError" in row
    assert "No space left" not in listed.stdout   # the details stay in the store

    # The disk was cleaned (here: the subprocess has no broken process_message).
    result = intake(config, "reprocess", "<bad@example.cn>")
    assert result.returncode == 0, result.stderr
    assert "1 recorded" in result.stdout
    replies = maildir_replies(config.parent / "sent")
    assert [r["In-Reply-To"] for r in replies].count("<bad@example.cn>") == 1 and len(replies) == 3
    assert new_files(settings) == []
    assert intake(config, "failed").stdout.strip() == "no failed messages"


def test_a_message_that_succeeds_on_retry_is_answered_once(maildir, broken):
    config, settings, store = maildir
    clock = Clock(T0)
    poll.run_pass(settings, store, clock)
    broken.fix()
    clock.advance(minutes=5)
    report = poll.run_pass(settings, store, clock)
    assert (report.read, report.recorded, report.failed) == (1, 1, 0)
    assert store.failures.all() == []
    assert store.submissions.get("<bad@example.cn>")["county"] == "芦淞区"
    replies = maildir_replies(config.parent / "sent")
    assert sorted(r["In-Reply-To"] for r in replies) == ["<a@example.cn>", "<bad@example.cn>", "<c@example.cn>"]


def test_reprocess_of_an_unknown_message_is_one_line(maildir):
    config, _, store = maildir
    store.close()
    result = intake(config, "reprocess", "<nobody@example.cn>")
    assert result.returncode == 1
    assert result.stderr.strip() == "intake: error: no failed message matches <nobody@example.cn>; see `intake failed`"


def test_a_crash_in_the_middle_of_a_message_is_counted_and_retried_at_once(maildir, caplog):
    config, settings, store = maildir
    key = new_files(settings)[1]
    # What a kill -9 leaves behind: the marker naming the message in hand.
    failures.InFlight(store.path).begin(f"maildir:{key}", {"folder": str(settings.mailbox.path), "key": key})
    with caplog.at_level("WARNING", logger="intake.failures"):
        report = poll.run_pass(settings, store, Clock(T0))
    assert f"processing maildir:{key}" in caplog.text and failures.CRASH_NOTE in caplog.text
    assert (report.read, report.recorded, report.failed) == (3, 3, 0)
    assert store.failures.all() == []                     # retried at once, and it went through
    assert not failures.InFlight(store.path).path.exists()
    assert len(maildir_replies(config.parent / "sent")) == 3


def test_a_kill_between_messages_counts_against_none_and_the_marker_names_the_last_whole(maildir):
    config, settings, store = maildir
    first, second = new_files(settings)[:2]
    inflight = failures.InFlight(store.path)
    # A long name, then a short one written over it in place: the crash names the short one.
    inflight.begin(f"maildir:{first}", {"folder": str(settings.mailbox.path), "key": first,
                                        "note": "x" * 300})
    inflight.end()
    assert inflight.path.read_text().strip() == ""          # blank between messages
    failures.InFlight(store.path).recover(store, T0)
    assert store.failures.all() == []                       # a kill between messages: no one's fault
    inflight.begin(f"maildir:{second}", {"key": second})
    failures.InFlight(store.path).recover(store, T0)
    [failure] = store.failures.all()
    assert failure["ref"] == f"maildir:{second}" and failure["error"] == failures.CRASH_NOTE
    inflight.close()
    report = poll.run_pass(settings, store, Clock(T0))
    assert (report.read, report.recorded, report.failed) == (3, 3, 0)
    assert not inflight.path.exists()                       # gone after the pass


def test_a_kill_while_the_document_reader_starts_counts_against_no_message(maildir, monkeypatch):
    # The sandbox's start (its readers' import, here made 2 s long) is no message's fault: the
    # first message is taken in hand once it is over. Were the worker killed at 1 s, the marker
    # it leaves would name no message.
    config, settings, store = maildir
    sandbox.shutdown()
    monkeypatch.setattr(sandbox, "WARM_MODULES", ("tests.unit.slow_import", *sandbox.WARM_MODULES))
    marker = failures.InFlight(store.path).path
    seen = []
    timer = threading.Timer(1.0, lambda: seen.append(marker.read_text() if marker.exists() else ""))
    timer.start()
    try:
        report = poll.run_pass(settings, store, Clock(T0))
    finally:
        timer.cancel()
        sandbox.shutdown()
    assert seen == [seen[0]] and seen[0].strip() == ""
    assert (report.read, report.recorded, report.failed) == (3, 3, 0)


def test_a_document_reader_that_never_starts_blames_no_file_and_the_emails_are_retried(maildir, monkeypatch):
    # The sandbox did not import its readers in time (a machine swapping): no county may be told
    # its form is damaged or too slow. Each email fails as a whole, is kept, and is read once the
    # reader starts again.
    config, settings, store = maildir
    sandbox.shutdown()
    monkeypatch.setattr(sandbox, "WARM_MODULES", ("tests.unit.slow_import", *sandbox.WARM_MODULES))
    monkeypatch.setattr(sandbox, "START_SECONDS", 0.3)
    monkeypatch.setattr(poll, "READY_SECONDS", 0.1)
    clock = Clock(T0)
    try:
        report = poll.run_pass(settings, store, clock)
    finally:
        sandbox.shutdown()
    assert (report.read, report.recorded, report.failed) == (3, 0, 3)
    assert maildir_replies(config.parent / "sent") == []
    assert [f["status"] for f in store.failures.all()] == ["retrying"] * 3
    assert all("did not start within 0.3 s" in f["error"] for f in store.failures.all())
    monkeypatch.setattr(sandbox, "WARM_MODULES", sandbox.WARM_MODULES[1:])
    clock.advance(minutes=6)
    report = poll.run_pass(settings, store, clock)
    assert (report.recorded, report.failed) == (3, 0) and store.failures.all() == []
    replies = maildir_replies(config.parent / "sent")
    assert len(replies) == 3 and {str(r["X-Intake-Status"]) for r in replies} == {"accepted"}


def test_a_message_that_crashes_three_times_is_set_aside(maildir):
    config, settings, store = maildir
    key = new_files(settings)[1]
    inflight = failures.InFlight(store.path)
    raw = (settings.mailbox.path / "new" / key).read_bytes()
    for attempt in range(3):
        inflight.begin(f"maildir:{key}", {"key": key}, raw)
        inflight.recover(store, T0 + dt.timedelta(minutes=attempt))
    [failure] = store.failures.with_status("failed")
    assert failure["attempts"] == 3 and failure["error"] == failures.CRASH_NOTE
    assert failure["message_id"].startswith("<") and failure["message_id"].encode() in raw
    report = poll.run_pass(settings, store, Clock(T0 + dt.timedelta(hours=1)))
    assert (report.read, report.recorded) == (2, 2)
    assert new_files(settings) == [key]                  # kept, not looping, not lost
    store.close()
    listed = intake(config, "failed", env=WIDE)
    assert f"maildir:{key}" in listed.stdout and "intake stopped while processing" in listed.stdout
    # the Message-ID was read from the marker: reprocess by it
    result = intake(config, "reprocess", failure["message_id"])
    assert result.returncode == 0, result.stderr
    assert len(maildir_replies(config.parent / "sent")) == 3


def test_over_imap_a_failed_uid_below_later_ones_is_still_retried(tmp_path, dovecot, imap_account, broken,
                                                                  monkeypatch):
    user, password = imap_account
    config = write_config(tmp_path, mailbox={
        "transport": "imap", "host": dovecot.host, "port": dovecot.tls_port, "security": "ssl",
        "username": user, "password_env": "INTAKE_TEST_IMAP_PW", "folder": "INBOX",
        "ca_file": str(dovecot.ca_file)})
    monkeypatch.setenv("INTAKE_TEST_IMAP_PW", password)
    settings = load_settings(config)
    uids = [dovecot.append(user, password, raw, internaldate=JULY_20) for raw in (
        form_email("lusong@example.cn", "李四", "<bad@example.cn>"),
        form_email("hetang@example.cn", "张三", "<a@example.cn>"),
        form_email("shifeng@example.cn", "王五", "<c@example.cn>"))]
    store = Store(settings.store.path, settings.store.files)
    clock = Clock(T0)
    report = poll.run_pass(settings, store, clock)
    assert (report.recorded, report.failed) == (2, 1)
    assert store.ledger.get("INBOX")[1] == uids[2]    # the mark is past the failed UID
    [failure] = store.failures.all()
    assert failure["ref"].endswith(f":{uids[0]}") and failure["ref"].startswith("imap:INBOX:")

    clock.advance(minutes=4)
    assert poll.run_pass(settings, store, clock).read == 0 and broken.calls == 1
    broken.fix()
    clock.advance(minutes=1)
    report = poll.run_pass(settings, store, clock)   # fetched again by its UID
    assert (report.read, report.recorded, report.failed) == (1, 1, 0)
    assert store.failures.all() == []
    assert store.submissions.get("<bad@example.cn>")["county"] == "芦淞区"
    assert store.ledger.get("INBOX")[1] == uids[2]
    assert sorted(r["In-Reply-To"] for r in maildir_replies(tmp_path / "sent")) == [
        "<a@example.cn>", "<bad@example.cn>", "<c@example.cn>"]
    # still in the mailbox, unread
    client = dovecot.client(user, password)
    try:
        client.select_folder("INBOX")
        assert sorted(client.search(["UNSEEN"])) == uids
    finally:
        client.logout()
    store.close()


def test_a_kill_in_the_middle_of_a_backlog_loses_nothing_and_answers_each_message_once(maildir):
    """A backlog is committed in groups (store.group_commit): a kill before a group is on disk
    loses its records, so none of its messages may have left new/ yet and none of its replies
    gone out; the next pass reads them again and answers each once."""
    config, settings, store = maildir
    store.close()
    pid = os.fork()
    if pid == 0:   # the worker, killed (no cleanup at all) when it reaches the third message
        try:
            real, calls = poll.process_message, []

            def process(raw, *args, **kwargs):
                calls.append(raw)
                if len(calls) == 3:
                    os._exit(9)
                return real(raw, *args, **kwargs)

            poll.process_message = process
            poll.run_pass(settings, Store(settings.store.path, settings.store.files), Clock(T0))
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 9
    after_kill = Store(settings.store.path, settings.store.files)
    for name in os.listdir(settings.mailbox.path / "cur"):   # out of new/ only once on disk
        raw = (settings.mailbox.path / "cur" / name).read_bytes()
        assert any(s["message_id"].encode() in raw for s in after_kill.submissions.all()), name
    assert maildir_replies(config.parent / "sent") == []

    report = poll.run_pass(settings, after_kill, Clock(T0))
    assert report.failed == 0 and new_files(settings) == []
    replies = maildir_replies(config.parent / "sent")
    assert sorted(r["In-Reply-To"] for r in replies) == ["<a@example.cn>", "<bad@example.cn>", "<c@example.cn>"]
