"""`intake status` reads the store's small mirror tables (per-county tallies of the emails, the
emails of unregistered senders and open questions, the unsettled replies, each candidate's first
and latest version), not every email, reply and version: its figures must be the digest's own,
on a store written through transactions and on an older one."""
import dataclasses
import datetime as dt

from pipeline.digest import build_figures, local_today, status_figures
from store.repository import Store
from tests.unit.test_digest import (add_candidate, add_reply, add_submission, at, problem,  # noqa: F401
                                    settings, store, version)   # settings, store: the fixtures

NOW = at(25, 8)


def write_season(store) -> None:
    """A county with a candidate resent three times (the third needing correction), a withdrawn
    one, a stranger, an open and an answered question, a failed and a sent reply."""
    with store.transaction():
        for i, (when, status) in enumerate([(at(18, 9), "accepted"), (at(19, 9), "accepted"),
                                            (at(20, 9), "needs-correction")]):
            add_submission(store, f"<h{i}@x>", "hetang@example.cn", "荷塘区", when, status)
        add_candidate(store, "荷塘区", "张三", version("<h0@x>", at(18, 9), "accepted"),
                      version("<h1@x>", at(19, 9), "accepted"))
    with store.transaction():   # the third version added alone, as a pass adds it
        store.candidates.put({"name": "张三", "county": "荷塘区", "status": "needs-correction",
                              "problems": ["deeds-too-long"], "report": None, "photo": True,
                              "opinions": {}, "updated_at": at(20, 9).isoformat()},
                             new_version=version("<h2@x>", at(20, 9), "needs-correction",
                                                 [problem("deeds-too-long", count=701, limit=600)]))
    with store.transaction():
        add_submission(store, "<s1@x>", "shifeng@example.cn", "石峰区", at(20, 11), "accepted")
        add_candidate(store, "石峰区", "王五", version("<s1@x>", at(20, 11), "accepted"), status="withdrawn")
        add_submission(store, "<u1@x>", "stranger@qq.com", None, at(20, 12), "rejected", ["unknown-sender"])
        add_submission(store, "<u2@x>", "stranger@qq.com", None, at(20, 13), "skipped",
                       reason="unknown sender without documents")
        add_submission(store, "<q1@x>", "lusong@example.cn", "芦淞区", at(21, 9), "needs-person")
        add_submission(store, "<q2@x>", "lusong@example.cn", "芦淞区", at(21, 10), "needs-person")
        add_reply(store, "<r-sent@x>", "sent")
        add_reply(store, "<r-fail@x>", "pending")
    with store.transaction():
        store.submissions.update("<q2@x>", answered_at=at(22, 9).isoformat())
        store.outbox.update("<r-fail@x>", status="failed", last_error="550 5.1.1 user unknown")
    with store.transaction():   # the latest answered email of a county becomes skipped, another goes
        add_submission(store, "<s2@x>", "shifeng@example.cn", "石峰区", at(23, 9), "accepted")
        add_submission(store, "<s3@x>", "shifeng@example.cn", "石峰区", at(23, 10), "accepted")
    with store.transaction():
        store.submissions.update("<s3@x>", status="skipped", reason="auto-reply")
        store.submissions.remove("<s2@x>")


def shown(figures) -> dict:
    """Everything `intake status` prints (not the digest's list of new emails, nor the words)."""
    out = dataclasses.asdict(figures)
    del out["new"], out["new_skipped"]
    for q in out["questions"]:
        del q["words"]
    return out


def test_status_reads_the_mirrors_and_shows_the_digests_figures(settings, store):
    write_season(store)
    reader = Store(settings.store.path, settings.store.files)
    try:
        assert reader.mirrored
        fast = status_figures(reader, settings, NOW)
        full = build_figures(reader, settings, local_today(settings, NOW), NOW)
    finally:
        reader.close()
    assert shown(fast) == shown(full)
    assert [p.name for p in fast.problems] == ["张三"]
    assert "字" in fast.problems[0].sentences[0]      # the latest version's problem, in words
    assert [q.message_id for q in fast.questions] == ["<q1@x>"]
    assert [(r.status, r.error) for r in fast.failed_replies] == [("failed", "550 5.1.1 user unknown")]
    assert [u.address for u in fast.unknown_senders] == ["stranger@qq.com"]


def test_the_mirrors_hold_what_status_lists_and_the_counts(settings, store):
    write_season(store)
    store.compact()
    size = {p.name.split(".")[1]: p.stat().st_size for p in settings.store.path.parent.glob("intake.*.json")}
    assert size["outbox_unsettled"] < size["outbox"]
    assert [s["message_id"] for s in store.submissions.to_watch()] == ["<u1@x>", "<u2@x>", "<q1@x>"]
    tally = store.submissions.tally()
    assert tally["石峰区"] == {"emails": 1, "skipped": 1, "last": at(20, 11).isoformat()}
    assert tally[None] == {"emails": 1, "skipped": 1, "last": at(20, 12).isoformat()}
    counts = {c["name"]: c["version_count"] for c in store.candidates.all_with_ends()}
    assert counts == {"张三": 3, "王五": 1}


def test_an_older_store_is_read_whole_until_a_writer_mirrors_it(settings, store):
    write_season(store)
    store.compact()
    store.close()
    folder = settings.store.path.parent
    for name in ("submission_tallies", "submissions_to_watch", "outbox_unsettled", "candidate_ends", "meta"):
        (folder / f"intake.{name}.json").unlink()   # as an intake before the mirrors left it

    older = Store(settings.store.path, settings.store.files)
    assert not older.mirrored
    before = shown(status_figures(older, settings, NOW))
    older.close()
    assert before == shown(build_figures(older, settings, local_today(settings, NOW), NOW))

    writer = Store(settings.store.path, settings.store.files)
    writer.lock()
    writer.close()
    upgraded = Store(settings.store.path, settings.store.files)
    try:
        assert upgraded.mirrored
        assert shown(status_figures(upgraded, settings, NOW)) == before
    finally:
        upgraded.close()


def test_a_later_version_keeps_the_history_whole(settings, store):
    write_season(store)
    cand = store.candidates.get("荷塘区", "张三")
    assert [v["message_id"] for v in cand["versions"]] == ["<h0@x>", "<h1@x>", "<h2@x>"]
    assert store.candidates.version_numbers("荷塘区", "<h2@x>") == {"张三": 3}
    assert dt.datetime.fromisoformat(cand["updated_at"]) == at(20, 9)


def test_the_csv_export_counts_every_version_from_the_ends(settings, store):
    import csv
    import io

    from pipeline.exports import export_bytes

    write_season(store)
    reader = Store(settings.store.path, settings.store.files)
    try:
        rows = list(csv.DictReader(io.StringIO(export_bytes("csv", reader, settings).decode("utf-8-sig"))))
    finally:
        reader.close()
    zhang = next(r for r in rows if r["姓名"] == "张三")
    assert zhang["版本数"] == "3" and "字" in zhang["问题"]
