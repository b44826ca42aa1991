#!/usr/bin/env python3
"""Render a sample daily digest with headless Chromium to docs/digest.png, for the README.

    .venv/bin/python scripts/digest_screenshot.py [--width 800] [--out docs/digest.png] [--keep DIR]
    .venv/bin/python scripts/digest_screenshot.py --width 390 --out docs/digest-390.png   # a phone

The page is shown in an iframe of the given width (headless Chromium will not make a window
narrower than 500 px), which is also how tests/e2e/test_digest_layout.py measures it.

It builds a throwaway store from the demo's county emails (plus a sender nobody registered),
renders the digest HTML exactly as it is mailed (the chart's cid: swapped for a file) and
photographs it. Installs Debian's `chromium` and `fonts-noto-cjk` when they are missing.
"""
from __future__ import annotations

import argparse
import datetime as dt
import html as html_lib
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from PIL import Image  # noqa: E402

from outbox.digest import CHART_CID, chart_png, render_digest  # noqa: E402
from pipeline import sample_mail, samples  # noqa: E402
from pipeline.demo import demo_settings, seed_emails, write_maildir  # noqa: E402
from pipeline.digest import build_figures  # noqa: E402
from pipeline.poll import run_pass  # noqa: E402
from pipeline.settings import load_settings  # noqa: E402
from store.repository import Store  # noqa: E402

WIDTH = 800
MAX_BYTES = 300_000
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--hide-scrollbars", "--force-device-scale-factor=1")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "docs" / "digest.png"))
    parser.add_argument("--width", type=int, default=WIDTH, help="The screen's width in CSS pixels.")
    parser.add_argument("--keep", help="Keep the rendered HTML and the sample store in this directory.")
    args = parser.parse_args()
    chromium = ensure_chromium()
    work = Path(args.keep or tempfile.mkdtemp(prefix="intake-digest-shot-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        page = write_sample_digest(work)
        shoot(chromium, page, Path(args.out), work, args.width)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {args.out} ({Path(args.out).stat().st_size // 1024} KB)")
    return 0


def ensure_chromium() -> str:
    """Debian's chromium and a CJK font, installed with apt-get when missing."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    missing = [] if chromium else ["chromium"]
    if not _has_cjk_font():
        missing.append("fonts-noto-cjk")
    if missing:
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run([*sudo, "apt-get", "update", "-q"], check=True, env=env)
        subprocess.run([*sudo, "apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
                       check=True, env=env)
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        raise SystemExit("chromium is not installed and could not be installed")
    return chromium


def _has_cjk_font() -> bool:
    if not shutil.which("fc-list"):
        return False
    found = subprocess.run(["fc-list", ":lang=zh"], capture_output=True, text=True).stdout
    return bool(found.strip())


def write_sample_digest(work: Path) -> Path:
    """A store seeded through the real pass, and its digest five days before the deadline: the
    demo's county emails, a form from a sender nobody registered (a long address) and two
    clerks' questions."""
    settings = demo_settings(load_settings(REPO / "config" / "intake.toml"), work)
    emails = seed_emails(settings)
    day = emails[0][1]
    ours = settings.smtp.from_address
    emails.append((sample_mail.foxmail_email("wang.xiaoming.dianzixinxi2022@qq.com", ours, "推荐表",
                                             [("推荐表.docx", samples.build_form_docx(samples.SAMPLE_CANDIDATES[3]))]),
                   day + dt.timedelta(hours=2)))
    emails.append((sample_mail.client_reply("outlook", settings.counties[1].senders[0], ours,
                                            "罗老师您好，请问调研报告是否有字数要求？另外盖章的纸质推荐表是否需要寄到市工信局218室？",
                                            subject=f"【已受理】{settings.counties[1].name} 信息技术能手推荐表"),
                   day + dt.timedelta(hours=2, minutes=5)))
    emails.append((sample_mail.client_reply("qq", settings.counties[4].senders[0], ours,
                                            "我区人选李华的纪检监察部门意见还在走流程，能否延后两三天报送？谢谢！",
                                            subject=f"【需补正】{settings.counties[4].name} 信息技术能手推荐材料"),
                   day + dt.timedelta(hours=2, minutes=9)))
    write_maildir(settings.mailbox.path, emails)
    store = Store(settings.store.path, settings.store.files)
    try:
        run_pass(settings, store, clock=lambda: day + dt.timedelta(hours=3))
        date = settings.campaign.submission_deadline - dt.timedelta(days=5)
        figures = build_figures(store, settings, date, dt.datetime.now(dt.timezone.utc))
    finally:
        store.close()
    (work / "chart.png").write_bytes(chart_png(figures))
    html = render_digest(figures)[1].replace(f"cid:{CHART_CID[1:-1]}", "chart.png")
    page = work / "digest.html"
    page.write_text(html, encoding="utf-8")
    return page


def framed(page: Path, width: int, height: int = 4000) -> Path:
    """A page showing `page` in an iframe `width` CSS pixels wide, which writes the digest's
    scroll width and visible width into its body's data-scroll attribute once loaded."""
    wrapper = page.with_name(f"framed-{width}.html")
    wrapper.write_text(
        f'<!DOCTYPE html><html><body style="margin:0;background:#ffffff">'
        f'<iframe id="digest" style="display:block;width:{width}px;height:{height}px;border:0" '
        f'srcdoc="{html_lib.escape(page.read_text(encoding="utf-8"), quote=True)}"></iframe>'
        "<script>window.addEventListener('load', () => { const d = document.getElementById('digest')"
        ".contentDocument.documentElement; document.body.setAttribute('data-scroll', "
        "d.scrollWidth + ' ' + d.clientWidth); });</script></body></html>", encoding="utf-8")
    return wrapper


def measure(chromium: str, page: Path, width: int, work: Path) -> tuple[int, int]:
    """(document.scrollWidth, the visible width) of `page` on a screen `width` pixels wide:
    the first above the second means the reader has to scroll sideways."""
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=work)
    dom = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                          f"--window-size={max(width, 800)},1000", "--dump-dom",
                          framed(page, width).as_uri()],
                         check=True, capture_output=True, text=True, timeout=120).stdout
    found = re.search(r'data-scroll="(\d+) (\d+)"', dom)
    if not found:
        raise RuntimeError("chromium did not report the page's width")
    return int(found.group(1)), int(found.group(2))


def shoot(chromium: str, page: Path, out: Path, work: Path, width: int = WIDTH) -> None:
    raw = work / "shot.png"
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=work)
    subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                    f"--screenshot={raw}", f"--window-size={max(width, 800)},4000",
                    framed(page, width).as_uri()],
                   check=True, capture_output=True, timeout=120)
    image = Image.open(raw).convert("RGB").crop((0, 0, width, 4000))
    image = _trim(image)
    out.parent.mkdir(parents=True, exist_ok=True)
    for colours in (256, 128, 64):
        buffer = io.BytesIO()
        image.quantize(colors=colours).save(buffer, format="PNG", optimize=True)
        if len(buffer.getvalue()) < MAX_BYTES:
            break
    out.write_bytes(buffer.getvalue())


def _trim(image: Image.Image) -> Image.Image:
    """Cut the empty page below the digest (rows of the page's background colour)."""
    background = image.getpixel((image.width - 1, image.height - 1))
    pixels = image.load()
    bottom = image.height
    while bottom > 1 and all(pixels[x, bottom - 1] == background for x in range(0, image.width, 4)):
        bottom -= 1
    return image.crop((0, 0, image.width, min(bottom + 16, image.height)))


if __name__ == "__main__":
    sys.exit(main())
