"""One writer at a time: while `intake run` works, a second worker refuses to start with one
line, read-only commands still answer, and SIGTERM stops the first cleanly and promptly."""
from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import time
from pathlib import Path

from pipeline import sample_mail
from pipeline.demo import write_maildir
from tests.cli import INTAKE, intake
from tests.configs import MAILBOX, write_config

SH = dt.timezone(dt.timedelta(hours=8))


def wait_for_line(path: Path, text: str, proc: subprocess.Popen, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while text not in path.read_text(errors="replace"):
        assert proc.poll() is None, f"intake run exited early:\n{path.read_text()}"
        assert time.monotonic() < deadline, f"no {text!r} within {timeout} s:\n{path.read_text()}"
        time.sleep(0.05)


def test_a_second_worker_refuses_while_readers_work_beside_the_first(tmp_path):
    config = write_config(tmp_path)
    write_maildir(tmp_path / "inbox", [(sample_mail.foxmail_email(
        "hetang@example.cn", MAILBOX, "查询", message_id="<q1@example.cn>"), dt.datetime(2022, 7, 20, 10, tzinfo=SH))])
    log = tmp_path / "run.log"
    with open(log, "wb") as err:
        first = subprocess.Popen([str(INTAKE), "--config", str(config), "run"], cwd=tmp_path,
                                 stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_for_line(log, "read 1 new message(s): 1 recorded", first)

        for second in (intake(config, "run", timeout=30), intake(config, "poll", "--once")):
            assert second.returncode == 1, (second.stdout, second.stderr)
            lines = [line for line in second.stderr.splitlines() if line.strip()]
            assert lines == [f"intake: error: another intake process (intake run, pid {first.pid}) "
                             f"is already writing {tmp_path / 'intake.json'}"]

        exported = intake(config, "export", "--format", "json")
        assert exported.returncode == 0, exported.stderr
        assert [s["message_id"] for s in json.loads(exported.stdout)["submissions"]] == ["<q1@example.cn>"]
        status = intake(config, "status")
        assert status.returncode == 0, status.stderr
        assert "荷塘区" in status.stdout
        assert first.poll() is None, "the first worker must still be running"

        first.send_signal(signal.SIGTERM)
        started = time.monotonic()
        assert first.wait(timeout=10) == 0, log.read_text()
        assert time.monotonic() - started < 5, f"SIGTERM took {time.monotonic() - started:.1f} s"
        assert "intake.worker: stopped" in log.read_text()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
