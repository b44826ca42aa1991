"""A small PNG bar chart of the places each county has used, for the digest's HTML (Pillow).

Drawn at twice the size it is shown, so it stays sharp on high-density screens. County names
need a font with Chinese glyphs; without one, bars are numbered and the digest lists the names.
"""
from __future__ import annotations

import functools
import io
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


SCALE = 2
WIDTH = 520                 # as shown, in CSS pixels
ROW, TOP, LABEL_W = 26, 34, 90
COLOURS = {"accepted": "#2e7d32", "needs-correction": "#e69500", "free": "#e8ebef",
           "text": "#333333", "muted": "#888888", "line": "#c9ced6"}

# Common homes of a CJK font on Debian/Ubuntu (fonts-noto-cjk, fonts-wqy-*) and elsewhere.
CJK_FONTS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
    "/System/Library/Fonts/PingFang.ttc",
    "C:/Windows/Fonts/msyh.ttc",
)


@dataclass
class Bar:
    label: str
    accepted: int
    needs_correction: int
    places_max: int


@functools.lru_cache(maxsize=1)
def cjk_font_path() -> str | None:
    for path in CJK_FONTS:
        if Path(path).exists():
            return path
    if shutil.which("fc-match"):
        try:
            found = subprocess.run(["fc-match", "-f", "%{file}", ":lang=zh-cn"], capture_output=True,
                                   text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None
        if found and Path(found).exists() and found.lower().endswith((".ttc", ".ttf", ".otf")):
            return found
    return None


def _font(size: int) -> tuple["ImageFont.ImageFont", bool]:
    from PIL import ImageFont

    path = cjk_font_path()
    if path:
        try:
            return ImageFont.truetype(path, size * SCALE), True
        except OSError:
            pass
    return ImageFont.load_default(size * SCALE), False


def places_chart(bars: list[Bar]) -> bytes:
    """Bars of 1..max cells per county: accepted (green), needing correction (amber), free."""
    # Pillow is imported here: `intake status` imports this module for the digest's wording only.
    from PIL import Image, ImageDraw

    s = SCALE
    height = TOP + ROW * len(bars) + 12
    img = Image.new("RGB", (WIDTH * s, height * s), "white")
    draw = ImageDraw.Draw(img)
    font, cjk = _font(13)
    small, _ = _font(11)
    _legend(draw, small, cjk)
    cell_area = WIDTH - LABEL_W - 50
    for i, bar in enumerate(bars):
        y = TOP + i * ROW
        label = bar.label if cjk else str(i + 1)
        draw.text(((LABEL_W - 10) * s, (y + ROW / 2) * s), label, fill=COLOURS["text"], font=font, anchor="rm")
        places = max(bar.places_max, 1)
        cell_w = cell_area / places
        fills = (["accepted"] * bar.accepted + ["needs-correction"] * bar.needs_correction
                 + ["free"] * places)[:places]
        for j, kind in enumerate(fills):
            x0 = LABEL_W + j * cell_w
            draw.rectangle(((x0 + 1) * s, (y + 5) * s, (x0 + cell_w - 2) * s, (y + ROW - 5) * s),
                           fill=COLOURS[kind])
        used = bar.accepted + bar.needs_correction
        draw.text(((LABEL_W + cell_area + 8) * s, (y + ROW / 2) * s), f"{used}/{bar.places_max}",
                  fill=COLOURS["text"], font=font, anchor="lm")
    out = io.BytesIO()
    img.quantize(colors=64).save(out, format="PNG", optimize=True)
    return out.getvalue()


def _legend(draw: "ImageDraw.ImageDraw", font, cjk: bool) -> None:
    words = ("已受理", "需补正", "空余名额") if cjk else ("accepted", "to correct", "free")
    s, x = SCALE, LABEL_W
    for kind, word in zip(("accepted", "needs-correction", "free"), words):
        draw.rectangle((x * s, 10 * s, (x + 12) * s, 22 * s), fill=COLOURS[kind])
        draw.text(((x + 17) * s, 16 * s), word, fill=COLOURS["text"], font=font, anchor="lm")
        x += 17 + draw.textlength(word, font=font) / s + 18
