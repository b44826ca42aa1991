"""The warm sandbox (parsers/sandbox.py): one process reads document after document, each under
its own limits, and is replaced when a document kills it, without blaming the next one."""
import os
import signal
import subprocess
import sys
import time

import pytest

from parsers import sandbox
from parsers.attachments import read_attachments
from parsers.errors import UnreadableFile
from parsers.records import Attachment
from pipeline import samples
from store.repository import Store

FORM = samples.build_form_docx()


pytestmark = pytest.mark.usefixtures("fresh_sandbox")


def honest_form_read() -> bool:
    [doc] = read_attachments([Attachment("张三推荐表.docx", "application/octet-stream", FORM)])
    return doc.kind == "form" and doc.form.name == "张三"


def sandbox_pid() -> int:
    return sandbox.run_limited(os.getpid)


def _burn(seconds: float) -> float:
    used = time.process_time()
    while time.process_time() - used < seconds:
        pass
    return seconds


def _spin_forever():
    while True:
        pass


def _allocate_a_gigabyte():
    return len(bytearray(1 << 30))


def _die():
    os.kill(os.getpid(), signal.SIGKILL)


def test_one_process_reads_many_documents():
    first = sandbox_pid()
    assert first != os.getpid()
    assert all(honest_form_read() for _ in range(5))
    assert sandbox_pid() == first


def test_each_document_gets_its_own_cpu_and_memory_allowance():
    # 2.4 s of CPU over two calls allowed 1 s each: the allowance is per call, not per process.
    assert sandbox.run_limited(_burn, 1.2, cpu=1) == 1.2
    assert sandbox.run_limited(_burn, 1.2, cpu=1) == 1.2
    started = time.monotonic()
    with pytest.raises(UnreadableFile) as caught:
        sandbox.run_limited(_spin_forever, cpu=1, wall=30)   # stopped by its CPU limit
    assert caught.value.reason == sandbox.TOO_SLOW and time.monotonic() - started < 10
    with pytest.raises(UnreadableFile) as caught:
        sandbox.run_limited(_allocate_a_gigabyte, memory=256 << 20)
    assert caught.value.reason == sandbox.TOO_BIG
    assert honest_form_read()


@pytest.mark.parametrize("hostile, reason", [(_die, sandbox.CRASHED), (_allocate_a_gigabyte, sandbox.TOO_BIG),
                                             (_spin_forever, sandbox.TOO_SLOW)])
def test_a_document_that_kills_the_process_is_blamed_alone(hostile, reason):
    before = sandbox_pid()
    with pytest.raises(UnreadableFile) as caught:
        sandbox.run_limited(hostile, memory=256 << 20, wall=2)
    assert caught.value.reason == reason
    assert honest_form_read()                 # the next email's form, in a fresh process
    assert sandbox_pid() != before


def test_a_process_killed_while_idle_is_replaced_before_the_next_document():
    os.kill(sandbox_pid(), signal.SIGKILL)
    time.sleep(0.2)
    assert honest_form_read()


def test_the_process_keeps_neither_the_store_lock_nor_other_files(tmp_path):
    store = Store(tmp_path / "intake.json", tmp_path / "files")
    with store.transaction():    # takes the single-writer lock, then a document is read
        assert honest_form_read()
    pid = sandbox_pid()
    assert sorted(os.listdir(f"/proc/{pid}/fd"), key=int)[:3] == ["0", "1", "2"]
    assert len(os.listdir(f"/proc/{pid}/fd")) == 4      # and its pipe
    store.close()
    again = Store(tmp_path / "intake.json", tmp_path / "files")
    try:
        again.lock()             # no StoreBusy: the sandbox process does not hold the lock
    finally:
        again.close()


def test_the_process_ends_with_the_worker():
    code = ("import os\nfrom parsers import sandbox\n"
            "print(sandbox.run_limited(os.getpid), flush=True)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    pid = int(done.stdout)
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{pid}")


def test_the_worker_leaves_the_document_readers_to_the_sandbox():
    # python-docx, pdfplumber and openpyxl are imported by the sandbox process as it starts:
    # the worker's start-up does not pay for them, and the readers still read.
    code = ("import sys\nimport pipeline.cli, pipeline.poll\n"
            "print(sorted({'docx', 'pdfplumber', 'openpyxl', 'parsers.readers'} & set(sys.modules)))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    assert honest_form_read()
    assert sandbox.run_limited(_has_module, "docx")


def _has_module(name: str) -> bool:
    return name in sys.modules


def test_a_slow_start_counts_against_no_document(monkeypatch):
    # The readers' import on a loaded machine may take longer than a document's whole
    # allowance: the document's time starts when the process is ready.
    monkeypatch.setattr(sandbox, "WARM_MODULES", ("tests.unit.slow_import",))
    sandbox.warm()
    assert sandbox.run_limited(_burn, 0.1, wall=1) == 0.1
    assert sandbox.run_limited(_has_module, "tests.unit.slow_import")


def test_a_successor_is_ready_before_a_process_has_read_its_share(monkeypatch):
    """A long backlog does not stop every MAX_CALLS documents while a new process imports the
    readers: the next one was started beside the old, SPARE_AHEAD documents before."""
    monkeypatch.setattr(sandbox, "MAX_CALLS", 6)
    monkeypatch.setattr(sandbox, "SPARE_AHEAD", 3)
    first = {sandbox_pid() for _ in range(6)}   # the sixth is the first process's last
    assert len(first) == 1
    sandbox._spare.wait_ready(sandbox.START_SECONDS)
    asked = time.monotonic()
    assert honest_form_read()
    assert sandbox_pid() not in first
    assert sandbox._current.ready_at <= asked   # it had imported the readers already


def test_a_successor_started_ahead_ends_with_the_sandbox(monkeypatch):
    monkeypatch.setattr(sandbox, "MAX_CALLS", 6)
    monkeypatch.setattr(sandbox, "SPARE_AHEAD", 3)
    for _ in range(4):
        sandbox_pid()
    processes = [sandbox._current.child, sandbox._spare.child]
    sandbox.shutdown()
    assert not any(p.is_alive() for p in processes)


def test_a_process_that_dies_starting_blames_no_document(monkeypatch):
    # Killed while importing the readers: the machine's trouble. The county must not hear that
    # its form is damaged; the email fails as a whole and is retried (tests/integration/test_failures.py).
    monkeypatch.setattr(sandbox, "WARM_MODULES", ("tests.unit.dying_import",))
    with pytest.raises(sandbox.SandboxUnavailable, match="died while starting"):
        honest_form_read()
    monkeypatch.setattr(sandbox, "WARM_MODULES", ())
    assert honest_form_read()   # the next call starts a process that serves
