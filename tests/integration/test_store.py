"""The TinyDB store: one transaction reaches the disk whole or not at all."""
import os
import stat

import pytest

from store import storage
from store.repository import Store, StoreError


def reopened(tmp_path) -> Store:
    return Store(tmp_path / "intake.json", tmp_path / "files")


def test_a_transaction_commits_everything_at_once(tmp_path):
    store = Store(tmp_path / "intake.json", tmp_path / "files")
    with store.transaction():
        store.submissions.add({"message_id": "<a@x>", "status": "accepted"})
        store.candidates.put({"county": "荷塘区", "name": "张三", "status": "accepted"})
        assert reopened(tmp_path).submissions.all() == []  # nothing on disk until the commit
    other = reopened(tmp_path)
    assert other.submissions.all() == [{"message_id": "<a@x>", "status": "accepted"}]
    assert other.candidates.get("荷塘区", "张三")["status"] == "accepted"
    for path in tmp_path.glob("intake.json*"):
        if path.suffix != ".lock":
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path


def test_a_commit_cut_short_is_a_commit_that_never_happened(tmp_path):
    store = Store(tmp_path / "intake.json", tmp_path / "files")
    with store.transaction():
        store.submissions.add({"message_id": "<a@x>", "status": "accepted"})
    store.close()
    journal = tmp_path / "intake.json.journal"
    with open(journal, "ab") as fh:   # what a kill in the middle of an append leaves
        fh.write(b'{"c":[["submissions","2",{"message_id":"<b@')
    assert [s["message_id"] for s in reopened(tmp_path).submissions.all()] == ["<a@x>"]
    writer = reopened(tmp_path)
    with writer.transaction():         # the writer folds the torn line away before appending
        writer.submissions.add({"message_id": "<c@x>", "status": "accepted"})
    assert [s["message_id"] for s in reopened(tmp_path).submissions.all()] == ["<a@x>", "<c@x>"]


def test_compaction_keeps_every_document(tmp_path):
    store = Store(tmp_path / "intake.json", tmp_path / "files")
    for i in range(30):
        with store.transaction():
            store.submissions.add({"message_id": f"<{i}@x>", "status": "accepted"})
            if i % 3 == 0:
                store.submissions.update(f"<{i}@x>", status="skipped")
    store.compact()
    assert (tmp_path / "intake.json.journal").stat().st_size == 0
    subs = reopened(tmp_path).submissions.all()
    assert len(subs) == 30 and sum(s["status"] == "skipped" for s in subs) == 10


def test_a_failed_transaction_leaves_nothing_behind(tmp_path):
    store = Store(tmp_path / "intake.json", tmp_path / "files")
    with store.transaction():
        store.submissions.add({"message_id": "<a@x>", "status": "accepted"})
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.submissions.add({"message_id": "<b@x>", "status": "accepted"})
            raise RuntimeError("converter crashed")
    assert [s["message_id"] for s in store.submissions.all()] == ["<a@x>"]
    reopened = Store(tmp_path / "intake.json", tmp_path / "files")
    assert [s["message_id"] for s in reopened.submissions.all()] == ["<a@x>"]


def test_files_are_kept_by_content_and_private(tmp_path):
    store = Store(tmp_path / "intake.json", tmp_path / "files")
    digest = store.files.put(b"form bytes")
    assert store.files.put(b"form bytes") == digest
    assert store.files.read(digest) == b"form bytes"
    assert stat.S_IMODE(os.stat(store.files.path_of(digest)).st_mode) == 0o600


def test_a_second_writer_is_refused(tmp_path):
    first = Store(tmp_path / "intake.json", tmp_path / "files")
    first.lock()
    second = Store(tmp_path / "intake.json", tmp_path / "files")
    with pytest.raises(StoreError, match="already"):
        second.lock()
    first.close()
    second.lock()


def test_a_damaged_store_is_one_clear_error(tmp_path):
    (tmp_path / "intake.json").write_text('{"submissions": {"1": {', encoding="utf-8")
    with pytest.raises(StoreError, match="not valid JSON"):
        Store(tmp_path / "intake.json", tmp_path / "files")


def test_the_journal_is_folded_by_its_size_however_often_the_store_is_opened(tmp_path, monkeypatch):
    """A store opened for one message at a time (`poll --once` from cron, every command) still
    has its journal folded into the snapshot: no commit counter to restart with each process."""
    monkeypatch.setattr(storage, "COMPACT_FLOOR_BYTES", 64 << 10)
    for n in range(60):
        store = Store(tmp_path / "intake.json", tmp_path / "files")
        with store.transaction():
            store.submissions.add({"message_id": f"<m{n}@x>", "raw": "回复" * 2000})
        store.close()
    journal = (tmp_path / "intake.json.journal").stat().st_size
    snapshot = (tmp_path / "intake.json").stat().st_size
    assert snapshot > 64 << 10 and journal <= max(64 << 10, snapshot) + 13_000
    store = Store(tmp_path / "intake.json", tmp_path / "files")
    assert len(store.submissions.all()) == 60
    store.close()
