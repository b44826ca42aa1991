"""Legacy word-processor files (.doc, .wps, .rtf, .odt) → .docx, and binary spreadsheets
(.xls, .et) → .xlsx, through LibreOffice headless.

All the files of one email go through one soffice call, so a dozen .doc files pay one cold
start. Each call gets a private profile (two soffice processes sharing one would block each
other), ASCII file names, resource limits and a timeout that kills the whole process group.

The long-running worker (`intake run`) keeps one LibreOffice running instead (`warm_office`):
started at the first legacy file with its own private profile and the same memory limit,
listening on a private UNO pipe, driven by parsers/uno_convert.py under the system python3
(python3-uno), for documents and spreadsheets alike. A conversion then costs what LibreOffice
spends on the file, not a start-up of 1–3 s. A file that outlives its time gets TIMED_OUT and
the LibreOffice is killed (its whole process group) and started afresh for the next; so is one
that died or stopped answering, and one that has grown past RESTART_RSS_BYTES or converted
RESTART_AFTER files is replaced before the next file. Where python3-uno is missing, every call
starts its own soffice as above.
"""
from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import resource
import select
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from parsers.errors import UnreadableFile

log = logging.getLogger("intake.convert")

FAILED = "文件无法转换（可能已损坏或设置了打开密码），请用 Word 另存为 .docx 后重新发送"
TIMED_OUT = "文件转换超时（可能已损坏或过于复杂），请用 Word 另存为 .docx 后重新发送"
NO_CONVERTER = "系统暂时无法读取旧版 Word/WPS 文件，请用 Word 另存为 .docx 后重新发送"
# The same for a spreadsheet: what went wrong, and how to save it so that it can be read.
SHEET_FAILED = "表格文件无法转换（可能已损坏或设置了打开密码），请用 Excel 或 WPS 表格另存为 .xlsx 后重新发送"
SHEET_TIMED_OUT = "表格文件转换超时（可能已损坏或过于复杂），请用 Excel 或 WPS 表格另存为 .xlsx 后重新发送"
SHEET_NO_CONVERTER = "系统暂时无法读取旧版 Excel/WPS 表格文件，请另存为 .xlsx 后重新发送"
_REASONS = {"docx": (FAILED, TIMED_OUT, NO_CONVERTER),
            "xlsx": (SHEET_FAILED, SHEET_TIMED_OUT, SHEET_NO_CONVERTER)}

BASE_SECONDS = 40          # a cold start with a fresh profile takes 1–3 s; this is for a slow box
SECONDS_PER_FILE = 10
MEMORY_BYTES = 4 << 30     # address space per process: soffice maps much more than it touches
_SOFFICE_NAMES = ("soffice", "libreoffice")
UNO_PYTHON = "/usr/bin/python3"    # the python python3-uno belongs to (not intake's venv)
UNO_HELPER = Path(__file__).with_name("uno_convert.py")
START_SECONDS = 60                 # a warm LibreOffice's start-up, on a slow box
RESTART_AFTER = 200                # files a warm LibreOffice converts before it is replaced
RESTART_RSS_BYTES = 1 << 30        # resident memory past which it is replaced before the next file
_PAGE = os.sysconf("SC_PAGE_SIZE")

_warm: "WarmOffice | None" = None


def to_docx(files: list[tuple[bytes, str]], max_seconds: float | None = None) -> list[bytes | UnreadableFile]:
    """Each (data, extension) converted to .docx bytes, or the UnreadableFile saying why not;
    in the order given. soffice is killed after 40 s + 10 s a file, or `max_seconds` if sooner."""
    return _converted(files, "docx", "MS Word 2007 XML", max_seconds)


def to_xlsx(files: list[tuple[bytes, str]], max_seconds: float | None = None) -> list[bytes | UnreadableFile]:
    """Each (data, extension) spreadsheet converted to .xlsx bytes, or why not."""
    return _converted(files, "xlsx", "Calc MS Excel 2007 XML", max_seconds)


def _converted(files: list[tuple[bytes, str]], target: str, filter_name: str,
               max_seconds: float | None) -> list[bytes | UnreadableFile]:
    if not files:
        return []
    failed, timed_out_reason, no_converter = _REASONS[target]
    soffice = _soffice()
    if soffice is None:
        log.warning("LibreOffice (soffice) not found: legacy documents cannot be read")
        return [UnreadableFile(no_converter) for _ in files]
    seconds = BASE_SECONDS + SECONDS_PER_FILE * len(files)
    if max_seconds is not None:
        seconds = max(1, min(seconds, int(max_seconds)))
    if _warm is not None:
        return _warm.convert(files, target, filter_name, seconds)
    with tempfile.TemporaryDirectory(prefix="intake-convert-") as tmp:
        work = Path(tmp)
        inputs = _write_inputs(work / "in", files)
        timed_out = _run(soffice, work, inputs, seconds, f"{target}:{filter_name}")
        reason = timed_out_reason if timed_out else failed
        return [_output(work / "out" / f"{path.stem}.{target}", reason) for path in inputs]


@contextlib.contextmanager
def warm_office():
    """Inside, conversions go to one LibreOffice kept running (started when first needed); as
    the WarmOffice, or None where there is no python3-uno."""
    global _warm
    soffice = _soffice()
    if soffice is None or not uno_available():
        log.info("python3-uno not found: each legacy document starts its own LibreOffice")
        yield None
        return
    _warm = WarmOffice(soffice)
    try:
        yield _warm
    finally:
        office, _warm = _warm, None
        office.close()


@functools.cache
def uno_available() -> bool:
    try:
        return subprocess.run([UNO_PYTHON, "-c", "import uno"], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class WarmOffice:
    """One LibreOffice with a private profile, listening on a private pipe, and the UNO client
    (parsers/uno_convert.py) that hands it one file at a time. Before each file it is replaced
    when it has died, holds more than RESTART_RSS_BYTES or has converted RESTART_AFTER files
    (LibreOffice's caches and leaks grow with the documents it has seen)."""

    def __init__(self, soffice: str):
        self.soffice = soffice
        self.work: Path | None = None
        self.office: subprocess.Popen | None = None
        self.client: subprocess.Popen | None = None
        self.pipe = ""      # the UNO pipe the running LibreOffice listens on
        self.converted = 0  # files this LibreOffice has been given
        self._buffer = b""

    def convert(self, files: list[tuple[bytes, str]], target: str, filter_name: str,
                seconds: float) -> list[bytes | UnreadableFile]:
        """Each (data, extension) converted to `target` with `filter_name`, all within
        `seconds`; in the order given."""
        deadline = time.monotonic() + seconds
        return [self._one(data, ext, target, filter_name, deadline) for data, ext in files]

    def _one(self, data: bytes, ext: str, target: str, filter_name: str,
             deadline: float) -> bytes | UnreadableFile:
        failed, timed_out, _ = _REASONS[target]
        try:
            self._replace_if_unwell()
            if self.client is None:
                self._start(deadline)
            # ASCII names in the LibreOffice's own folder, reused from file to file.
            source, result = self.work / f"in.{ext}", self.work / f"out.{target}"
            source.write_bytes(data)
            result.unlink(missing_ok=True)
            self.converted += 1
            self._send({"in": str(source), "out": str(result), "filter": filter_name})
            answer = self._answer(deadline)
        except TimeoutError:
            log.warning("LibreOffice took too long over a .%s file: killed, restarted for the next file", ext)
            self.close()
            return UnreadableFile(timed_out)
        except OSError as exc:   # it died, or never came up
            log.warning("LibreOffice stopped answering (%s): restarted for the next file", exc)
            self.close()
            return UnreadableFile(failed)
        if not answer.get("ok") and self.office is not None and self.office.poll() is not None:
            self.close()   # the file took LibreOffice down with it
        output = _output(result, failed)
        source.unlink(missing_ok=True)
        result.unlink(missing_ok=True)
        return output

    def _replace_if_unwell(self) -> None:
        if self.client is None:
            return
        if self.office.poll() is not None or self.client.poll() is not None:
            why = "it had exited"
        elif self.converted >= RESTART_AFTER:
            why = f"after {self.converted} files"
        elif self.rss() > RESTART_RSS_BYTES:
            why = f"it held {self.rss() >> 20} MiB"
        else:
            return
        log.info("LibreOffice restarted: %s", why)
        self.close()

    def rss(self) -> int:
        """Resident bytes of the running LibreOffice: its launcher and the soffice.bin it started."""
        if self.office is None:
            return 0
        pids = [str(self.office.pid)]
        for children in Path(f"/proc/{self.office.pid}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                pids += children.read_text().split()
        total = 0
        for pid in pids:
            with contextlib.suppress(OSError, IndexError, ValueError):
                total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE
        return total

    def _start(self, deadline: float) -> None:
        self.work = Path(tempfile.mkdtemp(prefix="intake-office-"))
        self.pipe = pipe = f"intake-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self.office = subprocess.Popen(
            [self.soffice, "--headless", "--invisible", "--norestore", "--nologo", "--nodefault",
             "--nolockcheck", f"-env:UserInstallation={(self.work / 'profile').as_uri()}",
             f"--accept=pipe,name={pipe};urp;StarOffice.ComponentContext"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            cwd=self.work, start_new_session=True, env=_environment(self.work),
            preexec_fn=_limit_memory)
        self.client = subprocess.Popen(
            [UNO_PYTHON, str(UNO_HELPER), pipe, str(START_SECONDS)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=self.work, start_new_session=True)
        self._buffer = b""
        self.converted = 0
        if not self._answer(max(deadline, time.monotonic() + START_SECONDS)).get("ready"):
            raise OSError("LibreOffice did not start")

    def _send(self, request: dict) -> None:
        self.client.stdin.write(json.dumps(request).encode("utf-8") + b"\n")
        self.client.stdin.flush()

    def _answer(self, deadline: float) -> dict:
        fd = self.client.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError
            chunk = os.read(fd, 4096)
            if not chunk:
                raise OSError("the UNO client exited")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def close(self) -> None:
        for proc in (self.client, self.office):
            if proc is not None:
                _kill_group(proc)
        if self.client is not None:
            for stream in (self.client.stdin, self.client.stdout):
                with contextlib.suppress(OSError):
                    stream.close()
        self.client = self.office = None
        if self.work is not None:
            shutil.rmtree(self.work, ignore_errors=True)
            self.work = None


def _soffice() -> str | None:
    return next(filter(None, map(shutil.which, _SOFFICE_NAMES)), None)


def _write_inputs(folder: Path, files: list[tuple[bytes, str]]) -> list[Path]:
    # ASCII names: soffice mangles non-ASCII arguments under a C locale.
    folder.mkdir()
    paths = []
    for i, (data, ext) in enumerate(files):
        path = folder / f"f{i}.{ext}"
        path.write_bytes(data)
        paths.append(path)
    return paths


def _run(soffice: str, work: Path, inputs: list[Path], seconds: int, target: str) -> bool:
    """One soffice call converting every input; True when it had to be killed."""
    cmd = [soffice, "--headless", "--invisible", "--norestore", "--nologo", "--nodefault",
           "--nolockcheck", f"-env:UserInstallation={(work / 'profile').as_uri()}",
           "--convert-to", target, "--outdir", str(work / "out"),
           *map(str, inputs)]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=work, start_new_session=True,
                            env=_environment(work),
                            preexec_fn=lambda: _limit(seconds))
    try:
        proc.wait(timeout=seconds)
        return False
    except subprocess.TimeoutExpired:
        log.warning("soffice took over %ss for %d file(s): killed", seconds, len(inputs))
        return True
    finally:
        _kill_group(proc)


def _environment(work: Path) -> dict:
    """HOME and every temp folder inside the private work folder: soffice leaves its lu*.tmp
    folders and OSL_PIPE sockets there when it is killed, and the folder goes with the call."""
    (work / "tmp").mkdir(exist_ok=True)
    tmp = str(work / "tmp")
    return {**os.environ, "HOME": str(work), "TMPDIR": tmp, "TMP": tmp, "TEMP": tmp}


def _limit(seconds: int) -> None:
    _limit_memory()
    resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds + 1))


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))


def _kill_group(proc: subprocess.Popen) -> None:
    """soffice is a script that starts oosplash and soffice.bin: kill the whole group."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _output(out: Path, reason: str) -> bytes | UnreadableFile:
    if out.is_file() and out.stat().st_size > 0:
        return out.read_bytes()
    return UnreadableFile(reason)
