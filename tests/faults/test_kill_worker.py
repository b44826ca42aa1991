"""Done-when 1 at CI size: `intake run` killed with SIGKILL at random moments at least 20 times
while 40 county emails arrive over IMAP; none lost, none recorded twice, none answered twice.
The full size is `.venv/bin/python -m tests.faults.kill_worker --messages 200 --kills 20`."""
from __future__ import annotations

import re
import subprocess
import sys

from tests.configs import REPO


def test_killing_the_worker_loses_nothing_and_repeats_nothing():
    result = subprocess.run([sys.executable, "-m", "tests.faults.kill_worker", "--messages", "40", "--kills", "20"],
                            cwd=REPO, capture_output=True, text=True, timeout=240)
    print(result.stdout, result.stderr[-3000:])
    found = re.search(r"^injections=(\d+) lost=(\d+) duplicates=(\d+) duplicate_replies=(\d+) uncertain=(\d+)$",
                      result.stdout, re.MULTILINE)
    assert found, result.stdout + result.stderr[-3000:]
    injections, lost, duplicates, duplicate_replies, _uncertain = map(int, found.groups())
    assert injections >= 20
    assert (lost, duplicates, duplicate_replies) == (0, 0, 0), result.stdout
    assert result.returncode == 0, result.stdout   # also: every message answered, clean SIGTERM
