"""Fault injection: `intake run` killed with SIGKILL at random moments while county mail arrives.

    .venv/bin/python -m tests.faults.kill_worker --messages 200 --kills 20 [--seed N]

Starts a private Dovecot and an aiosmtpd server, and APPENDs the county emails in waves: one
before the first start, one during each worker's life. Each worker (the real `intake run`) is
killed with SIGKILL after a random delay (--min-delay..--max-delay seconds from its start, so a
kill lands in start-up, reading, parsing, committing, sending or waiting) and started again,
--kills times. The last one is left to drain the batch — every message recorded, no reply
pending — and stopped with SIGTERM. Then, from the json export, the store and what the SMTP
server received, it prints

    injections=K lost=L duplicates=D duplicate_replies=R uncertain=U

lost: appended messages with no submission; duplicates: a message recorded more than once (a
repeated or '#'-suffixed Message-ID among submissions, or among a candidate's versions);
duplicate_replies: more than one delivery for one In-Reply-To (a digest: one Message-ID or one
date); uncertain: replies being handed to the server (envelope to answer) at a kill, never resent by
themselves (allowed). A second line gives the details. Exits 1 unless lost, duplicates and
duplicate replies are 0, every message not `uncertain` was answered, and every worker either
was killed or stopped cleanly.
"""
from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from store.repository import Store
from tests.faults.county_mail import SMTP_PASSWORD, SMTP_USER, append_all, county_email, imap_smtp_config
from tests.servers.dovecot import DovecotServer
from tests.servers.smtp import SmtpServer

INTAKE = Path(sys.executable).with_name("intake")


@dataclass
class Outcome:
    injections: int = 0
    lost: list[str] = field(default_factory=list)
    duplicates: int = 0
    duplicate_replies: int = 0
    uncertain: int = 0
    unanswered: list[str] = field(default_factory=list)
    replies: int = 0
    digests: int = 0
    set_aside: int = 0
    killed_processing: int = 0   # kills that found a message in hand (the in-flight marker)
    killed_handing_over: int = 0  # kills that found a reply's final dot in flight
    bad_exits: list[str] = field(default_factory=list)
    drained: bool = False

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicates or self.duplicate_replies or self.unanswered
                    or self.bad_exits or not self.drained)

    def line(self) -> str:
        return (f"injections={self.injections} lost={len(self.lost)} duplicates={self.duplicates} "
                f"duplicate_replies={self.duplicate_replies} uncertain={self.uncertain}")


class Worker:
    """One `intake run` process, its log in its own file."""

    def __init__(self, config: Path, env: dict, log: Path):
        self.log = log
        with open(log, "wb") as err:
            self.proc = subprocess.Popen([str(INTAKE), "--config", str(config), "run"], cwd=config.parent,
                                         env=env, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        self.started = time.monotonic()

    def kill(self) -> int | None:
        """SIGKILL; returns the code it had already exited with, if it died by itself."""
        early = self.proc.poll()
        if early is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        return early

    def stop(self, timeout: float = 15) -> int | None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None


def waves(items: list, count: int) -> list[list]:
    size, extra = divmod(len(items), count)
    out, start = [], 0
    for i in range(count):
        end = start + size + (i < extra)
        out.append(items[start:end])
        start = end
    return out


def drained(store_path: Path, message_ids: set[str]) -> bool:
    store = Store(store_path, store_path.parent / "files")
    try:
        recorded = {s["message_id"] for s in store.submissions.all()}
        return message_ids <= recorded and not store.outbox.with_status("pending")
    finally:
        store.close()


def _names_a_message(marker: Path) -> bool:
    """A kill while a message was in hand: the in-flight marker holds its name (between
    messages it is blank, after a pass gone)."""
    try:
        return bool(marker.read_text(encoding="utf-8").strip())
    except FileNotFoundError:
        return False


def run(messages: int, kills: int, seed: int, min_delay: float, max_delay: float,
        drain_timeout: float, workdir: Path) -> Outcome:
    rng = random.Random(seed)
    emails = [county_email(i, forms_every=4, tag=f"k{seed % 100000}") for i in range(messages)]
    message_ids = {mid for mid, _, _ in emails}
    outcome = Outcome()
    dovecot = DovecotServer()
    smtp = SmtpServer(auth=True, username=SMTP_USER, password=SMTP_PASSWORD)
    worker: Worker | None = None
    try:
        dovecot.start()
        smtp.start()
        user, password = dovecot.add_user()
        config = imap_smtp_config(workdir, dovecot, user, smtp.port, poll_seconds=2, batch_size=25,
                                  per_sender_hourly_cap=100000, retry_base_seconds=1, retry_max_seconds=5)
        env = {**os.environ, "INTAKE_IMAP_PASSWORD": password, "INTAKE_SMTP_PASSWORD": SMTP_PASSWORD}
        batches = waves([(raw, when) for _, raw, when in emails], kills + 2)
        append_all(dovecot, user, password, batches[0])
        for i in range(kills):
            worker = Worker(config, env, workdir / f"run-{i + 1:03d}.log")
            delay = rng.uniform(min_delay, max_delay)
            time.sleep(rng.uniform(0, delay))          # mail arrives while the worker runs
            append_all(dovecot, user, password, batches[i + 1])
            time.sleep(max(0.0, worker.started + delay - time.monotonic()))
            early = worker.kill()
            worker = None
            outcome.injections += 1
            outcome.killed_processing += _names_a_message(workdir / "intake.json.inflight")
            outcome.killed_handing_over += any(workdir.glob("intake.json.sending.*"))  # one a reply
            if early is not None:
                outcome.bad_exits.append(f"run {i + 1} exited by itself with {early}")
        worker = Worker(config, env, workdir / "run-final.log")
        append_all(dovecot, user, password, batches[-1])
        deadline = time.monotonic() + drain_timeout
        while not drained(workdir / "intake.json", message_ids):
            if time.monotonic() > deadline or worker.proc.poll() is not None:
                break
            time.sleep(0.5)
        else:
            outcome.drained = True
        code = worker.stop()
        final_log = worker.log.read_text(errors="replace")
        worker = None
        if code != 0 or "intake.worker: stopped" not in final_log:
            outcome.bad_exits.append(f"the last worker did not stop cleanly on SIGTERM (exit {code})")
        time.sleep(0.3)   # the SMTP server's last DATA handled
        _judge(outcome, config, env, message_ids, smtp)
    finally:
        if worker is not None:
            worker.kill()
        smtp.close()
        dovecot.close()
    return outcome


def _judge(outcome: Outcome, config: Path, env: dict, message_ids: set[str], smtp: SmtpServer) -> None:
    export = subprocess.run([str(INTAKE), "--config", str(config), "export", "--format", "json"],
                            capture_output=True, text=True, env=env, cwd=config.parent, check=True)
    roster = json.loads(export.stdout)
    ids = [s["message_id"] for s in roster["submissions"]]
    outcome.lost = sorted(message_ids - set(ids))
    outcome.duplicates = len(ids) - len(set(ids)) + sum("#" in i for i in ids)
    for cand in roster["candidates"]:
        versions = [v["message_id"] for v in cand.get("versions") or []]
        outcome.duplicates += len(versions) - len(set(versions))

    deliveries = collections.Counter()
    for received in smtp.messages:
        msg = received.message
        if msg["X-Intake-Digest"]:
            outcome.digests += 1
            deliveries[("digest", msg["X-Intake-Digest"])] += 1
        else:
            outcome.replies += 1
            deliveries[("reply", msg["In-Reply-To"] or msg["Message-ID"])] += 1
    outcome.duplicate_replies = sum(n - 1 for n in deliveries.values() if n > 1)

    store_path = config.parent / "intake.json"
    store = Store(store_path, config.parent / "files")
    try:
        outbox = {r["submission_id"]: r for r in store.outbox.all()}
        outcome.uncertain = sum(r["status"] == "uncertain" for r in outbox.values())
        outcome.set_aside = len(store.failures.with_status("failed"))
    finally:
        store.close()
    answered = {key for kind, key in deliveries if kind == "reply"}
    outcome.unanswered = sorted(mid for mid in message_ids - answered
                                if outbox.get(mid, {}).get("status") != "uncertain")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.faults.kill_worker", description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200, help="county emails to APPEND (default 200)")
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs to inject (default 20)")
    parser.add_argument("--seed", type=int, help="for the random delays (default: random, printed)")
    parser.add_argument("--min-delay", type=float, default=0.3, help="seconds from a start to its kill, at least")
    parser.add_argument("--max-delay", type=float, default=2.5, help="... and at most")
    parser.add_argument("--drain-timeout", type=float, default=180, help="seconds the last worker gets")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (store, logs)")
    args = parser.parse_args(argv)
    # aiosmtpd's notes about AUTH without TLS, on every connection: this server is on loopback.
    warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    workdir = Path(tempfile.mkdtemp(prefix="intake-faults-"))
    print(f"seed={seed} messages={args.messages} kills={args.kills} workdir={workdir}", flush=True)
    started = time.monotonic()
    outcome = run(args.messages, args.kills, seed, args.min_delay, args.max_delay, args.drain_timeout, workdir)
    print(outcome.line())
    print(f"replies={outcome.replies} digests={outcome.digests} unanswered={len(outcome.unanswered)} "
          f"set_aside={outcome.set_aside} killed_processing={outcome.killed_processing} "
          f"killed_handing_over={outcome.killed_handing_over} drained={outcome.drained} "
          f"seconds={time.monotonic() - started:.0f}")
    for problem in outcome.bad_exits:
        print(f"worker: {problem}")
    for label, ids in (("lost", outcome.lost), ("unanswered", outcome.unanswered)):
        if ids:
            print(f"{label}: {' '.join(ids[:20])}{' ...' if len(ids) > 20 else ''}")
    if outcome.ok and not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    elif not outcome.ok:
        print(f"logs and store kept in {workdir}")
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    sys.exit(main())
