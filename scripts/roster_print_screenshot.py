#!/usr/bin/env python3
"""The roster .xlsx as it prints: LibreOffice → PDF → the first page as PNG (pdftoppm), into
docs/roster-print.png for the README.

    .venv/bin/python scripts/roster_print_screenshot.py [--out docs/roster-print.png] [--keep DIR]

It uses the sample store of scripts/digest_screenshot.py (the demo's county emails through the
real pass) and the digest's own attachment builder. Needs LibreOffice and poppler-utils
(scripts/test installs both).
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from digest_screenshot import write_sample_digest  # noqa: E402
from pipeline.demo import demo_settings  # noqa: E402
from pipeline.exports import roster_xlsx  # noqa: E402
from pipeline.settings import load_settings  # noqa: E402
from store.repository import Store  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "docs" / "roster-print.png"))
    parser.add_argument("--keep", help="Keep the .xlsx, the PDF and the sample store in this directory.")
    args = parser.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="intake-roster-print-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        write_sample_digest(work)
        settings = demo_settings(load_settings(REPO / "config" / "intake.toml"), work)
        store = Store(settings.store.path, settings.store.files)
        try:
            xlsx = work / "roster.xlsx"
            xlsx.write_bytes(roster_xlsx(store.candidates.all(), store.submissions.all(), settings))
        finally:
            store.close()
        subprocess.run(["soffice", f"-env:UserInstallation=file://{work}/lo-profile", "--headless",
                        "--convert-to", "pdf", "--outdir", str(work), str(xlsx)],
                       check=True, capture_output=True, timeout=180)
        subprocess.run(["pdftoppm", "-png", "-r", "110", "-f", "1", "-l", "1", "-singlefile",
                        str(work / "roster.pdf"), str(work / "page")], check=True, timeout=60)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(work / "page.png", args.out)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {args.out} ({Path(args.out).stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
