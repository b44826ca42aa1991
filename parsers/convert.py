"""Legacy word-processor files (.doc, .wps, .rtf, .odt) → .docx through LibreOffice headless.

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

BASE_SECONDS = 40          # a cold start with a fresh profile takes 1–3 s; this is for a slow box
SECONDS_PER_FILE = 10
MEMORY_BYTES = 4 << 30     # address space per process: soffice maps much more than it touches
_SOFFICE_NAMES = ("soffice", "libreoffice")


def to_docx(files: list[tuple[bytes, str]], max_seconds: float | None = None) -> list[bytes | UnreadableFile]:
    """Each (data, extension) converted to .docx bytes, or the UnreadableFile saying why not;
    in the order given. soffice is killed after 40 s + 10 s a file, or `max_seconds` if sooner."""
    if not files:
        return []
    soffice = _soffice()
    if soffice is None:
        log.warning("LibreOffice (soffice) not found: legacy documents cannot be read")
        return [UnreadableFile(NO_CONVERTER) for _ in files]
    with tempfile.TemporaryDirectory(prefix="intake-convert-") as tmp:
        work = Path(tmp)
        inputs = _write_inputs(work / "in", files)
        seconds = BASE_SECONDS + SECONDS_PER_FILE * len(files)
        if max_seconds is not None:
            seconds = max(1, min(seconds, int(max_seconds)))
        timed_out = _run(soffice, work, inputs, seconds)
        return [_output(work / "out", path, timed_out) for path in inputs]


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


def _run(soffice: str, work: Path, inputs: list[Path], seconds: int) -> bool:
    """One soffice call converting every input; True when it had to be killed."""
    cmd = [soffice, "--headless", "--invisible", "--norestore", "--nologo", "--nodefault",
           "--nolockcheck", f"-env:UserInstallation={(work / 'profile').as_uri()}",
           "--convert-to", "docx:MS Word 2007 XML", "--outdir", str(work / "out"),
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


def _output(folder: Path, source: Path, timed_out: bool) -> bytes | UnreadableFile:
    out = folder / f"{source.stem}.docx"
    if out.is_file() and out.stat().st_size > 0:
        return out.read_bytes()
    return UnreadableFile(TIMED_OUT if timed_out else FAILED)
