"""Every benchmark in one run, then every figure beside its floor, ratio and target.

    .venv/bin/python -m bench [--quick] [--only backlog,memory] [--markdown]

Runs bench/parsers.py, store_growth.py, backlog.py, idle_latency.py, memory.py and ocr.py one after
another (each prints its own details as it goes), then the summary with PASS/MISS for each
target and the machine it ran on. --quick runs fewer samples (the backlog is 200 emails instead
of 500; the store growth uses stores of 100 and 2,000 emails and a 1,000-email pass, so its
10,000/50,000 targets are not judged). The grown stores are cached under var/bench (building
the 50,000 one takes a long while the first time). Exit status 1 when a target is missed.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import compile_project, figures  # noqa: E402

HERE = Path(__file__).resolve().parent
BENCHES = {   # name → (arguments, arguments with --quick)
    "parsers": ([], ["--runs", "3"]),
    "store_growth": ([], ["--sizes", "100,2000", "--pass-messages", "1000", "--runs", "1"]),
    "backlog": ([], ["--messages", "200"]),
    "idle_latency": ([], ["--samples", "15"]),
    "memory": ([], []),
    "ocr": ([], ["--only", "150dpi-jpg85,phone-photo,150dpi-jpg80-turned90"]),
}


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "unknown CPU")
    return f"{os.cpu_count()} × {model}, Python {platform.python_version()}, {platform.system()} {platform.release()}"


def run(name: str, quick: bool, tmp: Path) -> list[figures.Figure]:
    full, fewer = BENCHES[name]
    out = tmp / f"{name}.json"
    print(f"\n== {name} ==", flush=True)
    started = time.monotonic()
    done = subprocess.run([sys.executable, str(HERE / f"{name}.py"), *(fewer if quick else full),
                           "--json", str(out)])
    print(f"({time.monotonic() - started:.0f} s)", flush=True)
    if done.returncode != 0 or not out.exists():
        return [figures.Figure(name, "the benchmark failed (see above)", float("nan"), "",
                               target="runs", passed=False)]
    return figures.read(out)


def _number(value) -> str:
    if value is None:
        return ""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:g}"


def rows(results: list[figures.Figure]) -> list[list[str]]:
    out = []
    for f in results:
        verdict = "" if f.passed is None else ("PASS" if f.passed else "MISS")
        floor = f"{_number(f.floor)} {f.unit} ({f.floor_what})" if f.floor is not None else ""
        out.append([f.bench, f.what, f"{_number(f.value)} {f.unit}", floor,
                    f"{f.ratio:g}x" if f.ratio is not None else "", f.target, verdict])
    return out


HEADER = ["bench", "figure", "value", "floor", "ratio", "target", ""]


def print_table(table: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [HEADER, *table]) for i in range(len(HEADER))]
    for r in [HEADER, *table]:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())


def print_markdown(table: list[list[str]]) -> None:
    print("| " + " | ".join(HEADER) + " |")
    print("|" + "---|" * len(HEADER))
    for r in table:
        print("| " + " | ".join(cell.replace("|", "\\|") for cell in r) + " |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples, a smaller backlog")
    parser.add_argument("--only", help="comma-separated: " + ",".join(BENCHES))
    parser.add_argument("--markdown", action="store_true", help="the summary as a Markdown table too")
    args = parser.parse_args()
    compile_project()
    names = args.only.split(",") if args.only else list(BENCHES)
    unknown = set(names) - set(BENCHES)
    if unknown:
        parser.error(f"no benchmark named {', '.join(sorted(unknown))}")
    started = time.monotonic()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        for name in names:
            results += run(name, args.quick, Path(tmp))
    table = rows(results)
    print(f"\n== summary{' (--quick)' if args.quick else ''}: {machine()}; "
          f"{(time.monotonic() - started) / 60:.1f} min ==")
    print_table(table)
    if args.markdown:
        print()
        print_markdown(table)
    missed = [f for f in results if f.passed is False]
    print(f"\ntargets: {sum(f.passed is True for f in results)} met, {len(missed)} missed")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
