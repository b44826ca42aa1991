"""The store under SIGKILL: a writer killed at random instants, hundreds of times.

Each transaction (one journal line) records a submission with a payload and its candidate (two
linked documents) and drops the previous submission's payload; some payloads are large, so a
kill can cut a line in the middle of its write. After each kill the store must open, hold whole
transactions only (every submission with its candidate, one payload: the last), and hold at
least every transaction the writer had acknowledged before it died.
"""
from __future__ import annotations

import os
import random
import select
import signal
import time
from pathlib import Path


from store import storage
from store.repository import Store


def payload_kb(rng: random.Random) -> int:
    """Mostly small commits, so the journal holds many lines between compactions; now and then
    a large one (up to 768 KB of hex), which a kill can cut in the middle of its write."""
    return rng.randint(1, 16) if rng.random() < 0.7 else rng.randint(128, 384)


def _writer(directory: Path, compact_floor: int, acks: int, seed: int) -> None:
    """The child: commit transactions until killed, writing each acknowledged number to `acks`."""
    storage.COMPACT_FLOOR_BYTES = compact_floor
    if not compact_floor:   # fold the journal away at every commit
        storage.COMPACT_RATIO = 0
    storage.COMPACT_JOURNAL_BYTES = 4 << 20   # keeps each open cheap
    store = Store(directory / "intake.json", directory / "files")
    store.lock()   # the writer's open: a torn journal tail is folded away here
    n = len(store.submissions.all())
    os.write(acks, b"ready\n")
    rng = random.Random(seed)
    while True:
        mid = f"<m{n}@fault.test>"
        payload = os.urandom(payload_kb(rng) * 1024).hex()
        with store.transaction():
            store.submissions.add({"message_id": mid, "n": n, "raw": payload, "raw_len": len(payload)})
            store.candidates.put({"county": "荷塘区", "name": f"候选{n}", "message_id": mid, "n": n})
            if n:
                store.submissions.update(f"<m{n - 1}@fault.test>", raw="", raw_len=0)
        os.write(acks, b"%d\n" % n)
        n += 1


def _spawn(directory: Path, compact_floor: int, seed: int) -> tuple[int, int]:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:   # pragma: no cover — the child never returns, it is killed
        os.close(r)
        try:
            _writer(directory, compact_floor, w, seed)
        finally:
            os._exit(1)
    os.close(w)
    return pid, r


def _read_all(fd: int) -> bytes:
    out = b""
    while chunk := os.read(fd, 65536):
        out += chunk
    return out


def _check(directory: Path, before: int, acknowledged: int, context: str) -> int:
    """Open the store as a reader would; return how many transactions it holds."""
    store = Store(directory / "intake.json", directory / "files")
    subs = store.submissions.all()
    cands = store.candidates.all()
    numbers = sorted(s["n"] for s in subs)
    assert numbers == list(range(len(subs))), f"{context}: transactions missing or repeated"
    assert sorted(c["n"] for c in cands) == numbers, f"{context}: a submission without its candidate"
    assert all(c["message_id"] == f"<m{c['n']}@fault.test>" for c in cands), context
    for s in subs:   # the last payload whole, every earlier one dropped by the next commit
        assert len(s["raw"]) == s["raw_len"], f"{context}: document {s['n']} cut short"
        assert s["raw_len"] == 0 or s["n"] == len(subs) - 1, f"{context}: half a transaction"
    assert len(subs) >= before, f"{context}: the store went back from {before} to {len(subs)}"
    assert len(subs) >= acknowledged, f"{context}: {acknowledged} acknowledged, {len(subs)} kept"
    store.close()
    return len(subs)


def _kill_repeatedly(directory: Path, kills: int, compact_floor: int, seed: int) -> dict:
    rng = random.Random(seed)
    count, torn = 0, 0
    journal = directory / "intake.json.journal"
    for i in range(kills):
        pid, acks = _spawn(directory, compact_floor, rng.randrange(2**32))
        seen = b""
        if rng.random() < 0.8:   # most kills land among commits, the others while it opens
            while seen.count(b"\n") < 2:   # "ready", then a first commit
                assert select.select([acks], [], [], 10)[0], f"seed {seed}: the writer is stuck"
                seen += os.read(acks, 64)
        time.sleep(rng.uniform(0, 0.012))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        lines = (seen + _read_all(acks)).split()
        os.close(acks)
        acknowledged = max((int(x) + 1 for x in lines if x.isdigit()), default=0)
        if journal.exists() and journal.stat().st_size and not journal.read_bytes().endswith(b"\n"):
            torn += 1
        count = _check(directory, count, acknowledged, f"seed {seed}, kill {i + 1}")
    leftovers = len(list(directory.glob(".intake-*.tmp")))   # snapshots a kill cut short
    return {"transactions": count, "torn": torn, "leftover_tmp": leftovers}


def test_hundreds_of_kills_leave_whole_transactions_only(tmp_path):
    seed = random.randrange(2**32)
    print(f"seed {seed}")
    started = time.monotonic()
    result = _kill_repeatedly(tmp_path, kills=300, compact_floor=storage.COMPACT_FLOOR_BYTES, seed=seed)
    print(f"300 kills: {result}, {time.monotonic() - started:.1f} s")
    assert result["transactions"] >= 300 * 0.8, result   # most lives committed before the kill


def test_kills_during_compaction_leave_the_old_or_the_new_snapshot(tmp_path):
    seed = random.randrange(2**32)
    print(f"seed {seed}")
    result = _kill_repeatedly(tmp_path, kills=120, compact_floor=0, seed=seed)
    print(f"120 kills while compacting at every commit: {result}")
    assert result["transactions"] >= 120 * 0.8, result


def test_a_reader_beside_a_compacting_writer_never_sees_the_store_go_back(tmp_path):
    """What `intake export` or `intake status` beside a running worker would see."""
    pid, acks = _spawn(tmp_path, compact_floor=0, seed=1)
    try:
        assert select.select([acks], [], [], 10)[0]
        seen, went_back, deadline = 0, [], time.monotonic() + 2
        while time.monotonic() < deadline:
            store = Store(tmp_path / "intake.json", tmp_path / "files")
            count = len(store.submissions.all())
            store.close()
            if count < seen:
                went_back.append((seen, count))
            seen = max(seen, count)
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(acks)
    assert not went_back, f"the store went back {len(went_back)} time(s), e.g. {went_back[:3]}"
