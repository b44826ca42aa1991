"""Legacy word-processor files (.doc, .wps, .rtf, .odt) → .docx, and binary spreadsheets
(.xls, .et) → .xlsx, through LibreOffice headless.

All the files of one email go through one soffice call, so a dozen .doc files pay one cold
start. Each call gets a private profile (two soffice processes sharing one would block each
other), ASCII file names, resource limits and a timeout that kills the whole process group.
"""
from __future__ import annotations

import logging
import os
import resource
import shutil
import signal
import subprocess
import tempfile
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
    with tempfile.TemporaryDirectory(prefix="intake-convert-") as tmp:
        work = Path(tmp)
        inputs = _write_inputs(work / "in", files)
        seconds = BASE_SECONDS + SECONDS_PER_FILE * len(files)
        if max_seconds is not None:
            seconds = max(1, min(seconds, int(max_seconds)))
        timed_out = _run(soffice, work, inputs, seconds, f"{target}:{filter_name}")
        reason = timed_out_reason if timed_out else failed
        return [_output(work / "out" / f"{path.stem}.{target}", reason) for path in inputs]


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
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds + 1))


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
