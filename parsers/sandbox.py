"""Run a parser in a separate process with memory, CPU and wall-clock limits, so a hostile or
pathological file costs that process, never the worker. Every document reader runs here,
called from parsers/attachments.py's `_read_document`.

The process is kept warm: forked from the worker the first time a document is read, or
before, by `warm` (a pass calls it before it logs in), then fed one document at a time over a
pipe. As it starts it imports the document readers (WARM_MODULES: python-docx, pdfplumber,
openpyxl, ~0.4 s), which the worker itself never imports; until it says it is ready, no call's
time has started, and if it never says so (START_SECONDS, or it dies importing) no document is
blamed: the call waited for ends in SandboxUnavailable. Forking a child per document cost 7 ms
on an idle machine and 20–45 ms on a loaded one, more than reading the document. Each document gets the same limits a fresh child
had: before every call the process's soft limits are set to what it uses now plus the call's
allowance — address space `memory` above what it has mapped, `cpu` seconds above the CPU time
it has used — and the caller stops waiting after `wall` seconds and kills it. It is replaced
(a fresh fork the next time a document comes):
- after any call that did not end in a value or the parser's own UnreadableFile/NotAForm: it
  ran out of memory, crashed, was killed by its CPU limit or did not answer in time;
- after MAX_CALLS documents, or once it has grown MAX_GROWTH beyond what it had mapped when
  it started, so that no leak or fragmentation carries over. SPARE_AHEAD documents before
  MAX_CALLS its successor is started beside it, so that it has imported the readers by the
  time it takes over: in a long backlog the worker no longer stops for ~0.4 s every
  MAX_CALLS documents (and a replacement for any other reason then also finds one ready);
- when the worker has loaded modules for it since the fork and said so with `share_loaded`
  (the OCR models, loaded in the worker first: the new process shares them instead of loading
  its own copy).
A call that finds the process dead before it starts (killed while idle) starts a fresh one:
only the document it was reading is ever blamed for its death.

Reading ahead (`read_ahead`): the next email's documents may be handed over before anyone
waits for them, so that the process reads them while the worker judges and stores the email in
hand; their results are taken later with `Call.result`. Calls are served in order. A result is
decided as if the call had been made when its result is asked for: the same memory and CPU
allowance, and `wall` seconds counted from when the process started it, never from later than
when it was asked for (or than when the process was ready, if it was still starting). A call that is asked for never waits behind one nobody has asked for yet:
if such a call is still running, the process is replaced and the calls behind it sent again.
Documents are handed over ahead only to an idle process and only as many as the pipe holds
(QUEUED_BYTES), so that handing them over never makes the worker wait.

The process keeps none of the worker's open files (the store's lock, mailbox and SMTP
connections): it closes every descriptor but its pipe when it starts. It ignores SIGINT (a
Ctrl-C reaches the worker, which decides) and exits when the worker closes the pipe or exits.
"""
from __future__ import annotations

import atexit
import importlib
import multiprocessing
import multiprocessing.util  # noqa: F401 — its exit hook must be registered before ours
import os
import resource
import signal
import sys
import threading
import time
from collections import deque

from parsers.errors import NotAForm, UnreadableFile

TOO_SLOW = "文件处理超时（内容过于复杂或已损坏）"
TOO_BIG = "文件内容过大，超出系统处理能力"
CRASHED = "文件已损坏，无法读取"

MEMORY_BYTES = 768 << 20    # above what the process has mapped when the call starts
CPU_SECONDS = 30
WALL_SECONDS = 45
MAX_CALLS = 500             # documents one process reads before a fresh one takes over
SPARE_AHEAD = 25            # documents before MAX_CALLS when the successor starts: about its
                            # import's time at a backlog's pace; until then no second process
MAX_GROWTH = 256 << 20      # mapped beyond its start after a call: replaced
START_SECONDS = 120         # for a new process to import WARM_MODULES (seconds on a loaded machine)
WARM_MODULES = ("parsers.readers",)
QUEUED_BYTES = 96 << 10     # handed over ahead behind the document being read: half the pipe's
                            # buffer (212,992 bytes on Linux), so a send never blocks


class SandboxUnavailable(Exception):
    """The sandbox process did not start: it had not imported the readers after START_SECONDS,
    or died doing so. The machine's trouble, not the document's: the email fails as a whole
    (pipeline/failures.py: kept, retried later), and no county is told its file is at fault."""


def run_limited(func, *args, memory: int = MEMORY_BYTES, cpu: int = CPU_SECONDS,
                wall: float = WALL_SECONDS):
    """func(*args) in the sandbox process; its value, or the UnreadableFile / NotAForm it
    raised. Any other failure (killed, out of memory, out of time, a bug) becomes
    UnreadableFile. `func` must be a module-level function (it is sent by name)."""
    return Call(func, args, memory, cpu).result(wall)


def read_ahead(func, arg_lists: list[tuple], memory: int = MEMORY_BYTES,
               cpu: int = CPU_SECONDS) -> list[Call]:
    """func(*args) for each of `arg_lists`, handed to the sandbox now without waiting, when it
    is idle: the calls sent, in order (maybe fewer than asked, or none). Take each one's result
    with `Call.result`, or `Call.drop` it."""
    with _lock:
        process = _ready_process(busy_ok=False)
        if process is None:
            return []
        calls: list[Call] = []
        queued = 0
        for args in arg_lists:
            size = sum(len(a) for a in args if isinstance(a, (bytes, bytearray)))
            if calls and queued + size > QUEUED_BYTES:   # the first is read at once: not queued
                break
            queued += size if calls else 0
            call = Call(func, args, memory, cpu)
            process.send(call)
            if call.outcome is not None or _current is not process:   # it died meanwhile
                break
            calls.append(call)
        return calls


def warm() -> None:
    """Start the sandbox process now unless one is ready, so that its start (the readers'
    import) overlaps the caller's own work instead of delaying the first document."""
    with _lock:
        if _current is None or not _current.usable():
            _ready_process(busy_ok=True)


def wait_ready(seconds: float | None = None) -> None:
    """Wait, at most `seconds` (START_SECONDS), until the process `warm` started has imported
    its readers; nothing is raised (a process that died starting is replaced by the first call)."""
    with _lock:
        if _current is not None and _current.usable():
            _current.wait_ready(START_SECONDS if seconds is None else seconds)


def share_loaded() -> None:
    """The worker has just loaded modules that calls will use (the OCR models): the next call
    starts a fresh process that shares them, unless the one running was started after them."""
    global _shared_modules
    _shared_modules = len(sys.modules)


def shutdown() -> None:
    """Stop the sandbox process (and a successor started ahead), if this process started them;
    the next call starts another."""
    _stop_current()
    spare = _take_spare()
    if spare is not None:
        spare.stop()


def _stop_current() -> None:
    global _current
    if _current is not None and _current.owner == os.getpid():
        _current.stop()
    _current = None


class Call:
    """One parser call in the sandbox: sent ahead (`read_ahead`) or when its result is asked for."""

    def __init__(self, func, args: tuple, memory: int, cpu: int):
        self.func, self.args, self.memory, self.cpu = func, args, memory, cpu
        self.process: _Process | None = None   # where it waits or runs; None: not sent (again)
        self.sent = 0.0            # when it was sent (monotonic clock, shared by both processes)
        self.asked: float | None = None        # when its result was asked for
        self.wall = WALL_SECONDS
        self.took = 0.0            # from when the process started it to its result
        self.outcome: tuple[bool, object] | None = None
        self.dropped = False

    def result(self, wall: float = WALL_SECONDS):
        """Its value, or the UnreadableFile / NotAForm it ended in, waiting for it at most `wall`
        seconds from when the sandbox started it (and from now)."""
        with _lock:
            self.asked, self.wall = time.monotonic(), wall
            while self.outcome is None:
                if self.process is None:
                    _ready_process(busy_ok=True).send(self)
                else:
                    self.process.wait_for(self)
            (ok, value), self.outcome, self.args = self.outcome, None, ()
        if self.took > wall:   # read ahead, it ended after the time it would have been given
            raise UnreadableFile(TOO_SLOW)
        if ok:
            return value
        raise value

    def drop(self) -> None:
        """Its result is not wanted: thrown away when it comes."""
        with _lock:
            self.dropped, self.outcome, self.args = True, None, ()

    def settle(self, ok: bool, value) -> None:
        self.process = None
        if not self.dropped:
            self.outcome = (ok, value)


def _ready_process(busy_ok: bool) -> _Process | None:
    """The sandbox process, started if need be, with nothing running that no one waits for:
    one still reading a document nobody has asked for yet is replaced (or, when not
    `busy_ok`, None is returned instead)."""
    global _current
    if _current is not None and _current.usable():
        _current.drain()
        if _current is not None and not _current.pending:
            return _current
        if _current is not None and not busy_ok:
            return None
    _stop_current()
    _current = _successor()
    return _current


def _successor() -> _Process:
    """The process started ahead (`_start_spare`) if it can serve, else a new one."""
    return _take_spare() or _Process()


def _start_spare() -> None:
    global _spare
    _spare = _take_spare() or _Process()


def _take_spare() -> _Process | None:
    """The process started ahead, taken, if it can serve; one that cannot is killed."""
    global _spare
    spare, _spare = _spare, None
    if spare is not None and spare.usable():
        return spare
    if spare is not None and spare.owner == os.getpid():
        spare.kill()
    return None


def _retire(process: _Process) -> None:
    """Stop `process`; the calls waiting in it are sent again when their results are asked for."""
    global _current
    process.kill()
    if _current is process:
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
        self.pending: deque[Call] = deque()   # sent, result not yet taken in, in order
        self.ready = False       # its first message (WARM_MODULES imported) taken in
        self.ready_at = 0.0      # when it was ready
        self.finished = 0.0      # when the process sent its last result (or was ready)
        self.closed = False
        self.calls_sent = 0      # it ends itself after MAX_CALLS

    def usable(self) -> bool:
        return (self.owner == os.getpid() and self.modules >= _shared_modules
                and self.child.is_alive())

    def send(self, call: Call) -> None:
        call.process, call.sent = self, time.monotonic()
        self.pending.append(call)
        self.calls_sent += 1
        try:
            self.conn.send((call.func, call.args, call.memory, call.cpu))
        except OSError:   # it died: the call it was reading is blamed; calls read ahead are not
            if self.pending[0] is call:
                self._fail()
            else:
                _retire(self)
        if self.calls_sent == MAX_CALLS - SPARE_AHEAD:   # forked once the call is on its way
            _start_spare()

    def wait_for(self, call: Call) -> None:
        """Take in results, in order, until `call`'s has come, it failed, or `call` must be
        sent again (to a fresh process: a call before it that no one has asked for is still
        running)."""
        while call.process is self:
            head = self.pending[0]
            if not self.ready:   # still importing: no call's time has started
                if not self.conn.poll(START_SECONDS):
                    self._fail_start(call, f"did not start within {START_SECONDS} s")
                    return
                if not self._took_start():
                    self._fail_start(call, "died while starting")
                    return
                continue
            if head is call:
                if not self.conn.poll(max(0.0, self._deadline(call) - time.monotonic())):
                    self._fail(TOO_SLOW)
                    return
            elif not self.conn.poll(0):
                _retire(self)
                return
            self._receive()

    def wait_ready(self, seconds: float) -> None:
        if self.ready or self.pending or self.closed:
            return
        try:
            if self.conn.poll(seconds):
                self._took_ready(self.conn.recv())
        except (EOFError, OSError):   # it died starting: the next call starts another
            _retire(self)

    def drain(self) -> None:
        """Take in the results that have come, without waiting."""
        while self.pending and not self.closed and self.conn.poll(0):
            self._receive()

    def _took_ready(self, when: float) -> None:
        self.ready, self.ready_at, self.finished = True, when, when

    def _deadline(self, call: Call) -> float:
        started = max(call.sent, self.finished)   # the call before it ended then
        return min(started, max(call.asked, self.ready_at)) + call.wall

    def _took_start(self) -> bool:
        """Its first message taken in (it has imported the readers); False if it died first."""
        try:
            self._took_ready(self.conn.recv())
        except (EOFError, OSError):
            return False
        return True

    def _fail_start(self, call: Call, what: str) -> None:
        """It did not start: no document's fault, so none is told it is damaged or too slow.
        The call waited for ends in SandboxUnavailable (its email fails and is retried later);
        the others are sent again when their results are asked for."""
        self.pending.remove(call)
        call.settle(False, SandboxUnavailable(f"the document reader (sandbox process) {what}"))
        _retire(self)

    def _receive(self) -> None:
        if not self.ready:   # it has started: the first call's time counts from now
            if not self._took_start():
                _retire(self)   # died starting: the calls are sent again, to a fresh process
            return
        try:
            message = self.conn.recv()
        except (EOFError, OSError):
            self._fail()
            return
        ok, value, keep, finished = message
        call = self.pending.popleft()
        call.took, self.finished = finished - max(call.sent, self.finished), finished
        call.settle(ok, value)
        if not keep:
            _retire(self)

    def _fail(self, reason: str = "") -> None:
        """The call being read failed (by how the process died, without `reason`): it alone is
        blamed; the process is replaced."""
        self.pending.popleft().settle(False, UnreadableFile(reason or self._death_reason()))
        _retire(self)

    def _death_reason(self) -> str:
        self.child.join(1)
        return TOO_SLOW if self.child.exitcode == -signal.SIGXCPU else CRASHED   # the CPU limit

    def stop(self) -> None:
        if not self.closed:
            self.drain()
        self.kill()

    def kill(self) -> None:
        """End the process; calls still waiting in it are left to be sent again."""
        if self.closed:
            return
        self.closed = True
        self.conn.close()        # an idle process sees the end of its pipe and exits
        self.child.kill()
        self.child.join()
        for call in self.pending:
            call.process = None
        self.pending.clear()


_lock = threading.RLock()
_current: _Process | None = None
_spare: _Process | None = None   # the successor, started ahead of MAX_CALLS
_shared_modules = 0   # len(sys.modules) when the worker last called share_loaded


@atexit.register
def _stop_at_exit() -> None:
    # Runs before multiprocessing's own exit hook (registered earlier, at the import above),
    # which would wait for a process that need not heed the SIGTERM it sends.
    with _lock:
        shutdown()


# ---- the sandbox process ----------------------------------------------------------------------

def _serve(conn) -> None:
    _detach(conn.fileno())
    for name in WARM_MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 — each call that needs it fails on its own import
            pass
    start = _mapped_bytes()
    try:
        conn.send(time.monotonic())   # ready
    except OSError:
        return
    for calls in range(1, MAX_CALLS + 1):
        try:
            func, args, memory, cpu = conn.recv()
        except (EOFError, OSError):
            return
        ok, value, clean = _run(func, args, memory, cpu)
        keep = clean and calls < MAX_CALLS and _mapped_bytes() - start < MAX_GROWTH
        conn.send((ok, value, keep, time.monotonic()))
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
