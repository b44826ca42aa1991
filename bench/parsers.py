"""How long intake takes to read one form in each format, next to the floor for that format.

    .venv/bin/python bench/parsers.py [--runs N]

Per format: the median milliseconds per form over N runs and the peak resident memory of the
process doing it (the worker's own, and its children's: soffice, the PDF sandbox). The floor is
the least any reader must do: unzip + lxml parse of word/document.xml for .docx, pdfplumber's
text of one page for PDF. The .docx row, which has a target, times intake and its floor in the
same process, alternating (DOCX_PAIRS pairs): at ~3 ms against ~0.5 ms, two medians taken
minutes apart measured the machine's load as much as the reader (3.8x, 7.1x and 8.9x in three
runs of an unchanged reader). For .doc and .rtf, two rows: `poll --once` (each email starts its own
soffice; the floor is one soffice process whose profile is already initialised) and `intake
run` (one LibreOffice kept running, parsers.convert.warm_office: the email's attachments read
end to end, conversion, the converted .docx read by the same reader as a .docx in its sandbox;
target <= 1.5x the floor). That floor is the same running LibreOffice converting the same file
over UNO with the same load properties and filter, driven by bench/uno_floor.py (a plain UNO
client, none of intake's code) and timed around load, store and close. LibreOffice's own time
varies by half from minute to minute on a shared machine, so intake and floor runs alternate
(--warm-runs pairs, 25 by default) and each figure is the median of its runs. Each format runs
in a fresh child process so memory figures do not mix.
"""
from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lxml import etree  # noqa: E402

from bench import figures  # noqa: E402
from parsers.attachments import read_attachments  # noqa: E402
from parsers.records import Attachment  # noqa: E402
from tests.corpus import build, files  # noqa: E402

BATCH = 12   # the "a dozen .doc files in one email" case
DOCX_TARGET = 5.0   # a .docx form at most this many times its floor
WARM_TARGET = 1.5   # a legacy form in `intake run`, at most this many times a running LibreOffice's
WARM_RUNS = 25      # LibreOffice's own time varies by half between runs on a loaded machine
DOCX_PAIRS = 41     # intake and floor, alternating, for the .docx row


def corpus() -> dict[str, list[tuple[str, bytes]]]:
    """Format → the attachments of one email (one form, except the batch case)."""
    docx = files.docx_forms()["张三.docx"]
    doc = files.converted("doc")["张三"]
    return {
        "docx": [("张三.docx", docx)],
        "doc": [("张三.doc", doc)],
        f"doc x{BATCH} (one email)": [(f"{i}.doc", doc) for i in range(BATCH)],
        "rtf": [("张三.rtf", files.converted("rtf")["张三"])],
        "pdf (Word export)": [("张三.pdf", files.converted("pdf")["张三"])],
        "pdf (scan)": [("扫描.pdf", build.image_pdf(files.scan_png()))],
        "zip (GBK) of docx": [("材料.zip", build.zip_gbk({"张三推荐表.docx": docx}))],
        "7z of docx": [("材料.7z", build.seven_zip({"张三推荐表.docx": docx}))],
        "rar of docx": [("材料.rar", build.rar4({"张三推荐表.docx": docx}))],
    }


def floor_docx(data: bytes) -> None:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        etree.fromstring(zf.read("word/document.xml"))


def floor_pdf(data: bytes) -> None:
    import pdfplumber
    with pdfplumber.open(io.BytesIO(data)) as pdf:
        pdf.pages[0].extract_text()


UNO_FLOOR = Path(__file__).with_name("uno_floor.py")


def intake_run_pair(atts, data: bytes, ext: str, runs: int) -> tuple[float, float]:
    """(median ms of intake reading the email as `intake run` does, median ms of the same
    LibreOffice converting the same file over UNO with nothing of intake around it), measured
    in a fresh process, the two interleaved (alternating which goes first) so that a change in
    the machine's load or in LibreOffice's own pace falls on both alike."""
    ctx = multiprocessing.get_context("fork")
    receiver, sender = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_pair_child, args=(sender, atts, data, ext, runs))
    child.start()
    result = receiver.recv()
    child.join()
    return result


def _pair_child(sender, atts, data: bytes, ext: str, runs: int) -> None:
    from parsers.convert import UNO_PYTHON, warm_office
    with warm_office() as office, tempfile.TemporaryDirectory(prefix="bench-uno-") as tmp:
        assert office is not None, "the `intake run` rows need python3-uno"
        read_attachments(atts)   # starts the LibreOffice, imports and caches warm
        source = Path(tmp) / f"in.{ext}"
        source.write_bytes(data)
        floor = subprocess.Popen([UNO_PYTHON, str(UNO_FLOOR), office.pipe], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
        assert json.loads(floor.stdout.readline())["ready"]

        def floor_ms() -> float:
            floor.stdin.write(json.dumps({"in": str(source), "out": f"{tmp}/out.docx"}) + "\n")
            floor.stdin.flush()
            return json.loads(floor.stdout.readline())["ms"]

        def intake_ms() -> float:
            started = time.perf_counter()
            read_attachments(atts)
            return (time.perf_counter() - started) * 1000

        floor_ms()
        ours, floors = [], []
        for i in range(runs):
            if i % 2:
                floors.append(floor_ms())
                ours.append(intake_ms())
            else:
                ours.append(intake_ms())
                floors.append(floor_ms())
        floor.stdin.close()
        floor.wait()
        assert office.converted == runs + 1 and Path(f"{tmp}/out.docx").stat().st_size > 0   # both converted
    sender.send((statistics.median(ours), statistics.median(floors)))


class WarmSoffice:
    """One soffice process converting, with a profile LibreOffice has already initialised."""

    def __init__(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-soffice-"))
        self.convert(b"{\\rtf1 warm-up}", "rtf")

    def convert(self, data: bytes, ext: str) -> None:
        src = self.tmp / f"in.{ext}"
        src.write_bytes(data)
        subprocess.run(["soffice", "--headless", "--norestore",
                        f"-env:UserInstallation={(self.tmp / 'profile').as_uri()}",
                        "--convert-to", "docx", "--outdir", str(self.tmp / "out"), str(src)],
                       check=True, capture_output=True)


def measure(task, runs: int, floor=None) -> tuple[float, float, float, float | None]:
    """(median ms, own peak RSS MB, children's peak RSS MB, the floor's median ms), measured in
    a fresh process; with a `floor` task, each run of `task` is paired with one of the floor,
    alternating which goes first, so that a change in the machine's pace falls on both alike."""
    ctx = multiprocessing.get_context("fork")
    receiver, sender = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_measure_child, args=(sender, task, runs, floor))
    child.start()
    result = receiver.recv()
    child.join()
    return result


def _timed(task) -> float:
    started = time.perf_counter()
    task()
    return (time.perf_counter() - started) * 1000


def _measure_child(sender, task, runs: int, floor) -> None:
    task()   # imports and caches warm, as in the long-running worker
    if floor is not None:
        floor()
    times, floors = [], []
    for i in range(runs):
        if floor is not None and i % 2:
            floors.append(_timed(floor))
        times.append(_timed(task))
        if floor is not None and not i % 2:
            floors.append(_timed(floor))
    if hasattr(task, "close"):
        task.close()
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    sender.send((statistics.median(times), own, kids, statistics.median(floors) if floors else None))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--warm-runs", type=int, default=WARM_RUNS,
                        help="interleaved runs of the `intake run` rows and their floor")
    parser.add_argument("--json", help="also write the figures here, for bench/run_all.py")
    args = parser.parse_args()
    runs = args.runs
    out = []
    emails = corpus()
    soffice = WarmSoffice()
    doc_bytes = emails["doc"][0][1]
    floors = {
        "docx": ("unzip+lxml, paired", lambda: floor_docx(emails["docx"][0][1])),
        "pdf (Word export)": ("pdfplumber page 1",
                              lambda: floor_pdf(emails["pdf (Word export)"][0][1])),
        "doc": ("soffice, profile ready", lambda: soffice.convert(doc_bytes, "doc")),
        "rtf": ("soffice, profile ready", lambda: soffice.convert(emails["rtf"][0][1], "rtf")),
    }
    warm = {"doc": emails["doc"][0][1], "rtf": emails["rtf"][0][1]}
    print(f"{'format':<22}{'ms/form':>9}{'RSS MB':>8}{'child MB':>9}   "
          f"{'floor':<18}{'ms':>8}{'ratio':>7}")
    for fmt, attachments in emails.items():
        atts = [Attachment(n, "application/octet-stream", d) for n, d in attachments]
        paired = floors[fmt][1] if fmt == "docx" else None
        ms, own, kids, paired_ms = measure(lambda atts=atts: read_attachments(atts),
                                           DOCX_PAIRS if paired else runs, paired)
        ms /= len(atts)
        line = f"{fmt:<22}{ms:>9.1f}{own:>8.0f}{kids:>9.0f}   "
        figure = figures.Figure("parsers", f"{fmt}: ms per form (RSS {own:.0f} MB, children {kids:.0f} MB)",
                                round(ms, 1), "ms")
        if fmt in floors:
            name, task = floors[fmt]
            floor_ms = paired_ms if paired else measure(task, runs)[0]
            line += f"{name:<18}{floor_ms:>8.1f}{ms / floor_ms:>7.1f}"
            figure.floor, figure.floor_what, figure.ratio = round(floor_ms, 1), name, round(ms / floor_ms, 1)
            if fmt == "docx":
                figure.target, figure.passed = f"<= {DOCX_TARGET:g}x floor", ms / floor_ms <= DOCX_TARGET
        print(line)
        out.append(figure)
        if fmt in warm:
            ms, floor_ms = intake_run_pair(atts[:1], warm[fmt], fmt, args.warm_runs)
            ratio = ms / floor_ms
            print(f"{fmt + ' (intake run)':<22}{ms:>9.1f}{'':>17}   {'running LibreOffice':<18}{floor_ms:>8.1f}{ratio:>7.1f}")
            out.append(figures.Figure("parsers", f"{fmt} in intake run (LibreOffice kept running): ms per form",
                                      round(ms, 1), "ms", round(floor_ms, 1),
                                      "a running LibreOffice converting it over UNO", round(ratio, 2),
                                      f"<= {WARM_TARGET:g}x floor", ratio <= WARM_TARGET))
    figures.write(args.json, out)


if __name__ == "__main__":
    main()
