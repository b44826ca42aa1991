"""A crash between the final DATA dot and recording the server's answer: the reply is never
sent twice by itself. Over SMTP it becomes `uncertain`; with a Maildir the folder is asked."""
import datetime as dt
import hashlib
import subprocess

from outbox.queue import Handover, RetryPolicy, deliver_pending, enqueue, requeue_failed
from outbox.transports import MaildirTransport, SmtpTransport
from store.repository import Store
from tests.replies import reply

T0 = dt.datetime(2022, 7, 20, 2, 0, tzinfo=dt.timezone.utc)


def queued(tmp_path, *numbers: int) -> Store:
    store = Store(tmp_path / "intake.json", tmp_path / "files")
    with store.transaction():
        for n in numbers:
            enqueue(store, reply(n), f"<sub-{n}@x>", "reply", T0)
    return store


def test_over_smtp_an_interrupted_handover_is_uncertain_and_not_resent(tmp_path, smtp_server):
    store = queued(tmp_path, 1, 2)
    Handover(store.path).begin("<reply-1@163.com>")   # what a kill after the dot leaves
    transport = SmtpTransport("127.0.0.1", smtp_server.port, "none", "intake@example.cn",
                              "smtp-secret", "zzdztxhrj@163.com", timeout=5)
    report = deliver_pending(store, transport, T0, RetryPolicy())
    assert report.sent == 1
    assert [m.message["Message-ID"] for m in smtp_server.wait_for(1)] == ["<reply-2@163.com>"]
    assert store.outbox.get("<reply-1@163.com>")["status"] == "uncertain"
    assert not Handover(store.path).active()
    assert deliver_pending(store, transport, T0, RetryPolicy()).sent == 0
    assert requeue_failed(store, T0) == 1                 # the operator's call
    assert deliver_pending(store, transport, T0, RetryPolicy()).sent == 1


def test_with_a_maildir_the_folder_says_whether_it_arrived(tmp_path):
    store = queued(tmp_path, 1, 2)
    with MaildirTransport(tmp_path / "sent") as transport:
        transport.send(reply(1))                          # it arrived, then intake died
    Handover(store.path).begin("<reply-1@163.com>")
    report = deliver_pending(store, MaildirTransport(tmp_path / "sent"), T0, RetryPolicy())
    assert store.outbox.get("<reply-1@163.com>")["status"] == "sent"
    assert report.sent == 1                               # only reply 2 was sent now
    assert len(list((tmp_path / "sent" / "new").iterdir())) == 2


def test_a_reply_orphaned_in_the_maildir_tmp_by_a_kill_is_removed_and_written_again(tmp_path):
    store = queued(tmp_path, 1)
    dead = subprocess.Popen(["true"])
    dead.wait()
    msg = reply(1)
    tag = hashlib.sha1(str(msg["Message-ID"]).encode()).hexdigest()[:16]
    (tmp_path / "sent" / "tmp").mkdir(parents=True)
    orphan = tmp_path / "sent" / "tmp" / f"1658282400000000000.{tag}.P{dead.pid}.host.eml"
    orphan.write_bytes(msg.as_bytes()[:100])   # killed while writing it
    someone_elses = tmp_path / "sent" / "tmp" / "1658282400.M1P1.host"
    someone_elses.write_bytes(b"not ours")

    report = deliver_pending(store, MaildirTransport(tmp_path / "sent"), T0, RetryPolicy())
    assert report.sent == 1
    assert not orphan.exists() and someone_elses.exists()
    [written] = (tmp_path / "sent" / "new").iterdir()
    assert b"Message-ID: <reply-1@163.com>" in written.read_bytes()
