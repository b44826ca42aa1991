"""A backlog after an outage: N county emails waiting in Dovecot, one `intake poll --once`.

    .venv/bin/python bench/backlog.py [--messages 500] [--runs 3] [--json FILE]

The figure is messages per second from starting `intake poll --once` until the last of the N
replies is in aiosmtpd (the command's start-up, every fetch, parse, judgement, store commit,
reply, and the copy of each reply APPENDed to Sent). Split at the first reply's arrival: before
it, reading and processing; after it, sending. Two floors: the bare pipeline — the same N
emails parsed by the standard library's email package, each .docx unzipped and its
word/document.xml parsed by lxml, one fsynced journal line and one reply file per message,
in-process, the messages already in memory — which the target is set beside (aim: within 4x);
and the same N messages fetched with imapclient alone (login, SELECT, UID SEARCH, BODY.PEEK[]
in intake's batches of 25) over the same IMAPS port, for information. Also for information: the
same backlog into a fresh store with the IMAP server behind a slower link (bench/servers.py
SlowLink: 30 ms round trip, 48 Mbit/s), as 163 is across the internet.

The same code gives anywhere from ~55 to ~80 msg/s on this shared 2-core machine within an hour,
so one run says more about the minute than about intake: intake runs RUNS times (each into a
fresh store, every message new to it), alternating with the bare pipeline so that a change in
the machine's pace falls on both alike, and each figure is the median of its runs. Every run
is printed.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import zipfile
from collections import Counter
from email import policy
from email.parser import BytesParser
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import figures  # noqa: E402
from bench.county_mail import county_emails, describe  # noqa: E402
from bench.servers import BENCH_SMTP, MailServers, SlowLink  # noqa: E402
from pipeline.sources import FETCH_BATCH  # noqa: E402
from tests.cli import INTAKE  # noqa: E402

TARGET = 60.0   # messages per second
AIM = 4.0       # times the bare pipeline's cost
RUNS = 3        # intake runs, alternating with as many of the bare pipeline; medians
LINK = {"delay": 0.015, "rate": 6e6}   # for information: 30 ms round trip, 48 Mbit/s each way


def append_all(servers: MailServers, emails) -> None:
    with servers.imap() as client:
        for raw, received in emails:
            client.append("INBOX", raw, msg_time=received)


def fetch_floor(servers: MailServers) -> tuple[float, int]:
    """Seconds for imapclient alone to log in and fetch every message in INBOX."""
    started = time.perf_counter()
    with servers.imap() as client:
        client.select_folder("INBOX")
        uids = client.search(["UID", "1:*"])
        fetched = 0
        for i in range(0, len(uids), FETCH_BATCH):
            batch = uids[i:i + FETCH_BATCH]
            client.fetch(batch, [b"RFC822.SIZE", b"INTERNALDATE"])
            fetched += len(client.fetch(batch, [b"BODY.PEEK[]"]))
    return time.perf_counter() - started, fetched


def bare_pipeline(emails, directory: Path) -> float:
    """Seconds for the least any pipeline must do with these emails (see the module's text)."""
    from lxml import etree

    directory.mkdir(parents=True, exist_ok=True)
    journal = directory / "journal"
    started = time.perf_counter()
    fd = os.open(journal, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for i, (raw, _) in enumerate(emails):
            msg = BytesParser(policy=policy.default).parsebytes(raw)
            texts = []
            for part in msg.iter_attachments():
                with zipfile.ZipFile(io.BytesIO(part.get_content())) as docx:
                    root = etree.fromstring(docx.read("word/document.xml"))
                texts.append("".join(root.itertext())[:64])
            line = json.dumps({"c": [[str(msg["Message-ID"]), texts]]}, ensure_ascii=False) + "\n"
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
            reply = directory / f"reply-{i}.eml"
            reply.write_bytes(b"Subject: re\r\n\r\n" + line.encode("utf-8"))
    finally:
        os.close(fd)
    return time.perf_counter() - started


def run_intake(servers: MailServers, config: Path, n: int, profile: str | None = None, already: int = 0) -> dict:
    """`already`: replies the SMTP server holds from an earlier run."""
    command = [str(INTAKE), "--config", str(config), "poll", "--once"]
    if profile:   # collapsed stacks for flamegraph.pl or speedscope; slows the run a little
        command = [str(Path(sys.executable).with_name("py-spy")), "record", "--format", "raw",
                   "--rate", "200", "-o", profile, "--", *command]
    started = time.monotonic()
    proc = subprocess.Popen(command, cwd=config.parent,
                            env=servers.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        servers.smtp.wait_for_count(already + 1, timeout=600)
        first = time.monotonic()
        last = servers.smtp.wait_for_count(already + n, timeout=600)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    statuses = Counter(str(m.message["X-Intake-Status"]) for m in servers.smtp.messages[already:])
    return {"total": last - started, "statuses": dict(statuses), "processing": first - started, "sending": last - first,
            "summary": out.strip()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--json")
    parser.add_argument("--runs", type=int, default=RUNS, help="intake runs (and bare pipeline runs)")
    parser.add_argument("--profile", metavar="FILE", help="record intake's first run with py-spy into FILE")
    args = parser.parse_args()
    n = args.messages
    emails = county_emails(n)
    with MailServers() as servers, tempfile.TemporaryDirectory(prefix="bench-backlog-") as tmp:
        append_all(servers, emails)
        floor_s, fetched = fetch_floor(servers)
        assert fetched == n, fetched
        runs, bares = [], []
        for i in range(args.runs):   # each into a fresh store: all n are new to it
            store = Path(tmp) / f"run-{i}"
            store.mkdir()
            intake_first = i % 2 == 0
            if not intake_first:
                bares.append(bare_pipeline(emails, store / "bare"))
            runs.append(run_intake(servers, servers.config(store), n, args.profile if i == 0 else None,
                                   already=i * n))
            if intake_first:
                bares.append(bare_pipeline(emails, store / "bare"))
        with SlowLink(servers.dovecot.tls_port, **LINK) as link:
            (Path(tmp) / "link").mkdir()
            slow = run_intake(servers, servers.config(Path(tmp) / "link", imap_port=link.port), n,
                              already=args.runs * n)
    run = sorted(runs, key=lambda r: r["total"])[len(runs) // 2]   # the median run
    bare_s = statistics.median(bares)
    rate, floor_rate, bare_rate = n / run["total"], n / floor_s, n / bare_s
    print(f"backlog: {describe(emails)}; [smtp] " + ", ".join(f"{k} = {v}" for k, v in BENCH_SMTP.items()))
    print(f"  intake: {run['summary']}; replies by X-Intake-Status: {run['statuses']}")
    each = ", ".join(f"{n / r['total']:.1f}" for r in runs)
    print(f"  each run, intake: {each} msg/s; bare pipeline: {', '.join(f'{n / b:.1f}' for b in bares)} msg/s "
          "(alternating; medians below)")
    print(f"  poll --once until the last reply:  {run['total']:6.1f} s  {rate:6.1f} msg/s   "
          f"(read + process to the first reply {run['processing']:.1f} s, sending {run['sending']:.1f} s)")
    print(f"  floor, imapclient fetch alone:     {floor_s:6.1f} s  {floor_rate:6.1f} msg/s   "
          f"ratio {figures.ratio_of_rate(rate, floor_rate):.1f}")
    print(f"  floor, bare pipeline:              {bare_s:6.1f} s  {bare_rate:6.1f} msg/s   "
          f"ratio {figures.ratio_of_rate(rate, bare_rate):.1f} (aim <= {AIM:g})")
    print(f"  target >= {TARGET:g} msg/s: {'PASS' if rate >= TARGET else 'MISS'}")
    link_rate = n / slow["total"]
    print(f"  for information, the IMAP server {LINK['delay'] * 2000:.0f} ms away at {LINK['rate'] * 8 / 1e6:.0f} Mbit/s: "
          f"{slow['total']:6.1f} s  {link_rate:6.1f} msg/s")
    figures.write(args.json, [
        figures.Figure("backlog", f"{n} emails, poll --once to last reply (median of {len(runs)})",
                       round(rate, 1), "msg/s",
                       round(bare_rate, 1), "bare pipeline: stdlib MIME, unzip+lxml, fsynced line + reply file",
                       round(figures.ratio_of_rate(rate, bare_rate), 1),
                       f">= {TARGET:g} msg/s (aim <= {AIM:g}x floor)", rate >= TARGET),
        figures.Figure("backlog", "  fetch alone (imapclient BODY.PEEK[])", round(floor_rate, 1), "msg/s"),
        figures.Figure("backlog", "  of which read + process (to first reply)", round(run["processing"], 1), "s"),
        figures.Figure("backlog", "  of which sending (first to last reply)", round(run["sending"], 1), "s"),
        figures.Figure("backlog", f"  the same, IMAP server {LINK['delay'] * 2000:.0f} ms away at "
                       f"{LINK['rate'] * 8 / 1e6:.0f} Mbit/s", round(link_rate, 1), "msg/s"),
    ])


if __name__ == "__main__":
    main()
