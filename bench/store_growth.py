"""Does the cost grow with the store? Stores grown by polling a realistic season (bench/season.py:
edited resubmissions, questions answered, thank-you notes, out-of-office answers, a day of sent
replies), 100 to 50,000 emails.

    .venv/bin/python bench/store_growth.py [--sizes 100,10000,50000] [--pass-messages 5000] [--json FILE]

- Whole command: `intake poll --once` (a subprocess: start-up, imports, store, 100 new emails
  from a Maildir, replies written) on a copy of each store; the floor is the same with 100
  stored. Wall time is the target; CPU time is printed beside it (steadier on a shared machine).
- One pass of N emails in-process: the mean cost of the last tenth beside the first tenth (after
  the first 20, which also pay the process's warm-up).
- `intake status`: wall time and peak RSS; the floor is a fresh python decoding every document
  of the tables status reads with json alone.
- Exports (json, csv, xlsx) of the largest store, in-process (store opened, tables read, file
  made); the floors are in `export_costs`.
- The store's size per 1,000 emails: its tables (snapshots and journal), and the files beside.
"""
from __future__ import annotations

import argparse
import csv
import inspect
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import compile_project, figures, season  # noqa: E402
from tests.cli import INTAKE  # noqa: E402

NEW = 100
TARGETS = {10000: 1.3, 50000: 1.6}            # command cost beside the cost with 100 stored
FLAT = 0.20                                    # ± per-message cost across one pass
STATUS_SECONDS = {10000: 0.3, 50000: 1.0}
STATUS_MIB = 150
EXPORT_RATIO = 3.0
WARM_UP = 20                                   # emails of a pass not counted (see pass_flatness)

PEAK = """
import resource, subprocess, sys, time
started = time.perf_counter()
done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
elapsed = time.perf_counter() - started
assert done.returncode == 0, done.stderr
print(elapsed, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
"""

def decode_tables(paths) -> None:
    """Every document of each table file decoded by json alone (a snapshot is one line per
    document: doc id, key, document, tab-separated; or, written before the lines, one object)."""
    for path in paths:
        with open(path, "rb") as fh:
            raw = fh.read()
        if raw[:1] == b"{":
            json.loads(raw)
        elif raw:
            json.loads(b"[" + b",".join(line.split(b"\t", 2)[2] for line in raw.splitlines() if line) + b"]")


# The status floor: a fresh python doing only that.
READ_TABLES = "import json, sys\n" + inspect.getsource(decode_tables) + "\ndecode_tables(sys.argv[1:])\n"
STATUS_TABLES = ("meta", "digests", "reminders", "candidates", "candidate_ends", "submission_tallies",
                 "submissions_to_watch", "outbox_unsettled")


def command_costs(sizes: list[int], runs: int) -> dict[int, tuple[float, float]]:
    """size → (best wall seconds, best CPU seconds) of `intake poll --once` with 100 new emails
    on a store of that size; the sizes take turns, so a change in the machine's load falls on
    all of them alike. CPU time (user + system of the command and its children) is printed
    beside: on a shared machine it moves less than wall time."""
    best = {size: (float("inf"), float("inf")) for size in sizes}
    for _ in range(runs):
        for size in sizes:
            with tempfile.TemporaryDirectory(prefix="bench-growth-") as tmp:
                config = season.fresh_copy(size, Path(tmp))
                season.deliver(Path(tmp) / "inbox", size, NEW)
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                started = time.perf_counter()
                done = subprocess.run([str(INTAKE), "--config", str(config), "poll", "--once"],
                                      capture_output=True, text=True)
                elapsed = time.perf_counter() - started
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                assert done.returncode == 0 and done.stdout.startswith(f"read {NEW} new"), done.stdout + done.stderr
                cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
                best[size] = (min(best[size][0], elapsed), min(best[size][1], cpu))
    return best


def pass_flatness(size: int, count: int) -> tuple[float, float]:
    """(ms per message over the first tenth, over the last tenth) of one in-process pass: a
    message's time is its whole turn of the pass's loop (from taking it to taking the next:
    fetching, processing, committing, and the group commits and compactions that fall in it)."""
    from pipeline import poll
    from pipeline.settings import load_settings
    from store.repository import Store

    with tempfile.TemporaryDirectory(prefix="bench-flat-") as tmp:
        config = season.fresh_copy(size, Path(tmp))
        settings = load_settings(config)
        season.deliver(settings.mailbox.path, size, count)
        store = Store(settings.store.path, settings.store.files)
        starts = []
        real = poll._take

        def timed(*args, **kwargs):
            starts.append(time.perf_counter())
            return real(*args, **kwargs)
        poll._take = timed
        try:
            report = poll.run_pass(settings, store, clock=season._season_clock(size, season.season_email(size + count - 1)[1]))
        finally:
            poll._take = real
            store.close()
        assert report.read == count and report.failed == 0, report.summary()
        times = [end - start for start, end in zip(starts, starts[1:])]   # the last one's is not known
    # The first emails of a process also pay its warm-up (the parsers imported on first use, the
    # sandbox started): the first tenth is counted after them.
    times = times[WARM_UP:]
    tenth = max(1, len(times) // 10)
    return (sum(times[:tenth]) * 1000 / tenth, sum(times[-tenth:]) * 1000 / tenth)


def status_cost(size: int, runs: int) -> tuple[float, float, float]:
    """(best seconds, peak MiB of `intake status`, best seconds of the floor)."""
    with tempfile.TemporaryDirectory(prefix="bench-status-") as tmp:
        config = season.fresh_copy(size, Path(tmp))
        best, peak = float("inf"), 0.0
        for _ in range(runs):
            out = subprocess.run([sys.executable, "-c", PEAK, str(INTAKE), "--config", str(config), "status"],
                                 capture_output=True, text=True, check=True).stdout.split()
            best, peak = min(best, float(out[0])), max(peak, float(out[1]))
        tables = [str(p) for p in Path(tmp).glob("intake.*.json") if p.name.split(".")[1] in STATUS_TABLES]
        floor = float("inf")
        for _ in range(runs):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", READ_TABLES, *tables], check=True)
            floor = min(floor, time.perf_counter() - started)
    return best, peak, floor


def export_costs(size: int, runs: int = 3) -> list[tuple[str, float, float]]:
    """(format, best seconds of intake's export, best seconds of the floor), in-process, intake
    and floor runs alternating, best of `runs` each.

    Intake: `export_bytes` on a store just opened (so its tables are read as by `intake export`),
    the rows made and the file written. The floor is the library alone writing the same rows:
    json.dumps of the exported value with the same indent; openpyxl appending the same values to
    the same sheets and saving (intake also styles every cell and sizes every row). The csv
    holds one row per candidate (tens of rows, written in well under a millisecond), so what its
    export costs is reading them: its floor is json decoding every document of the two tables it
    needs (candidates, and candidate_ends: each one's first and latest version) then csv.writer
    writing the same rows.
    """
    from openpyxl import Workbook, load_workbook

    from pipeline.exports import export_bytes
    from pipeline.settings import load_settings
    from store.repository import Store

    out = []
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        settings = load_settings(season.fresh_copy(size, Path(tmp)))
        tables = [str(p) for p in Path(tmp).glob("intake.*.json")
                  if p.name.split(".")[1] in ("candidates", "candidate_ends")]

        def ours(fmt: str) -> bytes:
            store = Store(settings.store.path, settings.store.files)
            try:
                return export_bytes(fmt, store, settings)
            finally:
                store.close()

        for fmt in ("json", "csv", "xlsx"):
            data = ours(fmt)
            if fmt == "json":
                value = json.loads(data)

                def floor():
                    json.dumps(value, ensure_ascii=False, indent=2).encode("utf-8")
            elif fmt == "csv":
                rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))

                def floor():
                    decode_tables(tables)
                    buffer = io.StringIO()
                    csv.writer(buffer).writerows(rows)
                    buffer.getvalue().encode("utf-8-sig")
            else:
                sheets = [(ws.title, [list(r) for r in ws.iter_rows(values_only=True)])
                          for ws in load_workbook(io.BytesIO(data), read_only=True).worksheets]

                def floor():
                    book = Workbook()
                    book.remove(book.active)
                    for title, rows in sheets:
                        ws = book.create_sheet(title)
                        for row in rows:
                            ws.append(row)
                    book.save(io.BytesIO())
            best_ours = best_floor = float("inf")
            for _ in range(runs):
                best_ours = min(best_ours, _seconds(lambda: ours(fmt)))
                best_floor = min(best_floor, _seconds(floor))
            out.append((fmt, best_ours, best_floor))
    return out


def _seconds(task) -> float:
    started = time.perf_counter()
    task()
    return time.perf_counter() - started


def store_size(size: int) -> tuple[float, float]:
    """(MB of tables, MB of files) per 1,000 emails stored."""
    json_bytes, file_bytes = season.store_bytes(season.cached_store(size))
    return json_bytes / size * 1000 / 1e6, file_bytes / size * 1000 / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100,10000,50000")
    parser.add_argument("--pass-messages", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", help="also write the figures here, for bench/run_all.py")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    compile_project()
    out: list[figures.Figure] = []
    began = time.monotonic()
    for size in sizes:
        season.cached_store(size)
    print(f"stores ready ({time.monotonic() - began:.0f} s; built stores are cached in {season.CACHE})")

    print(f"\n`intake poll --once`, {NEW} new emails (best of {args.runs}; load average "
          f"{os.getloadavg()[0]:.1f}):")
    costs = command_costs(sizes, args.runs)
    base, base_cpu = costs[sizes[0]]
    for size in sizes:
        seconds, cpu = costs[size]
        target = TARGETS.get(size) if size != sizes[0] else None
        ratio = seconds / base
        print(f"  {size:>7,} stored: {seconds:6.2f} s  {ratio:5.2f}x   (CPU {cpu:5.2f} s, {cpu / base_cpu:4.2f}x)")
        out.append(figures.Figure(
            "store growth", f"poll --once, {NEW} new emails, {size:,} stored", round(seconds, 2), "s",
            round(base, 2), f"the same with {sizes[0]:,} stored", round(ratio, 2),
            f"<= {target:g}x floor" if target else "", (ratio <= target) if target else None))

    first, last = pass_flatness(sizes[0], args.pass_messages)
    drift = last / first
    print(f"\none pass of {args.pass_messages:,} emails: first tenth {first:.1f} ms/message, "
          f"last tenth {last:.1f} ms/message ({drift:.2f}x)")
    out.append(figures.Figure(
        "store growth", f"ms per email, last tenth of a {args.pass_messages:,}-email pass", round(last, 1), "ms",
        round(first, 1), "the first tenth of the same pass", round(drift, 2), f"within ±{FLAT:.0%}",
        abs(drift - 1) <= FLAT))

    print("\n`intake status`:")
    for size in sizes:
        seconds, mib, floor = status_cost(size, args.runs)
        limit = STATUS_SECONDS.get(size)
        print(f"  {size:>7,} stored: {seconds:5.2f} s, peak {mib:4.0f} MiB; floor (json alone) {floor:5.2f} s")
        out.append(figures.Figure(
            "status", f"intake status, {size:,} stored", round(seconds, 2), "s", round(floor, 2),
            "a fresh python decoding the tables status reads with json alone", round(seconds / floor, 1),
            f"<= {limit:g} s" if limit else "", (seconds <= limit) if limit else None))
        out.append(figures.Figure(
            "status", f"  peak RSS, {size:,} stored", round(mib), "MiB", target=f"<= {STATUS_MIB} MiB",
            passed=mib <= STATUS_MIB))

    print(f"\nexports of {sizes[-1]:,} stored:")
    for fmt, ours, floor in export_costs(sizes[-1]):
        ratio = ours / floor
        print(f"  {fmt:>4}: {ours:6.2f} s; the library alone {floor:6.2f} s ({ratio:.1f}x)")
        out.append(figures.Figure(
            "exports", f"export {fmt}, {sizes[-1]:,} stored", round(ours, 2), "s", round(floor, 2),
            {"json": "json.dumps", "csv": "csv.writer", "xlsx": "openpyxl"}[fmt] + " alone, same rows",
            round(ratio, 1), f"<= {EXPORT_RATIO:g}x floor", ratio <= EXPORT_RATIO))

    json_mb, files_mb = store_size(sizes[-1])
    print(f"\nstore per 1,000 emails: {json_mb:.2f} MB of tables, {files_mb:.1f} MB of files beside them")
    out.append(figures.Figure("store size", "tables per 1,000 emails (snapshots and journal: a line per document)",
                              round(json_mb, 2), "MB"))
    out.append(figures.Figure("store size", "files per 1,000 emails (raw mail, attachments, reply bodies)",
                              round(files_mb, 1), "MB"))
    figures.write(args.json, out)


if __name__ == "__main__":
    main()
