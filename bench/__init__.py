"""intake's benchmarks: `python -m bench` runs them all (bench/run_all.py); each script also runs alone."""
import compileall
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]


def compile_project() -> None:
    """Byte-compile intake's packages, as installing them does: with PYTHONDONTWRITEBYTECODE set
    (it is, in this workplace) every command timed would otherwise compile the modules changed
    since the last compilation again at its start."""
    for package in ("pipeline", "parsers", "store", "outbox"):
        compileall.compile_dir(PROJECT / package, quiet=1)
