"""One measured figure beside its floor and target, and the JSON file a benchmark leaves for
bench/run_all.py (`--json PATH`) so the summary table never parses printed text."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class Figure:
    bench: str               # which script: "backlog", "memory", ...
    what: str                # the figure, e.g. "500 emails, end to end"
    value: float
    unit: str                # "msg/s", "ms", "MB", "x"
    floor: float | None = None
    floor_what: str = ""     # what the floor measures
    ratio: float | None = None   # how many times the floor's cost (>1: slower or bigger)
    target: str = ""         # e.g. ">= 10 msg/s"; empty: no target, reported for information
    passed: bool | None = None


def ratio_of_cost(value: float, floor: float) -> float:
    """For times and sizes: value / floor."""
    return value / floor if floor else float("nan")


def ratio_of_rate(value: float, floor: float) -> float:
    """For rates (messages per second): floor / value, so a ratio above 1 is still "slower"."""
    return floor / value if value else float("inf")


def write(path: str | None, figures: list[Figure]) -> None:
    if path:
        Path(path).write_text(json.dumps([asdict(f) for f in figures], ensure_ascii=False, indent=1),
                              encoding="utf-8")


def read(path: Path) -> list[Figure]:
    return [Figure(**f) for f in json.loads(path.read_text(encoding="utf-8"))]
