"""A backlog after an outage: N county emails waiting in Dovecot, one `intake poll --once`.

    .venv/bin/python bench/backlog.py [--messages 500] [--json FILE]

The figure is messages per second from starting `intake poll --once` until the last of the N
replies is in aiosmtpd (the command's start-up, every fetch, parse, judgement, store commit,
reply, and the copy of each reply APPENDed to Sent). Split at the first reply's arrival: before
it, reading and processing; after it, sending. The floor is the same N messages fetched with
imapclient alone (login, SELECT, UID SEARCH, BODY.PEEK[] in intake's batches of 25), over the
same IMAPS port.
"""
from __future__ import annotations

import argparse
from collections import Counter
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import figures  # noqa: E402
from bench.county_mail import county_emails, describe  # noqa: E402
from bench.servers import BENCH_SMTP, MailServers  # noqa: E402
from pipeline.sources import FETCH_BATCH  # noqa: E402
from tests.cli import INTAKE  # noqa: E402

TARGET = 10.0   # messages per second


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


def run_intake(servers: MailServers, config: Path, n: int, profile: str | None = None) -> dict:
    command = [str(INTAKE), "--config", str(config), "poll", "--once"]
    if profile:   # collapsed stacks for flamegraph.pl or speedscope; slows the run a little
        command = [str(Path(sys.executable).with_name("py-spy")), "record", "--format", "raw",
                   "--rate", "200", "-o", profile, "--", *command]
    started = time.monotonic()
    proc = subprocess.Popen(command, cwd=config.parent,
                            env=servers.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        servers.smtp.wait_for_count(1, timeout=600)
        first = time.monotonic()
        last = servers.smtp.wait_for_count(n, timeout=600)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    statuses = Counter(str(m.message["X-Intake-Status"]) for m in servers.smtp.messages)
    return {"total": last - started, "statuses": dict(statuses), "processing": first - started, "sending": last - first,
            "summary": out.strip()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--json")
    parser.add_argument("--profile", metavar="FILE", help="record intake with py-spy into FILE")
    args = parser.parse_args()
    n = args.messages
    emails = county_emails(n)
    with MailServers() as servers, tempfile.TemporaryDirectory(prefix="bench-backlog-") as tmp:
        append_all(servers, emails)
        floor_s, fetched = fetch_floor(servers)
        assert fetched == n, fetched
        run = run_intake(servers, servers.config(Path(tmp)), n, args.profile)
    rate, floor_rate = n / run["total"], n / floor_s
    print(f"backlog: {describe(emails)}; [smtp] " + ", ".join(f"{k} = {v}" for k, v in BENCH_SMTP.items()))
    print(f"  intake: {run['summary']}; replies by X-Intake-Status: {run['statuses']}")
    print(f"  poll --once until the last reply:  {run['total']:6.1f} s  {rate:6.1f} msg/s   "
          f"(read + process to the first reply {run['processing']:.1f} s, sending {run['sending']:.1f} s)")
    print(f"  floor, imapclient fetch alone:     {floor_s:6.1f} s  {floor_rate:6.1f} msg/s   "
          f"ratio {figures.ratio_of_rate(rate, floor_rate):.1f}")
    print(f"  target >= {TARGET:g} msg/s: {'PASS' if rate >= TARGET else 'MISS'}")
    figures.write(args.json, [
        figures.Figure("backlog", f"{n} emails, poll --once to last reply", round(rate, 1), "msg/s",
                       round(floor_rate, 1), "imapclient BODY.PEEK[] fetch alone",
                       round(figures.ratio_of_rate(rate, floor_rate), 1), f">= {TARGET:g} msg/s",
                       rate >= TARGET),
        figures.Figure("backlog", "  of which read + process (to first reply)", round(run["processing"], 1), "s"),
        figures.Figure("backlog", "  of which sending (first to last reply)", round(run["sending"], 1), "s"),
    ])


if __name__ == "__main__":
    main()
