"""How soon a county has its receipt: `intake run` waiting in IMAP IDLE, one email APPENDed at
a time, the time from the APPEND until the reply is in aiosmtpd.

    .venv/bin/python bench/idle_latency.py [--samples 50] [--json FILE]

poll_seconds is an hour, so only IDLE can wake the worker. Emails arrive 0.3–1 s after the
previous reply, at random, as mail does. The floor is the least any IDLE worker must do: a bare
imapclient session in IDLE sees EXISTS, fetches the message (BODY.PEEK[]) and smtplib sends one
reply over a fresh connection with AUTH, as intake does for each pass.
"""
from __future__ import annotations

import argparse
import random
import signal
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import figures  # noqa: E402
from bench.county_mail import county_email  # noqa: E402
from bench.servers import SMTP_PASSWORD, SMTP_USER, MailServers  # noqa: E402
from tests.cli import INTAKE  # noqa: E402

TARGET_MEDIAN_S = 2.0
WAIT_S = 60


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def intake_latencies(servers: MailServers, samples: int) -> list[float]:
    with tempfile.TemporaryDirectory(prefix="bench-idle-") as tmp:
        config = servers.config(Path(tmp), poll_seconds=3600)
        log = open(Path(tmp) / "worker.log", "w")
        worker = subprocess.Popen([str(INTAKE), "--config", str(config), "run"], cwd=config.parent,
                                  env=servers.env(), stdout=log, stderr=subprocess.STDOUT)
        try:
            time.sleep(2)   # the first (empty) pass done, the worker in IDLE
            return _append_and_wait(servers, samples, "idle")
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=30)
            log.close()


def _append_and_wait(servers: MailServers, samples: int, tag: str) -> list[float]:
    latencies = []
    rng = random.Random(8)
    with servers.imap() as client:
        for i in range(samples):
            raw, received = county_email(i, tag)
            message_id = _message_id(raw)
            started = time.monotonic()
            client.append("INBOX", raw, msg_time=received)
            latencies.append(servers.smtp.wait_for_reply_to(message_id, WAIT_S) - started)
            time.sleep(rng.uniform(0.3, 1.0))
    return latencies


def _message_id(raw: bytes) -> str:
    head = raw.split(b"\n\n", 1)[0].decode("ascii", "replace")
    return next(line.split(":", 1)[1].strip() for line in head.splitlines()
                if line.lower().startswith("message-id:"))


def floor_latencies(servers: MailServers, samples: int) -> list[float]:
    """A bare IDLE loop: EXISTS → fetch → one smtplib reply to the message's In-Reply-To."""
    stop = threading.Event()

    def bare_worker():
        with servers.imap() as client:
            client.select_folder("INBOX")
            seen = set(client.search(["ALL"]))
            while not stop.is_set():
                client.idle()
                while not stop.is_set():
                    responses = client.idle_check(timeout=1)
                    if any(len(r) > 1 and r[1] == b"EXISTS" for r in responses):
                        break
                client.idle_done()
                new = [u for u in client.search(["ALL"]) if u not in seen]
                for uid, data in client.fetch(new, [b"BODY.PEEK[]"]).items():
                    seen.add(uid)
                    _reply_to(_message_id(data[b"BODY[]"]), servers)

    thread = threading.Thread(target=bare_worker, daemon=True)
    thread.start()
    time.sleep(1)
    try:
        return _append_and_wait(servers, samples, "floor")
    finally:
        stop.set()
        thread.join(10)


def _reply_to(message_id: str, servers: MailServers) -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "zzdztxhrj@163.com", "hetang@example.cn", "【已受理】"
    msg["In-Reply-To"] = message_id
    msg.set_content("已收到。")
    with smtplib.SMTP(servers.smtp.host, servers.smtp.port) as conn:
        conn.login(SMTP_USER, SMTP_PASSWORD)
        conn.send_message(msg)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--json")
    args = parser.parse_args()
    with MailServers() as servers:
        floor = floor_latencies(servers, max(10, args.samples // 5))
    with MailServers() as servers:
        got = intake_latencies(servers, args.samples)
    med, p95 = statistics.median(got), percentile(got, 95)
    floor_med, floor_p95 = statistics.median(floor), percentile(floor, 95)
    print(f"IDLE latency, APPEND to reply in aiosmtpd, {len(got)} emails (floor: {len(floor)}):")
    print(f"  intake run   median {med * 1000:7.0f} ms   p95 {p95 * 1000:7.0f} ms   max {max(got) * 1000:7.0f} ms")
    print(f"  floor        median {floor_med * 1000:7.0f} ms   p95 {floor_p95 * 1000:7.0f} ms   "
          f"(bare IDLE + fetch + smtplib)   ratio {med / floor_med:.1f}")
    print(f"  target median <= {TARGET_MEDIAN_S:g} s: {'PASS' if med <= TARGET_MEDIAN_S else 'MISS'}")
    floor_what = "bare IDLE + fetch + smtplib reply"
    figures.write(args.json, [
        figures.Figure("idle latency", f"median of {len(got)}, APPEND to reply", round(med * 1000), "ms",
                       round(floor_med * 1000), floor_what, round(med / floor_med, 1),
                       f"<= {TARGET_MEDIAN_S * 1000:g} ms", med <= TARGET_MEDIAN_S),
        figures.Figure("idle latency", f"p95 of {len(got)}", round(p95 * 1000), "ms",
                       round(floor_p95 * 1000), floor_what, round(p95 / floor_p95, 1)),
    ])


if __name__ == "__main__":
    main()
