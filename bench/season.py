"""A season's store, grown by polling realistic mail, cached under var/bench for the benchmarks.

The mail is what a county's season brings, in turns of four: a county's form (each county
resending edited versions of its three candidates' forms, so histories grow as they do and
no two versions in a day are the same file), a question for the contact (passed on, and
marked answered by the contact a few hours later, as `intake answered` does), a clerk's
"收到，谢谢" to our reply (recorded, not answered), and an out-of-office answer (recorded, not
answered). One email every 50 seconds, so whatever the store's size the last day holds about
850 replies, and every reply is sent by the pass that made it (a worker polling every minute
keeps up with one email in 50 seconds). The store is grown by the real pass
(pipeline.poll.run_pass) in-process, a thousand emails at a time, each size continuing from
the cached smaller one, and kept under var/bench/<VERSION>-<size>/ so the next run reuses it;
`fresh_copy` gives a benchmark its own copy (the attachments and reply bodies hard-linked:
intake never rewrites a stored file).
"""
from __future__ import annotations

import datetime as dt
import functools
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.county_mail import FAMILY_NAMES, FIRST_DAY, GIVEN, county_senders  # noqa: E402
from outbox.compose import reply_message_id  # noqa: E402
from pipeline import sample_mail, samples  # noqa: E402
from tests.configs import MAILBOX, write_config  # noqa: E402

VERSION = "season-v2"          # change when the store's layout or the season's mail changes
CACHE = Path(__file__).resolve().parents[1] / "var" / "bench"
STEP = dt.timedelta(seconds=50)
CHUNK = 1000
EDITS = 24                     # a candidate's form comes back edited; 24 edits before one repeats
ANSWERED_AFTER = dt.timedelta(hours=4)   # when the contact has answered a county's question


def season_email(i: int) -> tuple[bytes, dt.datetime]:
    """The i-th email of the season: (raw bytes, when it arrived)."""
    counties = county_senders()
    county_no = i % len(counties)
    _, sender = counties[county_no]
    received = FIRST_DAY + STEP * i
    message_id = f"<season-{i}@{sender.split('@')[1]}>"
    kind = (i // len(counties)) % 4
    if kind == 0:
        turn = i // (4 * len(counties))
        name = FAMILY_NAMES[county_no] + GIVEN[turn % len(GIVEN)]
        raw = sample_mail.foxmail_email(sender, MAILBOX, f"信息技术能手推荐表（{name}）",
                                        [(f"{name}推荐表.docx", edited_form(name, county_no, turn // len(GIVEN) % EDITS))],
                                        date=received, message_id=message_id)
    elif kind == 1:
        raw = sample_mail.foxmail_email(sender, MAILBOX, "关于推荐表的问题", [],
                                        body="请问推荐表需要盖章吗？", date=received, message_id=message_id)
    elif kind == 2:   # answering our reply to the county's form two turns before
        ours = reply_message_id(f"<season-{i - 2 * len(counties)}@{sender.split('@')[1]}>", "reply", MAILBOX)
        raw = sample_mail.foxmail_email(sender, MAILBOX, "回复：信息技术能手推荐表", [],
                                        body="收到，谢谢！", date=received, message_id=message_id,
                                        extra_headers={"In-Reply-To": ours, "References": ours})
    else:
        raw = sample_mail.auto_reply(sender, MAILBOX)
    return raw, received


@functools.cache
def edited_form(name: str, variant: int, edit: int) -> bytes:
    """The candidate's form after `edit` edits (the home address's room number changes)."""
    fields = {**samples.SAMPLE_CANDIDATES[variant % len(samples.SAMPLE_CANDIDATES)], "name": name}
    if edit:
        fields["home_address"] += f"{edit + 100}室"
    return samples.build_form_docx(fields)


def deliver(inbox: Path, first: int, count: int) -> dt.datetime:
    """Emails first..first+count-1 into the Maildir's new/; returns when the last arrived."""
    for sub in ("tmp", "new", "cur"):
        (inbox / sub).mkdir(parents=True, exist_ok=True)
    received = FIRST_DAY
    for i in range(first, first + count):
        raw, received = season_email(i)
        target = inbox / "new" / f"{int(received.timestamp())}.season{i}.bench"
        target.write_bytes(raw)
        os.utime(target, (received.timestamp(), received.timestamp()))
    return received


def _grow(directory: Path, start: int, stop: int) -> None:
    from pipeline.poll import run_pass
    from pipeline.settings import load_settings
    from store.repository import Store

    # Every reply sent by the pass that made it, as a worker polling every minute does.
    settings = load_settings(write_config(directory, smtp=_sending_all(directory)))
    store = Store(settings.store.path, settings.store.files)
    try:
        for first in range(start, stop, CHUNK):
            count = min(CHUNK, stop - first)
            last = deliver(settings.mailbox.path, first, count)
            report = run_pass(settings, store, clock=_season_clock(first, last))
            assert report.read == count and report.failed == 0, report.summary()
            assert report.delivery.waiting == 0, report.summary()
            _answer_questions(store, settings, last)
            for sub in ("cur", "new"):   # keep the bench's disk use to the store itself
                shutil.rmtree(settings.mailbox.path / sub)
            shutil.rmtree(directory / "sent", ignore_errors=True)
            print(f"    {first + count:,} stored", flush=True)
    finally:
        store.close()


def _sending_all(directory: Path) -> dict:
    return {"transport": "maildir", "from_address": MAILBOX, "path": str(directory / "sent"),
            "batch_size": 100000}


def _answer_questions(store, settings, now: dt.datetime) -> None:
    """The contact answers each question a few hours after it came (`intake answered`)."""
    from pipeline.questions import mark_answered, open_questions

    for question in open_questions(store.submissions.all()):
        if dt.datetime.fromisoformat(question["received_at"]) <= now - ANSWERED_AFTER:
            mark_answered(store, settings, question["message_id"], now)


def _season_clock(first: int, last: dt.datetime):
    """A clock for one pass: each reading one email later (the pass reads it once per email),
    so each email is judged, and its reply dated, about when it arrived."""
    readings = iter(range(first, 1 << 62))
    return lambda: min(FIRST_DAY + STEP * next(readings), last) + dt.timedelta(seconds=1)


def cached_store(size: int) -> Path:
    """The directory of a store grown to `size` emails (built, and cached, when missing)."""
    target = CACHE / f"{VERSION}-{size}"
    if target.exists():
        _upgraded(target)
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    smaller = sorted((int(p.name.rsplit("-", 1)[1]), p) for p in CACHE.glob(f"{VERSION}-*")
                     if p.name.rsplit("-", 1)[1].isdigit() and int(p.name.rsplit("-", 1)[1]) < size)
    # Grown in memory (tmpfs) when the machine has one: the pass fsyncs each commit, which on a
    # shared disk would make a 50,000-email season take hours. The measurements run on disk.
    scratch = Path("/dev/shm") if Path("/dev/shm").is_dir() else CACHE
    work = scratch / f".building-{VERSION}-{size}"
    shutil.rmtree(work, ignore_errors=True)
    start = 0
    if smaller:
        start, source = smaller[-1]
        shutil.copytree(source, work, copy_function=_link_or_copy)
    else:
        work.mkdir()
    print(f"  growing a store to {size:,} emails (from {start:,}) by polling; cached in {target}", flush=True)
    began = time.monotonic()
    _grow(work, start, size)
    shutil.rmtree(work / "inbox", ignore_errors=True)
    if scratch is CACHE:
        work.rename(target)
    else:
        shutil.copytree(work, target.with_name(target.name + ".tmp"))
        target.with_name(target.name + ".tmp").rename(target)
        shutil.rmtree(work)
    print(f"  built in {time.monotonic() - began:.0f} s", flush=True)
    return target


def _upgraded(directory: Path) -> None:
    """A store cached by an earlier intake gets what a writer adds when it opens it (the
    mirror tables) and the snapshots its next compaction writes, once, here: not inside the
    command being timed."""
    from store.repository import Store

    store = Store(directory / "intake.json", directory / "files")
    try:
        if not store.mirrored or any(p.read_bytes()[:1] == b"{" for p in directory.glob("intake.*.json")):
            store.lock()
            store.compact()   # the snapshots as lines (store/storage.py), as the first compaction does
    finally:
        store.close()


def fresh_copy(size: int, directory: Path) -> Path:
    """A private copy of the cached store in `directory`, with a config; returns the config."""
    shutil.copytree(cached_store(size), directory, copy_function=_link_or_copy, dirs_exist_ok=True)
    return write_config(directory)


def _link_or_copy(src: str, dst: str) -> None:
    """Stored files (attachments, reply bodies) are never rewritten in place: a hard link is a
    copy; the store's JSON files are rewritten, so they are copied."""
    try:
        if "/files/" in src:
            return os.link(src, dst)
    except OSError:   # another file system
        pass
    shutil.copy2(src, dst)


def store_bytes(directory: Path) -> tuple[int, int]:
    """(bytes of the store's tables, snapshots and journal, bytes of the files beside them)."""
    json_bytes = sum(p.stat().st_size for p in directory.glob("intake*") if p.is_file())
    files = sum(p.stat().st_size for p in (directory / "files").rglob("*") if p.is_file())
    return json_bytes, files


if __name__ == "__main__":
    for n in map(int, (sys.argv[1] if len(sys.argv) > 1 else "100,10000,50000").split(",")):
        cached_store(n)
