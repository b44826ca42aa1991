#!/usr/bin/env python3
"""Screenshots of the replies counties receive, rendered by headless Chromium, into docs/.

    .venv/bin/python scripts/screenshots.py            # docs/reply-accepted.png, ...
    .venv/bin/python scripts/screenshots.py --out DIR

The replies are the real ones: sample county emails (a valid form, a form that needs correction,
a status query "查询") go through one pass of the pipeline on a throwaway Maildir, and the HTML
part of each reply is photographed. Reply kinds the pipeline does not produce are reported and
skipped. Installs Debian's chromium and fonts-noto-cjk when they are missing (root or sudo).
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
from email import policy
from email.parser import BytesParser
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pipeline import sample_mail  # noqa: E402
from pipeline.demo import demo_settings, seed_emails, write_maildir  # noqa: E402
from pipeline.poll import run_pass  # noqa: E402
from pipeline.settings import load_settings  # noqa: E402
from store.repository import Store  # noqa: E402

PACKAGES = {"chromium": "chromium", "fonts-noto-cjk": "/usr/share/fonts/opentype/noto"}
# Subject prefix of each reply kind → the PNG's name.
KINDS = {"【已受理】": "reply-accepted", "【需补正】": "reply-correction", "【进度查询】": "reply-status",
         "【未受理】": "reply-rejected", "【已撤回】": "reply-withdrawn"}
WIDTH, HEIGHT = 720, 2400  # about the reading pane of the 163 web client; cropped to the content


def ensure_packages() -> str:
    """The chromium binary, installing chromium and the CJK fonts with apt-get when missing."""
    missing = [pkg for pkg in PACKAGES if not _installed(pkg)]
    if missing:
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        print(f"screenshots: installing {' '.join(missing)} (apt-get)", file=sys.stderr)
        subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
                       check=True, env=env)
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if not binary:
        sys.exit("screenshots: chromium is not on PATH after installing it")
    return binary


def _installed(package: str) -> bool:
    result = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
    return result.stdout.strip() == "install ok installed"


def sample_replies(work: Path) -> dict[str, tuple[str, str]]:
    """{subject prefix: (subject, html)} of the replies one pass writes for the sample emails."""
    settings = demo_settings(load_settings(REPO / "config" / "intake.toml"), work)
    emails = seed_emails(settings)
    first_county = settings.counties[0]
    last = emails[-1][1]
    emails.append((sample_mail.foxmail_email(first_county.senders[0], settings.smtp.from_address, "查询"),
                   last + dt.timedelta(minutes=20)))
    write_maildir(settings.mailbox.path, emails)
    store = Store(settings.store.path, settings.store.files)
    try:
        run_pass(settings, store, clock=lambda: last + dt.timedelta(minutes=30))
    finally:
        store.close()
    replies = {}
    for path in sorted((settings.smtp.path / "new").glob("*.eml")):
        msg = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
        prefix = next((p for p in KINDS if str(msg["Subject"]).startswith(p)), None)
        if prefix and prefix not in replies:
            replies[prefix] = (str(msg["Subject"]), msg.get_body(("html",)).get_content())
    return replies


def screenshot(chromium: str, html: str, target: Path, work: Path) -> None:
    page = work / f"{target.stem}.html"
    page.write_text(html, encoding="utf-8")
    profile = tempfile.mkdtemp(prefix="chromium-", dir=work)
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}",
                    f"--screenshot={target}", f"--window-size={WIDTH},{HEIGHT}", page.as_uri()],
                   check=True, capture_output=True, timeout=120)
    _crop_to_content(target)


def _crop_to_content(target: Path, margin: int = 16) -> None:
    """Cut the empty page background below the email (Pillow, when installed)."""
    try:
        from PIL import Image, ImageChops
    except ImportError:
        return
    image = Image.open(target).convert("RGB")
    background = Image.new("RGB", image.size, image.getpixel((0, image.height - 1)))
    box = ImageChops.difference(image, background).getbbox()
    if box:
        image.crop((0, 0, image.width, min(image.height, box[3] + margin))).save(target, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs", help="where the PNGs go (default: docs/)")
    args = parser.parse_args()
    chromium = ensure_packages()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="intake-screens-") as tmp:
        work = Path(tmp)
        replies = sample_replies(work / "demo")
        for prefix, name in KINDS.items():
            if prefix not in replies:
                print(f"screenshots: no {prefix} reply among the samples; skipped", file=sys.stderr)
                continue
            subject, html = replies[prefix]
            target = args.out / f"{name}.png"
            screenshot(chromium, html, target, work)
            print(f"{target.relative_to(REPO) if target.is_relative_to(REPO) else target}"
                  f"  {target.stat().st_size // 1024} KB  {subject}")


if __name__ == "__main__":
    main()
