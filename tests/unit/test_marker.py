"""Markers beside the store (store/marker.py) written over in place, as the in-flight marker is
for every message: whatever moment the process dies at, the file names one thing, whole."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from store.marker import Marker

LONG = json.dumps({"ref": "maildir:first", "note": "x" * 300})
SHORT = json.dumps({"ref": "maildir:second"})
ROOT = Path(__file__).resolve().parents[2]


def test_a_short_text_written_over_a_long_one_reads_whole_in_the_same_file(tmp_path):
    marker = Marker(tmp_path / "intake.json", "inflight")
    marker.overwrite(LONG)
    inode = marker.path.stat().st_ino
    marker.overwrite(SHORT)
    assert json.loads(marker.get()) == {"ref": "maildir:second"}   # the spaces cover the rest
    assert marker.path.stat().st_size == len(LONG)
    assert marker.path.stat().st_ino == inode                        # written in place
    marker.release()


def test_a_blank_marker_names_nothing_and_stays_until_cleared(tmp_path):
    marker = Marker(tmp_path / "intake.json", "inflight")
    marker.overwrite(LONG)
    marker.blank()
    assert marker.get().strip() == "" and marker.held_open
    marker.release()
    assert not marker.held_open and marker.get().strip() == ""     # released, not removed
    marker.clear()
    assert marker.get() is None


def test_a_longer_marker_left_by_an_earlier_process_is_covered_too(tmp_path):
    earlier = Marker(tmp_path / "intake.json", "inflight")
    earlier.overwrite(LONG)
    earlier.release()
    marker = Marker(tmp_path / "intake.json", "inflight")
    marker.overwrite(SHORT)
    assert json.loads(marker.get()) == {"ref": "maildir:second"}
    marker.release()


WRITER = """
import sys
from store.marker import Marker
marker = Marker(sys.argv[1], "inflight")
texts = sys.argv[2:]
marker.overwrite(texts[0])
print("writing", flush=True)
n = 0
while True:
    n += 1
    marker.overwrite(texts[n % 2])
"""


def test_a_writer_killed_at_any_moment_leaves_one_text_whole(tmp_path):
    store_path = tmp_path / "intake.json"
    for delay in (0.0, 0.01, 0.03, 0.07):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(store_path), LONG, SHORT],
                                  cwd=ROOT, stdout=subprocess.PIPE, text=True)
        try:
            assert writer.stdout.readline() == "writing\n"
            time.sleep(delay)
        finally:
            os.kill(writer.pid, signal.SIGKILL)
            writer.wait()
            writer.stdout.close()
        assert json.loads(Marker(store_path, "inflight").get()) in (json.loads(LONG), json.loads(SHORT))
