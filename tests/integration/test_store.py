"""The TinyDB store: one transaction reaches the disk whole or not at all."""
import json
import os
import stat

import pytest

from store.repository import Store, StoreError


def test_a_transaction_commits_everything_at_once(tmp_path):
    store = Store(tmp_path / "intake.json", tmp_path / "files")
    with store.transaction():
        store.submissions.add({"message_id": "<a@x>", "status": "accepted"})
        store.candidates.put({"county": "荷塘区", "name": "张三", "status": "accepted"})
        assert not (tmp_path / "intake.json").exists()  # nothing written until the commit
    data = json.loads((tmp_path / "intake.json").read_text(encoding="utf-8"))
    assert list(data["submissions"].values()) == [{"message_id": "<a@x>", "status": "accepted"}]
    assert stat.S_IMODE(os.stat(tmp_path / "intake.json").st_mode) == 0o600


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
