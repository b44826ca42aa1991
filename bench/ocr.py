"""Scanned, stamped forms: the whole scan corpus through `intake poll --once` on Dovecot.

    .venv/bin/python bench/ocr.py [--only NAME,NAME] [--json FILE]

Every case of tests/corpus/scans.py (150/200 dpi, JPEG 60–90 or PNG, ±3° and 1.5° skew, turned
90°/180°/270°, noise, a phone photo in perspective, a scanned PDF; seals in some opinion boxes)
goes as one county email into a private Dovecot; one `intake poll --once` reads and answers
them all. Printed: seconds per scanned page and peak memory (VmHWM of intake and of its
forked OCR children) beside the floor — the OCR engine alone (rapidocr, as intake configures
it) reading the same page images in a fresh process — then the accuracy: required fields
exact per scan, seals found in the right box, seals invented, replies listing the values read.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from email import policy
from email.parser import BytesParser
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import figures  # noqa: E402
from bench.county_mail import county_senders  # noqa: E402
from bench.memory import PEAK_RSS, PROBE  # noqa: E402
from bench.servers import MailServers  # noqa: E402
from pipeline import sample_mail  # noqa: E402
from tests.configs import MAILBOX, MAIL_RECEIVED  # noqa: E402
from tests.corpus import scans  # noqa: E402

EXACT_TARGET = 0.95

# The floor: a fresh interpreter with the engine alone, reading each page image once.
FLOOR = """
import sys, time, numpy as np
from PIL import Image
from parsers import ocr
eng = ocr.engine()
paths = sys.argv[1:]
started = time.perf_counter()
for p in paths:
    eng(np.asarray(Image.open(p).convert("RGB")), use_cls=False)
print(time.perf_counter() - started, peak_rss_mb())
"""


def page_files(cases, directory: Path) -> list[Path]:
    """Every page image of the corpus on disk (a scanned PDF's pages rendered as its scanner did)."""
    import pypdfium2

    out = []
    for case in cases:
        for name, data in scans.build(case).items():
            if name.endswith(".pdf"):
                pdf = pypdfium2.PdfDocument(data)
                images = [pdf[i].render(scale=200 / 72).to_pil() for i in range(len(pdf))]
                pdf.close()
            else:
                images = [None]
            for i, image in enumerate(images):
                path = directory / f"{case.name}-{len(out)}.png"
                if image is None:
                    path = path.with_suffix("." + name.rsplit(".", 1)[-1])
                    path.write_bytes(data)
                else:
                    image.save(path)
                out.append(path)
    return out


def run_intake(cases, work: Path) -> dict:
    senders = [s for _, s in county_senders()]
    with MailServers() as servers:
        config = servers.config(work)
        for i, case in enumerate(cases):
            raw = sample_mail.foxmail_email(senders[i % len(senders)], MAILBOX, "推荐表盖章扫描件",
                                            list(scans.build(case).items()), message_id=f"<scan-{i}@bench>")
            servers.dovecot.append(servers.user, servers.password, raw, internaldate=MAIL_RECEIVED)
        rss_file = work / "rss.json"
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "-c", PEAK_RSS + PROBE, "--config", str(config), "poll", "--once"],
                                cwd=work, capture_output=True, text=True, timeout=7200,
                                env={**servers.env(), "BENCH_RSS_FILE": str(rss_file),
                                     "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
        seconds = time.perf_counter() - started
        assert result.returncode == 0, result.stderr
        servers.smtp.wait_for_count(len(cases), 60)
        replies = {m.message["In-Reply-To"]: m.message for m in servers.smtp.messages}
        export = subprocess.run([sys.executable, "-m", "pipeline.cli", "--config", str(config), "export",
                                 "--format", "json"], cwd=work, capture_output=True, text=True, check=True,
                                env={**servers.env(), "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    return {"seconds": seconds, "rss": json.loads(rss_file.read_text()), "replies": replies,
            "export": json.loads(export.stdout)}


def floor(pages: list[Path]) -> tuple[float, float]:
    done = subprocess.run([sys.executable, "-c", PEAK_RSS + FLOOR, *map(str, pages)], capture_output=True,
                          text=True, check=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    seconds, rss = done.stdout.split()
    return float(seconds), float(rss)


def accuracy(cases, got: dict) -> dict:
    candidates = {c["name"]: c for c in got["export"]["candidates"]}
    rows, exact, deeds, seals_right, seals_missed, seals_invented, listed = [], 0, 0, 0, 0, 0, 0
    for i, case in enumerate(cases):
        want = scans.expected(case)
        cand = candidates.get(want["name"], {})
        wrong = scans.wrong_fields(case, cand) if cand else ["(no candidate)"]
        found = {k for k, v in (cand.get("seals") or {}).items() if v}
        exact += not wrong
        deeds += bool(cand) and scans.deeds_match(case, cand)
        seals_right += len(found & set(case.seals))
        seals_missed += len(set(case.seals) - found)
        seals_invented += len(found - set(case.seals))
        reply = got["replies"].get(f"<scan-{i}@bench>")
        text = reply.get_body(("plain",)).get_content() if reply else ""
        ok_reply = "本表为扫描件" in text and f"姓名：{want['name']}" in text
        listed += ok_reply
        rows.append((case.name, ", ".join(wrong) or "exact", f"{sorted(found)} / {sorted(case.seals)}",
                     cand.get("status", "—"), "yes" if ok_reply else "NO"))
    return {"rows": rows, "exact": exact, "deeds": deeds, "right": seals_right, "missed": seals_missed,
            "invented": seals_invented, "listed": listed,
            "seals": sum(len(c.seals) for c in cases)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", help="comma-separated case names (default: the whole corpus)")
    parser.add_argument("--json")
    args = parser.parse_args()
    cases = [c for c in scans.CASES if not args.only or c.name in args.only.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-ocr-") as tmp:
        work = Path(tmp)
        pages = page_files(cases, work)
        print(f"{len(cases)} scanned forms, {len(pages)} pages", flush=True)
        got = run_intake(cases, work)
        floor_seconds, floor_rss = floor(pages)
    acc = accuracy(cases, got)
    n = len(cases)
    per_page, floor_page = got["seconds"] / len(pages), floor_seconds / len(pages)
    peak = max(got["rss"]["own"], got["rss"]["children"])
    print(f"\n{'case':<36}{'required fields':<26}{'seals found / drawn':<56}{'status':<18}reply lists values")
    for row in acc["rows"]:
        print(f"{row[0]:<36}{row[1]:<26}{row[2]:<56}{row[3]:<18}{row[4]}")
    print(f"\nseconds per page: intake {per_page:.1f} (whole poll, {got['seconds']:.0f} s), "
          f"engine alone {floor_page:.1f} ({per_page / floor_page:.2f}x)")
    print(f"peak RSS: intake {got['rss']['own']:.0f} MB, OCR child {got['rss']['children']:.0f} MB; "
          f"engine alone {floor_rss:.0f} MB")
    print(f"required fields exact: {acc['exact']}/{n}; deeds' first sentence exact: {acc['deeds']}/{n}; "
          f"seals in the right box: {acc['right']}/{acc['seals']}, missed {acc['missed']}, "
          f"invented {acc['invented']}; replies listing the values read: {acc['listed']}/{n}")
    share = acc["exact"] / n
    figures.write(args.json, [
        figures.Figure("ocr", "seconds per scanned page (poll, end to end)", round(per_page, 1), "s",
                       round(floor_page, 1), "the OCR engine alone on the same pages",
                       round(figures.ratio_of_cost(per_page, floor_page), 2)),
        figures.Figure("ocr", "peak RSS (intake or its OCR child)", round(peak), "MB", round(floor_rss),
                       "the OCR engine alone", round(figures.ratio_of_cost(peak, floor_rss), 2)),
        figures.Figure("ocr", f"scans with every required field exact ({n})", round(100 * share, 1), "%",
                       target=f">= {EXACT_TARGET:.0%}", passed=share >= EXACT_TARGET),
        figures.Figure("ocr", f"seals in the right box ({acc['seals']})", acc["right"], "seals",
                       target=f"= {acc['seals']}", passed=acc["right"] == acc["seals"]),
        figures.Figure("ocr", "seals invented", acc["invented"], "seals", target="= 0",
                       passed=acc["invented"] == 0),
        figures.Figure("ocr", "replies listing the values read", acc["listed"], "replies",
                       target=f"= {n}", passed=acc["listed"] == n),
    ])


if __name__ == "__main__":
    main()
