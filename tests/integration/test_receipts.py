"""Receipt numbers: every answered email gets the next number of its county, in the transaction
that records it, so no two replies share a subject or a body (163 refuses repeated subjects as
spam) while the subject still starts with the status word and names the candidate."""
import datetime as dt
import email
from email import policy

import pytest

from outbox.wording import receipt_number
from pipeline import sample_mail, samples
from pipeline.process import process_message
from pipeline.settings import load_settings
from store.repository import Store
from tests.cli import body_text
from tests.configs import MAILBOX, write_config

T0 = dt.datetime(2022, 7, 20, 2, 15, tzinfo=dt.timezone.utc)   # 10:15 in Zhuzhou


@pytest.fixture
def county(tmp_path):
    settings = load_settings(write_config(tmp_path))
    store = Store(settings.store.path, settings.store.files)
    count = iter(range(1, 1000))

    def sends(sender: str, subject: str, name: str | None = None) -> email.message.EmailMessage:
        n = next(count)
        # Each resent form is edited (its honours differ): the same bytes a third time in a day
        # are a robot's loop and get no answer (tests/e2e/test_outbox_loops.py).
        files = [(f"{name}推荐表.docx", samples.build_form_docx({"name": name, "honours": f"荣誉{n}"}))
                 ] if name else []
        raw = sample_mail.foxmail_email(sender, MAILBOX, subject, files,
                                        message_id=f"<m{n}@example.cn>")
        at = T0 + dt.timedelta(minutes=len(store.outbox.all()))
        with store.transaction():
            process_message(raw, at, store, settings, at)
        newest = max(store.outbox.all(), key=lambda r: r["created_at"])
        return email.message_from_string(newest["raw"], policy=policy.default)

    yield sends, store
    store.close()


def test_the_same_form_and_the_same_query_again_get_replies_of_their_own(county):
    sends, store = county
    replies = [sends("hetang@example.cn", "推荐表", "张三") for _ in range(3)]
    replies += [sends("hetang@example.cn", "查询") for _ in range(4)]
    replies.append(sends("lusong@example.cn", "推荐表", "李四"))
    subjects = [str(r["Subject"]) for r in replies]
    assert subjects[:4] == [
        "【已受理】荷塘区 张三 信息技术能手推荐表 〔2022〕荷塘-001 7月20日10:15收到",
        "【已受理】荷塘区 张三（第2次报送） 信息技术能手推荐表 〔2022〕荷塘-002 7月20日10:16收到",
        "【已受理】荷塘区 张三（第3次报送） 信息技术能手推荐表 〔2022〕荷塘-003 7月20日10:17收到",
        "【进度查询】荷塘区 信息技术能手推荐情况 〔2022〕荷塘-004 7月20日10:18收到"]
    assert subjects[-1].startswith("【已受理】芦淞区 李四 信息技术能手推荐表 〔2022〕芦淞-001 ")
    assert len(set(subjects)) == len(subjects)
    assert len({body_text(r) for r in replies}) == len(replies)
    assert "收件编号：〔2022〕荷塘-006" in body_text(replies[5])
    assert [s["receipt"] for s in sorted(store.submissions.all(), key=lambda s: s["message_id"])][:3] == [
        "〔2022〕荷塘-001", "〔2022〕荷塘-002", "〔2022〕荷塘-003"]


def test_a_number_taken_in_a_transaction_that_fails_is_not_kept(county):
    sends, store = county
    with pytest.raises(RuntimeError):
        with store.transaction():
            assert store.counters.next("receipt:2022:荷塘区") == 1
            raise RuntimeError("the message failed half-way")
    assert str(sends("hetang@example.cn", "推荐表", "张三")["Subject"]).endswith("〔2022〕荷塘-001 7月20日10:15收到")


@pytest.mark.parametrize("county, expected", [("荷塘区", "〔2022〕荷塘-007"), ("醴陵市", "〔2022〕醴陵-007"),
                                              ("攸县", "〔2022〕攸县-007"), ("茶陵县", "〔2022〕茶陵-007"),
                                              (None, "〔2022〕未登记-007")])
def test_receipt_numbers_read_like_official_ones(county, expected):
    assert receipt_number(2022, county, 7) == expected
