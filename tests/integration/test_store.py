"""The TinyDB store: one transaction reaches the disk whole or not at all."""
import hashlib
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


def test_a_document_changed_after_a_compaction_is_written_by_the_next(tmp_path):
    """A compaction reuses the lines it wrote for the documents unchanged since the last one; a
    document changed in place in between is written as it now is."""
    store = Store(tmp_path / "intake.json", tmp_path / "files")
    with store.transaction():
        for i in range(3):
            store.submissions.add({"message_id": f"<{i}@x>", "status": "accepted"})
    store.compact()
    with store.transaction():
        store.submissions.update("<1@x>", status="skipped")
    store.compact()
    assert (tmp_path / "intake.json.journal").stat().st_size == 0
    assert [s["status"] for s in reopened(tmp_path).submissions.all()] == ["accepted", "skipped", "accepted"]


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


def test_a_group_of_commits_is_on_disk_at_once_and_what_waits_for_it_runs_after(tmp_path):
    """store.group_commit: each transaction commits (this process sees it, a failed one keeps
    nothing) but the disk gets the group at `sync`, files first; steps that must wait for the
    disk (moving a message out of the inbox) run only then."""
    store = Store(tmp_path / "intake.json", tmp_path / "files")
    ran = []
    with store.group_commit():
        with store.transaction():
            digest = store.files.put(b"form bytes")
            store.submissions.add({"message_id": "<a@x>", "files": [{"sha256": digest}]})
        store.when_durable(lambda: ran.append(reopened(tmp_path).submissions.get("<a@x>") is not None))
        with pytest.raises(RuntimeError):
            with store.transaction():
                store.submissions.add({"message_id": "<b@x>", "status": "accepted"})
                raise RuntimeError("converter crashed")
        with store.transaction():
            store.submissions.update("<a@x>", status="accepted")
        assert [s["message_id"] for s in store.submissions.all()] == ["<a@x>"]
        assert reopened(tmp_path).submissions.all() == [] and ran == []   # a kill now loses the group
        store.sync()
        assert ran == [True]
        assert store.files.path_of(digest).read_bytes() == b"form bytes"
        with store.transaction():
            store.submissions.add({"message_id": "<c@x>", "status": "accepted"})
    assert [(s["message_id"], s.get("status")) for s in reopened(tmp_path).submissions.all()] == [
        ("<a@x>", "accepted"), ("<c@x>", "accepted")]
    store.when_durable(lambda: ran.append("at once"))   # outside a group: nothing to wait for
    assert ran == [True, "at once"]


def test_files_are_kept_by_content_and_private(tmp_path):
    store = Store(tmp_path / "intake.json", tmp_path / "files")
    digest = store.files.put(b"form bytes")
    assert store.files.put(b"form bytes") == digest
    assert store.files.read(digest) == b"form bytes"
    assert stat.S_IMODE(os.stat(store.files.path_of(digest)).st_mode) == 0o600


def test_a_record_is_committed_only_once_the_files_it_names_are_on_disk(tmp_path):
    """Files are written beside the transaction (store.repository.FileStore): its commit waits
    for them, and one that cannot be written leaves the whole transaction uncommitted."""
    store = Store(tmp_path / "intake.json", tmp_path / "files")
    with store.transaction():
        digest = store.files.put(b"form bytes")
        store.submissions.add({"message_id": "<a@x>", "files": [{"sha256": digest}]})
    assert store.files.path_of(digest).read_bytes() == b"form bytes"
    blocked = hashlib.sha256(b"other form").hexdigest()
    (tmp_path / "files" / blocked[:2]).write_bytes(b"")   # its folder cannot be made: a write error
    with pytest.raises(OSError):
        with store.transaction():
            store.submissions.add({"message_id": "<b@x>", "files": [{"sha256": store.files.put(b"other form")}]})
    assert store.submissions.get("<b@x>") is None
    assert [s["message_id"] for s in reopened(tmp_path).submissions.all()] == ["<a@x>"]


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


def test_an_older_single_file_store_is_read_and_split_at_the_first_compaction(tmp_path):
    """A store written before tables had their own files keeps every record after the upgrade."""
    import json
    old = {"submissions": {"1": {"message_id": "<a@x>", "status": "accepted"}},
           "candidates": {"1": {"county": "荷塘区", "name": "张三", "status": "accepted",
                                "versions": [{"message_id": "<a@x>", "fields": {"name": "张三"}}]}},
           "outbox": {"1": {"reply_id": "<r@163.com>", "to": "hetang@example.cn", "status": "sent",
                            "created_at": "2022-07-20T10:00:00+08:00", "raw": "Subject: 已受理\n\n正文"}}}
    (tmp_path / "intake.json").write_text(json.dumps(old, ensure_ascii=False), encoding="utf-8")
    store = reopened(tmp_path)
    assert store.candidates.get("荷塘区", "张三")["versions"][0]["message_id"] == "<a@x>"
    with store.transaction():
        store.submissions.add({"message_id": "<b@x>", "status": "accepted"})
        store.candidates.put({**store.candidates.get("荷塘区", "张三"), "status": "needs-correction",
                              "versions": [*store.candidates.get("荷塘区", "张三")["versions"],
                                           {"message_id": "<b@x>"}]})
    store.compact()
    store.close()
    assert json.loads((tmp_path / "intake.json").read_text(encoding="utf-8")) == {"layout": 2}
    again = reopened(tmp_path)
    assert [s["message_id"] for s in again.submissions.all()] == ["<a@x>", "<b@x>"]
    cand = again.candidates.get("荷塘区", "张三")
    assert cand["status"] == "needs-correction"
    assert [v["message_id"] for v in cand["versions"]] == ["<a@x>", "<b@x>"]
    assert "versions" not in again.candidates.current("荷塘区")[0]   # the history only when asked
    assert again.outbox.get("<r@163.com>")["raw"] == "Subject: 已受理\n\n正文"


def test_reply_bodies_live_beside_the_attachments_not_in_the_tables(tmp_path):
    store = reopened(tmp_path)
    body = "Subject: 【已受理】荷塘区 张三\n\n" + "您好，推荐表已受理。" * 200
    with store.transaction():
        store.outbox.add({"reply_id": "<r1@163.com>", "to": "hetang@example.cn", "status": "pending",
                          "created_at": "2022-07-20T10:00:00+08:00", "raw": body})
    store.compact()
    tables = "".join(p.read_text(encoding="utf-8") for p in tmp_path.glob("intake*") if p.is_file()
                     and p.suffix != ".lock")
    assert "推荐表已受理" not in tables
    again = reopened(tmp_path)
    assert again.outbox.get("<r1@163.com>")["raw"] == body
    assert [r["raw"] for r in again.outbox.with_status("pending")] == [body]
    assert again.outbox.all()[0]["raw"] == body


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
    snapshot = sum(p.stat().st_size for p in tmp_path.glob("intake.*.json"))
    assert snapshot > 64 << 10 and journal <= max(64 << 10, snapshot) + 13_000
    store = Store(tmp_path / "intake.json", tmp_path / "files")
    assert len(store.submissions.all()) == 60
    store.close()


def test_a_lookup_decodes_only_the_documents_it_uses(tmp_path):
    """A season's store: a command adding one email to 2,000 must not decode the 2,000."""
    store = Store(tmp_path / "intake.json", tmp_path / "files")
    with store.transaction():
        for i in range(2000):
            store.submissions.add({"message_id": f"<{i}@x>", "status": "accepted", "files": []})
    store.compact()
    store.close()
    store = reopened(tmp_path)
    with store.transaction():
        assert "<1500@x>" in store.submissions and "<9999@x>" not in store.submissions
        assert store.submissions.get("<7@x>")["status"] == "accepted"
        store.submissions.add({"message_id": "<new@x>", "status": "accepted", "files": []})
    docs = store.submissions.table._read_table()
    assert isinstance(docs, storage._Docs)
    assert sum(doc is not None for doc in docs.entries.values()) <= 3   # <7@x>, <new@x>, its brief's
    store.compact()   # lines never decoded are written back as they were
    assert [s["message_id"] for s in reopened(tmp_path).submissions.all()][-2:] == ["<1999@x>", "<new@x>"]


def test_a_hostile_message_id_is_a_key_like_any_other(tmp_path):
    odd = '<a\t"b"\\c\u001f\u4e2d@x>'
    store = Store(tmp_path / "intake.json", tmp_path / "files")
    with store.transaction():
        store.submissions.add({"message_id": odd, "status": "accepted"})
        store.submissions.add({"message_id": "<plain@x>", "status": "accepted"})
    store.compact()
    again = reopened(tmp_path)
    assert again.submissions.get(odd)["message_id"] == odd
    assert set(again.submissions.ids) == {odd, "<plain@x>"}


@pytest.mark.parametrize("odd", [None, '<a"b@x>', "<a\\b@x>"])
def test_every_key_read_from_the_snapshot_is_found_as_it_was_stored(tmp_path, odd):
    """Keys are decoded all at once when none needs an escape, one by one otherwise: either way
    each Message-ID (Chinese, spaces, an empty one, quotes) finds its own submission."""
    keys = ["<中文　主题@163.com>", "<x'y@x>", "<a b@x>", "", "<1@x>"] + ([odd] if odd else [])
    store = Store(tmp_path / "intake.json", tmp_path / "files")
    with store.transaction():
        for n, key in enumerate(keys):
            store.submissions.add({"message_id": key, "status": str(n)})
    store.compact()
    again = reopened(tmp_path)
    assert [again.submissions.get(key)["status"] for key in keys] == [str(n) for n in range(len(keys))]
    assert set(again.submissions.ids) == set(keys)


def test_a_snapshot_written_as_one_json_object_is_read_and_rewritten_as_lines(tmp_path):
    """Stores written before the line snapshots keep working, and change at the first compaction."""
    (tmp_path / "intake.json").write_text('{"layout":2}', encoding="utf-8")
    (tmp_path / "intake.submissions.json").write_text(
        '{"1":{"message_id":"<old@x>","status":"accepted"}}', encoding="utf-8")
    store = reopened(tmp_path)
    assert store.submissions.get("<old@x>")["status"] == "accepted"
    with store.transaction():
        store.submissions.add({"message_id": "<new@x>", "status": "accepted"})
    store.compact()
    text = (tmp_path / "intake.submissions.json").read_text(encoding="utf-8")
    assert text.startswith('1\t"<old@x>"\t{')
    assert [s["message_id"] for s in reopened(tmp_path).submissions.all()] == ["<old@x>", "<new@x>"]


def test_a_damaged_snapshot_line_is_a_store_error_not_a_traceback(tmp_path):
    store = Store(tmp_path / "intake.json", tmp_path / "files")
    with store.transaction():
        store.submissions.add({"message_id": "<a@x>", "status": "accepted"})
        store.submissions.add({"message_id": "<b@x>", "status": "accepted"})
    store.compact()
    path = tmp_path / "intake.submissions.json"
    path.write_bytes(path.read_bytes().replace(b'"status":"accepted"}\n', b'"status":"acc\n', 1))
    with pytest.raises(StoreError, match="damaged document"):
        reopened(tmp_path).submissions.get("<a@x>")
    path.write_bytes(b"garbage without tabs\n")
    with pytest.raises(StoreError, match="damaged line"):
        reopened(tmp_path).submissions.all()
