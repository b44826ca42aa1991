"""Run a parser in a forked child with memory, CPU and wall-clock limits, so a hostile or
pathological file costs one child, never the worker. Every document reader runs here, called
from parsers/attachments.py's `_read_document`.

The child inherits the parent's memory copy-on-write, so a call costs a few milliseconds.
"""
from __future__ import annotations

import multiprocessing
import os
import resource

from parsers.errors import NotAForm, UnreadableFile

TOO_SLOW = "文件处理超时（内容过于复杂或已损坏）"
TOO_BIG = "文件内容过大，超出系统处理能力"
CRASHED = "文件已损坏，无法读取"

MEMORY_BYTES = 768 << 20    # above what the child already has mapped
CPU_SECONDS = 30
WALL_SECONDS = 45


def run_limited(func, *args, memory: int = MEMORY_BYTES, cpu: int = CPU_SECONDS,
                wall: float = WALL_SECONDS):
    """func(*args) in a child; its value, or the UnreadableFile / NotAForm it raised.
    Any other failure of the child (killed, out of memory, a bug) becomes UnreadableFile."""
    ctx = multiprocessing.get_context("fork")
    receiver, sender = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child, args=(sender, func, args, memory, cpu), daemon=True)
    child.start()
    sender.close()
    try:
        if not receiver.poll(wall):
            raise UnreadableFile(TOO_SLOW)
        ok, value = receiver.recv()
    except (EOFError, OSError):
        raise UnreadableFile(_death_reason(child)) from None
    finally:
        child.kill()
        child.join()
        receiver.close()
    if ok:
        return value
    raise value


def _child(sender, func, args, memory: int, cpu: int) -> None:
    _limit(memory, cpu)
    try:
        result = (True, func(*args))
    except (UnreadableFile, NotAForm) as exc:
        result = (False, exc)
    except MemoryError:
        result = (False, UnreadableFile(TOO_BIG))
    except Exception:  # noqa: BLE001 — a parser library's crash on a bad file is the file's fault
        result = (False, UnreadableFile(CRASHED))
    sender.send(result)
    sender.close()


def _limit(memory: int, cpu: int) -> None:
    mapped = _mapped_bytes()
    resource.setrlimit(resource.RLIMIT_AS, (mapped + memory, mapped + memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))


def _mapped_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _death_reason(child) -> str:
    child.join(1)
    return TOO_SLOW if child.exitcode == -24 else CRASHED   # -24: SIGXCPU, the CPU limit
