"""`intake run`, the real worker in its own process, against the test Dovecot and an aiosmtpd
server that are stopped and started under it: it recovers without a restart of its own, loses
nothing, sends nothing twice, logs one line per outage; IDLE wakes it for new mail; the day's
digest goes out once, even across a restart; SIGTERM stops it with exit code 0."""
import datetime as dt
import os
import signal
import subprocess
import time
import zoneinfo

import pytest

from pipeline import sample_mail, samples
from tests.cli import INTAKE, exported, intake
from tests.configs import MAILBOX, write_config

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
JULY_20 = dt.datetime(2022, 7, 20, 10, 15, tzinfo=SHANGHAI)
SMTP_USER, SMTP_PASSWORD = "intake@example.cn", "smtp-secret"
COUNTIES = [("hetang@example.cn", "张三"), ("lusong@example.cn", "李四"), ("shifeng@example.cn", "王五"),
            ("tianyuan@example.cn", "赵六"), ("lukou@example.cn", "孙七"), ("liling@example.cn", "周八"),
            ("youxian@example.cn", "吴九"), ("chaling@example.cn", "郑十"), ("yanling@example.cn", "钱一")]


class Worker:
    """`intake --config CONFIG run` in the background, its log (stderr) in a file."""

    def __init__(self, config, env):
        self.config, self.env = config, env
        self.log_path = config.parent / "worker.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Worker":
        self._log = open(self.log_path, "a")
        self.proc = subprocess.Popen([str(INTAKE), "--config", str(self.config), "run"], cwd=self.config.parent,
                                     env=self.env, stdout=self._log, stderr=subprocess.STDOUT)
        return self

    def log(self) -> str:
        return self.log_path.read_text()

    def lines(self, text: str) -> list[str]:
        return [line for line in self.log().splitlines() if text in line]

    def wait_for_log(self, text: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not self.lines(text):
            assert self.proc.poll() is None, f"the worker exited {self.proc.returncode}:\n{self.log()}"
            assert time.monotonic() < deadline, f"no {text!r} in the worker's log:\n{self.log()}"
            time.sleep(0.1)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=20)
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def worker_mail(tmp_path, dovecot, imap_account, smtp_server):
    """make(poll_seconds=..., digest_at=...) -> (Worker, append); the worker is killed after the test."""
    user, password = imap_account
    env = {"INTAKE_IMAP_PASSWORD": password, "INTAKE_SMTP_PASSWORD": SMTP_PASSWORD}
    workers = []

    def make(poll_seconds: int = 1, digest_at: str = "23:59:59", replace: dict | None = None):
        config = write_config(
            tmp_path,
            mailbox={"transport": "imap", "host": dovecot.host, "port": dovecot.tls_port, "security": "ssl",
                     "username": user, "password_env": "INTAKE_IMAP_PASSWORD", "folder": "INBOX",
                     "ca_file": str(dovecot.ca_file), "poll_seconds": poll_seconds},
            smtp={"transport": "smtp", "host": "127.0.0.1", "port": smtp_server.port, "security": "none",
                  "username": SMTP_USER, "password_env": "INTAKE_SMTP_PASSWORD", "from_address": MAILBOX,
                  "timeout": 5, "retry_base_seconds": 1, "retry_max_seconds": 2,
                  "per_sender_hourly_cap": 1000},
            replace={'at = "08:30"': f'at = "{digest_at}"', **(replace or {})})
        worker = Worker(config, {**os.environ, **env})
        workers.append(worker)

        def append(sender: str, name: str, message_id: str) -> None:
            raw = sample_mail.foxmail_email(sender, MAILBOX, f"推荐表（{name}）",
                                            [(f"{name}推荐表.docx", samples.build_form_docx({"name": name}))],
                                            message_id=message_id)
            dovecot.append(user, password, raw, internaldate=JULY_20)

        return worker, append

    yield make
    for worker in workers:
        worker.kill()
    if not dovecot.is_running():
        dovecot.start()
    smtp_server.start()


def replies(smtp_server) -> list:
    """What reached the SMTP server, less any digest."""
    return [m for m in smtp_server.messages if m.message["X-Intake-Digest"] is None]


def wait_for_replies(smtp_server, n: int, timeout: float = 30) -> list:
    deadline = time.monotonic() + timeout
    while len(replies(smtp_server)) < n:
        assert time.monotonic() < deadline, \
            f"{len(replies(smtp_server))} replies of {n} after {timeout} s: {[a.reply for a in smtp_server.attempts]}"
        time.sleep(0.1)
    return replies(smtp_server)


def test_the_worker_rides_out_mailbox_and_smtp_outages(worker_mail, dovecot, smtp_server):
    worker, append = worker_mail(poll_seconds=1)
    worker.start()
    ids = []

    def send(batch):
        for sender, name in batch:
            ids.append(f"<{name}-{len(ids)}@example.cn>")
            append(sender, name, ids[-1])

    send(COUNTIES[0:3])
    wait_for_replies(smtp_server, 3)

    # The mailbox goes away for a few seconds, comes back: mail appended after is answered.
    dovecot.stop()
    worker.wait_for_log("the mailbox unavailable")
    time.sleep(3)
    dovecot.start()
    send(COUNTIES[3:6])
    wait_for_replies(smtp_server, 6)
    worker.wait_for_log("the mailbox available again")

    # The SMTP server goes away while mail arrives; its replies wait, then go out.
    smtp_server.stop()
    send(COUNTIES[6:9])
    worker.wait_for_log("the SMTP server unavailable")
    time.sleep(3)
    smtp_server.start()
    wait_for_replies(smtp_server, 9)
    worker.wait_for_log("the SMTP server available again")

    time.sleep(2)   # time for anything sent twice to show up
    assert worker.stop() == 0, worker.log()
    got = replies(smtp_server)
    assert sorted(m.message["In-Reply-To"] for m in got) == sorted(ids), "one reply per email"
    assert len({m.message["Message-ID"] for m in got}) == 9
    assert {m.message["X-Intake-Status"] for m in got} == {"accepted"}
    submissions = exported(worker.config, env=worker.env)["submissions"]
    assert sorted(s["message_id"] for s in submissions) == sorted(ids)

    # One line when a service goes away and one when it is back, however many retries between.
    assert len(worker.lines("the mailbox unavailable")) == 1, worker.log()
    assert len(worker.lines("the mailbox available again")) == 1, worker.log()
    assert len(worker.lines("the SMTP server unavailable")) == 1, worker.log()
    assert len(worker.lines("the SMTP server available again")) == 1, worker.log()
    assert "Traceback" not in worker.log()
    assert worker.lines("stopped")
    for private in ("13807310000", "泰山路88号", "政务云平台", SMTP_PASSWORD, worker.env["INTAKE_IMAP_PASSWORD"]):
        assert private not in worker.log()


def test_idle_wakes_the_worker_for_new_mail(worker_mail, smtp_server):
    worker, append = worker_mail(poll_seconds=600)
    worker.start()
    append(*COUNTIES[0], "<first@example.cn>")
    wait_for_replies(smtp_server, 1)      # the first pass is done: the worker waits in IDLE now
    time.sleep(1)
    appended = time.monotonic()
    append(*COUNTIES[1], "<second@example.cn>")
    wait_for_replies(smtp_server, 2, timeout=10)
    assert time.monotonic() - appended < 5, "answered at once, not at the next 10-minute poll"
    assert worker.stop() == 0, worker.log()


def test_the_digest_goes_out_once_while_running_and_across_a_restart(worker_mail, smtp_server):
    local = dt.datetime.now(SHANGHAI)
    if local.hour == 23 and local.minute >= 59:    # a new day would owe a digest of its own
        time.sleep(61)
    worker, append = worker_mail(poll_seconds=1, digest_at="00:00",
                                 replace={"# ends = 2022-10-30": "ends = 2099-12-31"})
    worker.start()

    def digests():
        return [m for m in smtp_server.messages if m.message["X-Intake-Digest"]]

    deadline = time.monotonic() + 30
    while not digests():
        assert time.monotonic() < deadline, worker.log()
        time.sleep(0.1)
    append(*COUNTIES[0], "<during@example.cn>")   # passes go on; none owes another digest
    wait_for_replies(smtp_server, 1)
    time.sleep(2)
    assert worker.stop() == 0, worker.log()

    worker.start()
    append(*COUNTIES[1], "<after@example.cn>")
    wait_for_replies(smtp_server, 2)
    time.sleep(2)
    assert worker.stop() == 0, worker.log()
    [digest] = digests()
    today = dt.datetime.now(SHANGHAI).date().isoformat()
    assert digest.message["X-Intake-Digest"] == today
    assert digest.rcpt_tos == ["contact@example.cn"]
    assert len(worker.lines(f"digest for {today} queued")) == 1


def test_after_the_campaign_ends_the_worker_sends_no_digest_and_says_so_once(worker_mail, smtp_server):
    worker, append = worker_mail(poll_seconds=1, digest_at="00:00")   # ends: 2022-10-30, long past
    worker.start()
    worker.wait_for_log("the campaign ended on 2022-10-30")
    append(*COUNTIES[0], "<late-in-the-year@example.cn>")    # passes go on, replies too
    wait_for_replies(smtp_server, 1)
    time.sleep(2)
    assert worker.stop() == 0, worker.log()
    assert len(worker.lines("the campaign ended")) == 1
    assert not [m for m in smtp_server.messages if m.message["X-Intake-Digest"]]


def test_the_worker_reminds_incomplete_counties_once_a_day_even_across_a_restart(worker_mail, smtp_server):
    today = dt.datetime.now(SHANGHAI).date()
    if dt.datetime.now(SHANGHAI).time() >= dt.time(23, 59):
        time.sleep(61)
        today = dt.datetime.now(SHANGHAI).date()
    worker, append = worker_mail(poll_seconds=1, digest_at="00:00", replace={
        "submission_deadline = 2022-07-31": f"submission_deadline = {today + dt.timedelta(days=3)}",
        "report_deadline = 2022-09-30": f"report_deadline = {today + dt.timedelta(days=60)}",
        "days_before = []": "days_before = [7, 3]"})
    worker.start()

    def reminders():
        return [m for m in smtp_server.messages if m.message["X-Intake-Reminder"]]

    deadline = time.monotonic() + 30
    while len(reminders()) < 9 or not [m for m in smtp_server.messages if m.message["X-Intake-Digest"]]:
        assert time.monotonic() < deadline, worker.log()
        time.sleep(0.1)
    assert worker.stop() == 0, worker.log()
    worker.start()
    append(*COUNTIES[0], "<after-restart@example.cn>")   # a pass after the restart: it owes no reminder
    wait_for_replies(smtp_server, 9 + 1)                  # the reminders, then the form's receipt
    time.sleep(2)
    assert worker.stop() == 0, worker.log()
    assert sorted(m.rcpt_tos[0] for m in reminders()) == sorted(sender for sender, _ in COUNTIES)
    assert "（还有3天）" in reminders()[0].message.get_body(("plain",)).get_content()
    [digest] = [m for m in smtp_server.messages if m.message["X-Intake-Digest"]]
    listed = digest.message.get_body(("plain",)).get_content().split("八、今日发出的截止前提醒")[1]
    assert all(county in listed for county in ("荷塘区", "炎陵县"))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process, from /proc."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_dovecot_restart_during_idle_is_noticed_at_once(worker_mail, dovecot, smtp_server):
    """poll_seconds = 3600: only noticing the closed connection brings the worker back."""
    worker, append = worker_mail(poll_seconds=3600)
    worker.start()
    append(*COUNTIES[0], "<before@example.cn>")
    wait_for_replies(smtp_server, 1)
    time.sleep(1)                          # the worker waits in IDLE now
    cpu_before, down = cpu_seconds(worker.proc.pid), time.monotonic()
    dovecot.stop()
    time.sleep(5)                          # an outage of a few seconds
    dovecot.start()
    cpu_during = cpu_seconds(worker.proc.pid) - cpu_before
    appended = time.monotonic()
    append(*COUNTIES[1], "<after@example.cn>")
    wait_for_replies(smtp_server, 2, timeout=10)
    assert time.monotonic() - appended < 10
    assert cpu_during < 2, f"the worker spun: {cpu_during:.1f} s of CPU in a {appended - down:.0f} s outage"
    worker.wait_for_log("the mailbox available again")
    [back] = worker.lines("the mailbox available again")
    seconds = int(back.rsplit(":", 1)[1])
    assert back.rsplit("after ", 1)[1].startswith("0:00:") and 5 <= seconds <= 15, back
    assert worker.stop() == 0, worker.log()
    assert "Traceback" not in worker.log()


def test_commands_that_write_are_done_by_the_running_worker(worker_mail, smtp_server):
    # poll_seconds = 600 and nothing new in the mailbox: only the command itself can wake the
    # worker, so an effect within seconds is the worker's next cycle, not its next poll.
    worker, append = worker_mail(poll_seconds=600)
    # A final refusal (163's spam answers are retried by themselves since issue 13).
    smtp_server.respond_with(["550 5.1.1 mailbox unavailable"])
    worker.start()
    append(*COUNTIES[0], "<refused@example.cn>")
    deadline = time.monotonic() + 30
    while "failed" not in intake(worker.config, "outbox", env={**worker.env, "COLUMNS": "200"}).stdout:
        assert time.monotonic() < deadline, worker.log()
        time.sleep(0.5)

    marked = intake(worker.config, "mark", "张三", "--county", "荷塘区", "--status", "shortlisted",
                    "--note", "初选通过", env=worker.env, timeout=90)
    assert marked.returncode == 0, marked.stderr
    assert marked.stdout == "荷塘区 张三: 入围备选名单 (shortlisted)\n"
    assert f"done by the running worker (pid {worker.proc.pid})" in marked.stderr
    [candidate] = exported(worker.config, env=worker.env)["candidates"]
    assert candidate["review"]["status"] == "shortlisted" and candidate["review"]["note"] == "初选通过"

    started = time.monotonic()
    retried = intake(worker.config, "outbox", "--retry", env=worker.env, timeout=90)
    assert retried.returncode == 0, retried.stderr
    assert "re-queued 1 failed reply(ies)" in retried.stdout
    assert "done by the running worker" in retried.stderr
    [reply] = wait_for_replies(smtp_server, 1, timeout=20)
    assert reply.message["In-Reply-To"] == "<refused@example.cn>"
    assert time.monotonic() - started < 20, "sent at the worker's next cycle, not its next poll"

    refused = intake(worker.config, "mark", "无名", "--county", "荷塘区", "--status", "selected",
                     env=worker.env, timeout=90)
    assert refused.returncode == 1
    assert refused.stderr.splitlines()[-1] == "intake: error: 荷塘区 has no candidate named 无名"
    assert "Traceback" not in refused.stderr + worker.log()
    assert worker.stop() == 0, worker.log()
    assert len(worker.lines("command mark done")) == 2 and worker.lines("command outbox-retry done")
