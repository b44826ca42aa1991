"""Running the real `intake` command, as an operator would."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

INTAKE = Path(sys.executable).with_name("intake")


def intake(config: Path, *args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    assert INTAKE.exists(), "the intake console script is not installed: run scripts/test"
    return subprocess.run([str(INTAKE), "--config", str(config), *args], capture_output=True,
                          text=True, timeout=timeout, cwd=config.parent,
                          env={**os.environ, **(env or {})})


def exported(config: Path, env: dict | None = None) -> dict:
    result = intake(config, "export", "--format", "json", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def maildir_replies(path: Path) -> list[EmailMessage]:
    files = sorted((path / "new").glob("*.eml"), key=lambda p: p.stat().st_mtime_ns)
    return [BytesParser(policy=policy.default).parsebytes(f.read_bytes()) for f in files]


def body_text(msg: EmailMessage) -> str:
    return msg.get_body(("plain",)).get_content()
