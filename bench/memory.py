"""Peak memory of `intake poll --once` reading one large email from a Maildir.

    .venv/bin/python bench/memory.py [--json FILE]

Two emails, each in a pass of its own: a county form exported to PDF by LibreOffice with
twenty scanned honour certificates behind it (about 25 MB, checked with qpdf), and a .zip of
twenty .docx forms. The intake process runs in a child of this script; at exit it notes its
own peak RSS (VmHWM) and its children's (getrusage CHILDREN: the forked PDF reader of
parsers/sandbox.py, which shares the worker's pages copy-on-write, so its figure counts them
again). The floor is the least a Python reader holds: a fresh interpreter reads the same .eml, parses
it with the standard library's email package fed in chunks, and base64-decodes the attachment.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import random
import subprocess
import sys
import tempfile
from email import policy
from email.parser import BytesParser
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import figures  # noqa: E402
from bench.county_mail import FIRST_DAY, county_senders, form  # noqa: E402
from pipeline import sample_mail, samples  # noqa: E402
from pipeline.demo import write_maildir  # noqa: E402
from tests.configs import MAILBOX, write_config  # noqa: E402
from tests.corpus import build  # noqa: E402

TARGET_MB = 300
PDF_MB = 25
CERTIFICATES = 20

# intake's own entry point, with a note of peak memory written at exit.
PROBE = """
import atexit, json, os, resource, sys
def note():
    with open(os.environ["BENCH_RSS_FILE"], "w") as fh:
        json.dump({"own": peak_rss_mb(), "children": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}, fh)
atexit.register(note)
from pipeline.cli import main
sys.argv[0] = "intake"
main()
"""

FLOOR = """
import binascii, sys
from email.feedparser import BytesFeedParser
raw = open(sys.argv[1], "rb").read()
parser = BytesFeedParser()
for start in range(0, len(raw), 1 << 16):
    parser.feed(raw[start:start + (1 << 16)])
attachments = [binascii.a2b_base64(part.get_payload()) for part in parser.close().walk()
               if part.get_filename()]
print(peak_rss_mb())
"""

# VmHWM, not getrusage: Linux carries ru_maxrss across fork and exec, so a process started by
# this script (which holds the 25 MB PDF) would report this script's size as its own.
PEAK_RSS = """
def peak_rss_mb():
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:")) / 1024
"""


def certificate_jpeg(seed: int, width: int = 1654, height: int = 2339) -> bytes:
    """A scanned certificate at 200 dpi: paper tone, a red border, scanner noise (which is
    what makes scans large)."""
    from PIL import Image, ImageDraw, ImageFilter
    rng = random.Random(seed)
    noise = Image.frombytes("L", (width, height), rng.randbytes(width * height)).filter(ImageFilter.GaussianBlur(0.6))
    page = Image.blend(Image.new("RGB", (width, height), (236, 226, 200)),
                       Image.merge("RGB", (noise, noise, noise)), 0.35)
    ImageDraw.Draw(page).rectangle([60, 60, width - 60, height - 60], outline=(160, 30, 30), width=18)
    out = io.BytesIO()
    page.save(out, "JPEG", quality=85)
    return out.getvalue()


def large_pdf() -> bytes:
    """The form, then one certificate a page, exported to PDF by LibreOffice."""
    from docx import Document
    from docx.enum.text import WD_BREAK
    from docx.shared import Cm
    doc = Document(io.BytesIO(samples.build_form_docx(samples.SAMPLE_CANDIDATE)))
    for i in range(CERTIFICATES):
        caption = doc.add_paragraph()
        caption.add_run().add_break(WD_BREAK.PAGE)
        caption.add_run(f"附件{i + 1}：荣誉证书扫描件")
        doc.add_picture(io.BytesIO(certificate_jpeg(i)), width=Cm(15))
    out = io.BytesIO()
    doc.save(out)
    pdf = build.soffice_convert({"张三.docx": out.getvalue()}, "pdf")["张三.docx"]
    _check_pdf(pdf)
    return pdf


def _check_pdf(pdf: bytes) -> None:
    with tempfile.NamedTemporaryFile(suffix=".pdf") as fh:
        fh.write(pdf)
        fh.flush()
        subprocess.run(["qpdf", "--check", fh.name], check=True, capture_output=True)
    size_mb = len(pdf) / 2**20
    assert PDF_MB - 1 <= size_mb <= PDF_MB + 1, f"the PDF is {size_mb:.1f} MB"


def forms_zip(count: int = 20) -> bytes:
    family, given = "张李王赵孙周吴郑钱陈", "伟芳强敏"
    names = [family[i % len(family)] + given[i // len(family) % len(given)] for i in range(count)]
    return build.zip_gbk({f"{i + 1:02d}{name}推荐表.docx": form(name, i) for i, name in enumerate(names)})


def measure(name: str, attachment: tuple[str, bytes], tmp: Path) -> dict:
    work = tmp / name
    work.mkdir()
    config = write_config(work)
    _, sender = county_senders()[0]
    raw = sample_mail.foxmail_email(sender, MAILBOX, "信息技术能手推荐表（张三）", [attachment], date=FIRST_DAY)
    write_maildir(work / "inbox", [(raw, FIRST_DAY)])
    rss_file = work / "rss.json"
    result = subprocess.run([sys.executable, "-c", PEAK_RSS + PROBE, "--config", str(config), "poll", "--once"],
                            cwd=work, capture_output=True, text=True,
                            env={**os.environ, "BENCH_RSS_FILE": str(rss_file),
                                 "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert result.returncode == 0, result.stderr
    assert "1 recorded" in result.stdout and "replies sent 1" in result.stdout, result.stdout
    usage = json.loads(rss_file.read_text())
    eml = next((work / "inbox" / "cur").iterdir())
    floor = subprocess.run([sys.executable, "-c", PEAK_RSS + FLOOR, str(eml)], capture_output=True, text=True, check=True)
    return {"email_mb": len(raw) / 2**20, "attachment_mb": len(attachment[1]) / 2**20,
            "own": usage["own"], "children": usage["children"],
            "floor": float(floor.stdout), "status": _status(work)}


def _status(work: Path) -> str:
    """The reply's X-Intake-Status: the email was read, not just survived."""
    sent = next((work / "sent" / "new").iterdir()).read_bytes()
    return str(BytesParser(policy=policy.default).parsebytes(sent)["X-Intake-Status"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json")
    args = parser.parse_args()
    cases = {"pdf": ("张三推荐表及证书.pdf", large_pdf()), "zip": ("推荐材料.zip", forms_zip())}
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        got = {name: measure(name, att, Path(tmp)) for name, att in cases.items()}
    out = []
    print(f"{'email':<34}{'intake MB':>10}{'child MB':>10}   {'floor MB':>9}{'ratio':>7}   reply")
    for name, what in (("pdf", f"{got['pdf']['attachment_mb']:.1f} MB PDF, {CERTIFICATES + 1} pages"),
                       ("zip", f"zip of 20 forms, {got['zip']['attachment_mb']:.1f} MB")):
        g = got[name]
        peak = max(g["own"], g["children"])
        ratio = figures.ratio_of_cost(g["own"], g["floor"])
        print(f"{what:<34}{g['own']:>10.0f}{g['children']:>10.0f}   {g['floor']:>9.0f}{ratio:>7.1f}   {g['status']}")
        target = f"<= {TARGET_MB} MB" if name == "pdf" else ""
        out += [figures.Figure("memory", f"{what}: intake peak RSS", round(g["own"]), "MB", round(g["floor"]),
                               "python: read .eml, parse, decode attachment", round(ratio, 1), target,
                               (peak <= TARGET_MB) if target else None),
                figures.Figure("memory", f"{what}: children's peak RSS", round(g["children"]), "MB",
                               target=target, passed=(peak <= TARGET_MB) if target else None)]
    pdf_peak = max(got["pdf"]["own"], got["pdf"]["children"])
    print(f"target: the larger of intake and its children <= {TARGET_MB} MB for the PDF: "
          f"{'PASS' if pdf_peak <= TARGET_MB else 'MISS'} ({pdf_peak:.0f} MB)")
    figures.write(args.json, out)


if __name__ == "__main__":
    main()
