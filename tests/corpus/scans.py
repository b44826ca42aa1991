"""Scans of the stamped paper form, made the way counties make them: the two-table form
(tests/corpus/two_table_form.py) exported to PDF by LibreOffice, rendered by pdftoppm at a
scanner's resolution, stamped with red seals in some opinion boxes, then fed askew, turned,
photographed at an angle, speckled with noise and saved as JPEG.

`CASES` is the corpus (the benchmark reads all of it, the CI sample a few); `build(case)`
gives the files one county email would carry. Built files are cached per session.
"""
from __future__ import annotations

import functools
import io
import math
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pdfplumber
from PIL import Image, ImageDraw

from pipeline import samples
from tests.corpus import build as corpus_build
from tests.corpus import two_table_form

SEAL_RED = (214, 28, 36)
SEAL_MM = 42
OPINION_WORDS = {"recommender": "推荐", "discipline": "纪检监察", "member_unit": "成员", "approval": "审批"}


@dataclass(frozen=True)
class Case:
    name: str                    # the test id
    candidate: int               # index into samples.SAMPLE_CANDIDATES
    seals: tuple[str, ...]       # opinion boxes stamped
    dpi: int = 150
    quality: int = 85            # JPEG quality; 0: PNG
    angle: float = 0.0           # small skew, degrees (positive: counter-clockwise)
    turn: int = 0                # 0, 90, 180, 270: how the page lies in the picture
    noise: float = 0.0           # standard deviation of the grey noise added
    photo: bool = False          # a phone photo: perspective, shading, desk around the page
    pdf: bool = False            # the pages as one scanned PDF instead of two pictures
    blank_opinions: tuple[str, ...] = ()   # boxes left without typed text (a seal may sign them)
    person: str = ""             # the candidate's name, when not the sample's (one per case)


BOTH = ("recommender", "discipline")
ALL = ("recommender", "discipline", "member_unit", "approval")

CASES = (
    Case("150dpi-jpg85", 0, BOTH),
    Case("200dpi-png", 1, ALL, dpi=200, quality=0),
    Case("150dpi-jpg60-noise", 2, ("recommender",), quality=60, noise=8),
    Case("200dpi-jpg90-skew+3", 3, BOTH, dpi=200, quality=90, angle=3),
    Case("150dpi-jpg75-skew-3", 0, ("discipline", "approval"), quality=75, angle=-3, person="孙七"),
    Case("150dpi-jpg80-turned90", 1, BOTH, quality=80, turn=90, person="周八"),
    Case("200dpi-jpg70-upside-down", 2, (), dpi=200, quality=70, turn=180, person="吴九"),
    Case("phone-photo", 3, BOTH, dpi=200, quality=80, photo=True, person="郑十"),
    Case("150dpi-scanned-pdf", 0, ALL, pdf=True, person="钱一"),
    Case("200dpi-jpg85-seal-signs-blank-box", 1, BOTH, dpi=200, blank_opinions=("discipline",), person="冯二"),
    Case("150dpi-jpg65-noise-skew+1.5", 3, ("member_unit",), quality=65, noise=6, angle=1.5, person="陈三"),
    Case("200dpi-jpg60-turned270-noise", 0, BOTH, dpi=200, quality=60, turn=270, noise=5, person="褚四"),
)
_BY_NAME = {c.name: c for c in CASES}
# What CI reads through the real poll (OCR is slow on shared cores): a scan, a phone photo, a
# seal signing a box left blank, and a page on its side.
SAMPLE = tuple(_BY_NAME[n] for n in (
    "150dpi-jpg85", "phone-photo", "200dpi-jpg85-seal-signs-blank-box", "150dpi-jpg80-turned90"))


@functools.cache
def form_docx(candidate: int, blank: tuple[str, ...] = (), person: str = "") -> bytes:
    values = dict(samples.SAMPLE_CANDIDATES[candidate])
    values["opinions"] = {**samples.SAMPLE_CANDIDATE["opinions"], **{k: "" for k in blank}}
    if person:
        values["name"] = person
    return two_table_form.build(values)


def form_pdf(case: Case) -> bytes:
    return _all_pdfs()[_key(case)]


def _key(case: Case) -> tuple:
    return case.candidate, case.blank_opinions, case.person


@functools.cache
def _all_pdfs() -> dict[tuple, bytes]:
    """Every form of the corpus exported to PDF in one LibreOffice call."""
    keys = list(dict.fromkeys(_key(c) for c in CASES))
    pdfs = corpus_build.soffice_convert({f"form{i}.docx": form_docx(*k) for i, k in enumerate(keys)}, "pdf")
    return {k: pdfs[f"form{i}.docx"] for i, k in enumerate(keys)}


def docx_for(case: Case) -> bytes:
    return form_docx(*_key(case))


@functools.cache
def build(case: Case) -> dict[str, bytes]:
    """{file name: bytes}: the form's two pages as the county would attach them."""
    pdf = form_pdf(case)
    pages = [_stamped(page, boxes, case) for page, boxes in zip(_rendered(pdf, case.dpi), _opinion_boxes(pdf))]
    pages = [_degraded(page, case, i) for i, page in enumerate(pages)]
    name = case.person or samples.SAMPLE_CANDIDATES[case.candidate]["name"]
    if case.pdf:
        out = io.BytesIO()
        pages[0].save(out, "PDF", resolution=case.dpi, save_all=True, append_images=pages[1:])
        return {f"{name}推荐表（盖章）.pdf": out.getvalue()}
    ext = "png" if not case.quality else "jpg"
    return {f"{name}推荐表第{i + 1}页.{ext}": _encoded(page, case) for i, page in enumerate(pages)}


def _rendered(pdf: bytes, dpi: int) -> list[Image.Image]:
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "in.pdf").write_bytes(pdf)
        subprocess.run(["pdftoppm", "-png", "-r", str(dpi), str(Path(tmp, "in.pdf")), str(Path(tmp, "p"))],
                       check=True, capture_output=True)
        return [Image.open(p).convert("RGB") for p in sorted(Path(tmp).glob("p-*.png"))]


def _opinion_boxes(pdf: bytes) -> list[dict[str, tuple[float, float, float, float]]]:
    """Per page, each opinion box's value cell (x0, top, x1, bottom) in points."""
    out = []
    with pdfplumber.open(io.BytesIO(pdf)) as doc:
        for page in doc.pages:
            text_lines = page.extract_words()
            cells = [c for t in page.find_tables() for c in t.cells]
            boxes = {}
            for key, word in OPINION_WORDS.items():
                hit = next((w for w in text_lines if w["text"].startswith(word) and w["x0"] < 120), None)
                if hit is None:
                    continue
                row = [c for c in cells if c[1] <= hit["top"] + 1 and hit["bottom"] - 1 <= c[3]]
                value = max(row, key=lambda c: c[0])
                boxes[key] = value
            out.append(boxes)
    return out


def _stamped(page: Image.Image, boxes: dict, case: Case) -> Image.Image:
    for key in case.seals:
        if key in boxes:
            x0, top, x1, bottom = boxes[key]
            scale = case.dpi / 72
            # where clerks press it: over the （盖章） and date, right of the box's middle
            cx, cy = (x0 + (x1 - x0) * 0.72) * scale, (top + (bottom - top) * 0.45) * scale
            page = draw_seal(page, cx, cy, case.dpi)
    return page


def draw_seal(page: Image.Image, cx: float, cy: float, dpi: int, mm: float = SEAL_MM) -> Image.Image:
    """A red seal impression, half transparent like stamp ink: a ring, a star, and strokes
    along an arc standing for the unit's name."""
    r = mm / 25.4 * dpi / 2
    overlay = Image.new("RGBA", page.size, (0, 0, 0, 0))
    d = ImageDraw.Draw(overlay)
    ink = (*SEAL_RED, 185)
    width = max(2, int(r * 0.07))
    d.ellipse([cx - r, cy - r, cx + r, cy + r], outline=ink, width=width)
    star = [(cx + r * 0.28 * math.cos(math.radians(-90 + 36 * i)) * (1 if i % 2 == 0 else 0.4),
             cy + r * 0.28 * math.sin(math.radians(-90 + 36 * i)) * (1 if i % 2 == 0 else 0.4))
            for i in range(10)]
    d.polygon(star, fill=ink)
    for i in range(14):   # the unit's name, from 8 o'clock over the top to 4 o'clock
        a = math.radians(160 + i * 220 / 13)
        ca, sa = math.cos(a), math.sin(a)
        px, py = cx + r * 0.72 * ca, cy + r * 0.72 * sa
        s = r * 0.1
        d.rectangle([px - s, py - s, px + s, py + s], fill=ink)
    d.line([cx - r * 0.4, cy + r * 0.5, cx + r * 0.4, cy + r * 0.5], fill=ink, width=width)
    return Image.alpha_composite(page.convert("RGBA"), overlay).convert("RGB")


def _degraded(page: Image.Image, case: Case, index: int) -> Image.Image:
    if case.angle:
        page = page.rotate(case.angle, resample=Image.BICUBIC, expand=True, fillcolor="white")
    if case.photo:
        page = _photographed(page, index)
    if case.turn:
        page = page.rotate(-case.turn, expand=True)   # PIL turns counter-clockwise
    if case.noise:
        rng = np.random.default_rng(index + 7)
        a = np.asarray(page, dtype=np.float32)
        a += rng.normal(0, case.noise, a.shape[:2])[..., None]
        page = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    return page


def _photographed(page: Image.Image, index: int) -> Image.Image:
    """The page on a grey desk, shot from above and a little to the side: a trapezoid, and
    darker towards one corner."""
    w, h = page.size
    pad = int(w * 0.08)
    desk = Image.new("RGB", (w + 2 * pad, h + 2 * pad), (96, 92, 88))
    desk.paste(page, (pad, pad))
    W, H = desk.size
    # where the page's corners land in the photo (tl, tr, br, bl)
    shift = 0.05 if index % 2 == 0 else -0.04
    quad = [(pad + w * 0.06, pad + h * 0.02), (pad + w * (0.96 + shift / 2), pad + h * 0.05),
            (pad + w * 1.0, pad + h * 0.98), (pad - w * 0.01, pad + h * (0.97 - shift))]
    src = [(pad, pad), (pad + w, pad), (pad + w, pad + h), (pad, pad + h)]
    photo = desk.transform(desk.size, Image.PERSPECTIVE, _coefficients(quad, src), Image.BICUBIC,
                           fillcolor=(96, 92, 88))
    shade = np.linspace(1.0, 0.82, W)[None, :, None] * np.linspace(1.0, 0.9, H)[:, None, None]
    return Image.fromarray((np.asarray(photo, dtype=np.float32) * shade).astype(np.uint8))


def _coefficients(dst, src) -> list[float]:
    """PIL's PERSPECTIVE data: for each output pixel (in dst) the input pixel (in src)."""
    rows = []
    for (x, y), (u, v) in zip(dst, src):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    b = np.array([c for pair in src for c in pair], dtype=np.float64)
    return np.linalg.solve(np.array(rows, dtype=np.float64), b).tolist()


def _encoded(page: Image.Image, case: Case) -> bytes:
    out = io.BytesIO()
    if case.quality:
        page.save(out, "JPEG", quality=case.quality)
    else:
        page.save(out, "PNG")
    return out.getvalue()


# ---- what a scan must read as ---------------------------------------------------------------

# The required fields compared exactly (deeds, a long text, are compared apart: see deeds_match).
EXACT_FIELDS = ("name", "sex", "birth", "ethnicity", "native_place", "political_status",
                "employer_post", "home_address", "phone")


@functools.cache
def expected(case: Case) -> dict:
    """What the scan must read as: the .docx it was printed from, read by intake's own parser."""
    from parsers.docx_form import parse_form

    return parse_form(docx_for(case)).fields()


def _plain(text: str) -> str:
    """Spacing aside: OCR does not see the space a clerk typed between 单位 and 职务."""
    return "".join((text or "").split())


def wrong_fields(case: Case, candidate: dict) -> list[str]:
    """The EXACT_FIELDS a candidate read from the scan got wrong."""
    want = expected(case)
    return [k for k in EXACT_FIELDS if _plain(candidate.get(k)) != _plain(want[k])]


def deeds_match(case: Case, candidate: dict) -> bool:
    """The deeds' first sentence, read character for character (punctuation's width aside)."""
    import unicodedata

    def first(text: str) -> str:
        return unicodedata.normalize("NFKC", _plain(text)).split("。")[0].replace("“", '"').replace("”", '"')

    return bool(candidate.get("deeds")) and first(candidate["deeds"]) == first(expected(case)["deeds"])


def blotted(case: Case, key: str = "phone") -> dict[str, bytes]:
    """The case's files with one value on page 1 scribbled over, as a smudged copy would have it."""
    files = dict(build(case))
    first_name = next(iter(files))
    page = Image.open(io.BytesIO(files[first_name])).convert("RGB")
    box = _value_box(form_pdf(case), "联系电话" if key == "phone" else key)
    scale = case.dpi / 72
    x0, top, x1, bottom = (v * scale for v in box)
    d = ImageDraw.Draw(page)
    rng = np.random.default_rng(3)
    for _ in range(60):   # dense pen strokes over the digits
        xa, xb = rng.uniform(x0, x1, 2)
        d.line([(xa, top + 4), (xb, bottom - 4)], fill=(30, 30, 30), width=3)
    out = io.BytesIO()
    page.save(out, "JPEG", quality=85)
    files[first_name] = out.getvalue()
    return files


def _value_box(pdf: bytes, label: str) -> tuple[float, float, float, float]:
    with pdfplumber.open(io.BytesIO(pdf)) as doc:
        page = doc.pages[0]
        word = next(w for w in page.extract_words() if w["text"].startswith(label))
        cells = [c for t in page.find_tables() for c in t.cells]
        row = [c for c in cells if c[1] <= word["top"] + 1 and word["bottom"] - 1 <= c[3] and c[0] > word["x1"]]
        return min(row, key=lambda c: c[0])
