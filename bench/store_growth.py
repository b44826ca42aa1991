"""Does the cost of one message grow with the store? The same 40 county emails processed
(parse, judge, commit, reply written to the Maildir transport) into stores already holding
100, 1,000 and 10,000 submissions with their candidates and replies.

    .venv/bin/python bench/store_growth.py [--sizes 100,1000,10000] [--messages 40]
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import figures  # noqa: E402
from pipeline import sample_mail, samples  # noqa: E402
from pipeline.demo import write_maildir  # noqa: E402
from pipeline.poll import run_pass  # noqa: E402
from pipeline.settings import load_settings  # noqa: E402
from store.repository import Store  # noqa: E402
from tests.configs import MAILBOX, write_config  # noqa: E402

GROWTH_TARGET = 2.0   # the largest store's cost per message, at most this many times the smallest's
JULY = dt.datetime(2022, 7, 20, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))


def seed(store: Store, n: int) -> None:
    """n earlier submissions, each with its sent reply, as a long season leaves them; the
    candidates stay as few as the campaign allows (nine counties, a few each)."""
    reply = "x" * 6000   # a stored reply is a few kB of MIME
    with store.transaction():
        for i in range(n):
            mid = f"<seed-{i}@example.cn>"
            store.submissions.add({"message_id": mid, "from": f"s{i % 50}@example.cn", "county": "荷塘区",
                                   "received_at": JULY.isoformat(), "status": "accepted", "reason": "",
                                   "problems": [], "files": [], "sha256": f"{i:064d}", "subject": "推荐表"})
            if i < 36:
                store.candidates.put({"county": f"县{i % 9}", "name": f"人选{i}", "status": "accepted",
                                      "versions": [{"message_id": mid}], "report": None})
            store.outbox.add({"reply_id": f"<reply-{i}@163.com>", "submission_id": mid, "kind": "reply",
                              "to": f"s{i % 50}@example.cn", "subject": "【已受理】", "status": "sent",
                              "attempts": 1, "created_at": (JULY - dt.timedelta(days=3)).isoformat(),
                              "sent_at": JULY.isoformat(), "last_error": "", "raw": reply, "thread": []})
    store.compact()


def emails(count: int) -> list[tuple[bytes, dt.datetime]]:
    senders = ["hetang@example.cn", "lusong@example.cn", "shifeng@example.cn", "tianyuan@example.cn"]
    form = samples.build_form_docx(samples.SAMPLE_CANDIDATE)
    out = []
    for i in range(count):
        raw = sample_mail.foxmail_email(senders[i % 4], MAILBOX, f"推荐表{i}", [(f"推荐表{i}.docx", form)])
        out.append((raw, JULY + dt.timedelta(seconds=i)))
    return out


def cost_per_message(size: int, batch: list) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(write_config(Path(tmp)))
        store = Store(settings.store.path, settings.store.files)
        seed(store, size)
        write_maildir(settings.mailbox.path, batch)
        started = time.perf_counter()
        report = run_pass(settings, store, clock=lambda: JULY)
        elapsed = time.perf_counter() - started
        store.close()
        assert report.read == len(batch) and report.failed == 0, report.summary()
        return elapsed * 1000 / len(batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--messages", type=int, default=40)
    parser.add_argument("--json", help="also write the figures here, for bench/run_all.py")
    args = parser.parse_args()
    out = []
    sizes = [int(s) for s in args.sizes.split(",")]
    batch = emails(args.messages)
    cost_per_message(sizes[0], batch[:5])   # imports, templates and caches warm, as in the worker
    print(f"{'stored':>8}{'ms/message':>12}{'vs smallest':>13}")
    base = None
    for size in sizes:
        ms = cost_per_message(size, batch)
        base = base or ms
        print(f"{size:>8}{ms:>12.1f}{ms / base:>12.2f}x")
        largest = size == sizes[-1] and size != sizes[0]
        out.append(figures.Figure(
            "store growth", f"ms per message, {size:,} stored", round(ms, 1), "ms", round(base, 1),
            f"the same with {sizes[0]:,} stored", round(ms / base, 2),
            f"<= {GROWTH_TARGET:g}x floor" if largest else "", (ms / base <= GROWTH_TARGET) if largest else None))
    figures.write(args.json, out)


if __name__ == "__main__":
    main()
