"""Run a parser in a separate process with memory, CPU and wall-clock limits, so a hostile or
pathological file costs that process, never the worker. Every document reader runs here,
called from parsers/attachments.py's `_read_document`.

The process is kept warm: forked from the worker the first time a document is read (so it
shares the parser libraries already loaded, copy-on-write), then fed one document at a time
over a pipe. Forking a child per document cost 7 ms on an idle machine and 20–45 ms on a
loaded one, more than reading the document. Each document gets the same limits a fresh child
had: before every call the process's soft limits are set to what it uses now plus the call's
allowance — address space `memory` above what it has mapped, `cpu` seconds above the CPU time
it has used — and the caller stops waiting after `wall` seconds and kills it. It is replaced
(a fresh fork the next time a document comes):
- after any call that did not end in a value or the parser's own UnreadableFile/NotAForm: it
  ran out of memory, crashed, was killed by its CPU limit or did not answer in time;
- after MAX_CALLS documents, or once it has grown MAX_GROWTH beyond what it had mapped when
  it started, so that no leak or fragmentation carries over;
- when the worker has imported modules since the fork (the OCR models, loaded in the worker
  first: the new process shares them instead of loading its own copy).
A call that finds the process dead before it starts (killed while idle) starts a fresh one:
only the document it was reading is ever blamed for its death.

The process keeps none of the worker's open files (the store's lock, mailbox and SMTP
connections): it closes every descriptor but its pipe when it starts. It ignores SIGINT (a
Ctrl-C reaches the worker, which decides) and exits when the worker closes the pipe or exits.
"""
from __future__ import annotations

import atexit
import multiprocessing
import multiprocessing.util  # noqa: F401 — its exit hook must be registered before ours
import os
import resource
import signal
import sys
import threading

from parsers.errors import NotAForm, UnreadableFile

TOO_SLOW = "文件处理超时（内容过于复杂或已损坏）"
TOO_BIG = "文件内容过大，超出系统处理能力"
CRASHED = "文件已损坏，无法读取"

MEMORY_BYTES = 768 << 20    # above what the process has mapped when the call starts
CPU_SECONDS = 30
WALL_SECONDS = 45
MAX_CALLS = 500             # documents one process reads before a fresh one takes over
MAX_GROWTH = 256 << 20      # mapped beyond its start after a call: replaced


def run_limited(func, *args, memory: int = MEMORY_BYTES, cpu: int = CPU_SECONDS,
                wall: float = WALL_SECONDS):
    """func(*args) in the sandbox process; its value, or the UnreadableFile / NotAForm it
    raised. Any other failure (killed, out of memory, out of time, a bug) becomes
    UnreadableFile. `func` must be a module-level function (it is sent by name)."""
    global _current
    with _lock:
        if _current is None or not _current.usable():
            shutdown()
            _current = _Process()
        keep, ok, value = _current.call(func, args, memory, cpu, wall)
        if not keep:
            shutdown()
    if ok:
        return value
    raise value


def shutdown() -> None:
    """Stop the sandbox process, if this process started one; the next call starts another."""
    global _current
    if _current is not None and _current.owner == os.getpid():
        _current.stop()
    _current = None


class _Process:
    """One sandbox process and the worker's end of its pipe."""

    def __init__(self):
        ctx = multiprocessing.get_context("fork")
        self.conn, child_end = ctx.Pipe(duplex=True)
        self.owner = os.getpid()
        self.child = ctx.Process(target=_serve, args=(child_end,), daemon=True, name="intake-sandbox")
        self.child.start()
        child_end.close()
        self.modules = len(sys.modules)   # starting it imported multiprocessing's parts

    def usable(self) -> bool:
        return (self.owner == os.getpid() and self.modules == len(sys.modules)
                and self.child.is_alive())

    def call(self, func, args, memory: int, cpu: int, wall: float):
        """(keep, ok, value): keep is False when this process must not take another call."""
        try:
            self.conn.send((func, args, memory, cpu))
            if not self.conn.poll(wall):
                return False, False, UnreadableFile(TOO_SLOW)
            ok, value, keep = self.conn.recv()
        except (EOFError, OSError):
            return False, False, UnreadableFile(self._death_reason())
        return keep, ok, value

    def _death_reason(self) -> str:
        self.child.join(1)
        return TOO_SLOW if self.child.exitcode == -signal.SIGXCPU else CRASHED   # the CPU limit

    def stop(self) -> None:
        self.conn.close()        # an idle process sees the end of its pipe and exits
        self.child.kill()
        self.child.join()


_lock = threading.Lock()
_current: _Process | None = None


@atexit.register
def _stop_at_exit() -> None:
    # Runs before multiprocessing's own exit hook (registered earlier, at the import above),
    # which would wait for a process that need not heed the SIGTERM it sends.
    with _lock:
        shutdown()


# ---- the sandbox process ----------------------------------------------------------------------

def _serve(conn) -> None:
    _detach(conn.fileno())
    start = _mapped_bytes()
    for calls in range(1, MAX_CALLS + 1):
        try:
            func, args, memory, cpu = conn.recv()
        except (EOFError, OSError):
            return
        ok, value, clean = _run(func, args, memory, cpu)
        keep = clean and calls < MAX_CALLS and _mapped_bytes() - start < MAX_GROWTH
        conn.send((ok, value, keep))
        if not keep:
            return


def _run(func, args, memory: int, cpu: int):
    """(ok, value, clean): clean when the process may be trusted with another call."""
    _limit(memory, cpu)
    try:
        return True, func(*args), True
    except (UnreadableFile, NotAForm) as exc:
        return False, exc, True
    except MemoryError:
        return False, UnreadableFile(TOO_BIG), False
    except Exception:  # noqa: BLE001 — a parser library's crash on a bad file is the file's fault
        return False, UnreadableFile(CRASHED), False


def _detach(keep: int) -> None:
    """Keep none of the worker's files and connections; leave Ctrl-C to the worker; and die on
    SIGTERM whatever handler the worker had installed."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd != keep:
            try:
                os.close(fd)
            except OSError:   # the directory listing's own descriptor, already gone
                pass


def _limit(memory: int, cpu: int) -> None:
    """The soft limits for one call, measured from where the process is now; the hard limits
    stay as they are, so that the next call can be given its own allowance."""
    used = resource.getrusage(resource.RUSAGE_SELF)
    _soft(resource.RLIMIT_AS, _mapped_bytes() + memory)
    _soft(resource.RLIMIT_CPU, int(used.ru_utime + used.ru_stime) + 1 + cpu)


def _soft(which: int, value: int) -> None:
    _, hard = resource.getrlimit(which)
    resource.setrlimit(which, (value if hard == resource.RLIM_INFINITY else min(value, hard), hard))


def _mapped_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
