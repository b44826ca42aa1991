"""Counties sending what they hold: a scan or phone photo of the stamped paper form. Through the
real path (Dovecot, `intake poll --once`, aiosmtpd): the form is read by OCR, its seals found in
the right opinion boxes, and the reply lists what was read for the county to check.

OCR takes seconds per page on the shared cores, so this runs a sample of the scan corpus
(tests/corpus/scans.py SAMPLE); `python -m bench --only ocr` runs all of it.
"""
import pytest

from pipeline import sample_mail
from tests.cli import body_text, intake
from tests.configs import MAILBOX
from tests.corpus import scans

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SENDERS = ("hetang@example.cn", "lusong@example.cn", "shifeng@example.cn", "tianyuan@example.cn")
OCR_POLL_SECONDS = 1800   # a loaded 2-core machine reads a page in up to a minute


def scan_email(sender: str, files: dict[str, bytes], message_id: str, subject: str = "推荐表盖章扫描件") -> bytes:
    return sample_mail.foxmail_email(sender, MAILBOX, subject, list(files.items()), message_id=message_id)


def poll(mail):
    result = intake(mail.config, "poll", "--once", env=mail.env, timeout=OCR_POLL_SECONDS)
    assert result.returncode == 0, result.stderr
    return result


def by_name(export: dict) -> dict:
    return {c["name"]: c for c in export["candidates"]}


def test_scanned_forms_are_read_with_their_seals_and_the_reply_lists_what_was_read(mail, smtp_server):
    cases = scans.SAMPLE[:3]   # the third has 纪检监察部门意见 blank but stamped: the seal signs it
    for i, case in enumerate(cases):
        mail.append(scan_email(SENDERS[i], scans.build(case), f"<scan-{i}@example.cn>"))
    poll(mail)

    replies = {r.message["In-Reply-To"]: r.message for r in smtp_server.wait_for(len(cases))}
    candidates = by_name(mail.export())
    for i, case in enumerate(cases):
        want = scans.expected(case)
        cand = candidates.get(want["name"])
        assert cand is not None, (case.name, sorted(candidates))
        assert scans.wrong_fields(case, cand) == [], case.name
        assert cand["source"] == "scan"
        assert {k for k, v in cand["seals"].items() if v} == set(case.seals), case.name
        assert cand["status"] == "accepted", (case.name, cand["problems"])

        reply = replies[f"<scan-{i}@example.cn>"]
        assert reply["X-Intake-Status"] == "accepted"
        text = body_text(reply)
        assert "本表为扫描件" in text
        for label, key in (("姓名", "name"), ("性别", "sex"), ("出生年月", "birth"), ("民族", "ethnicity"),
                           ("政治面貌", "political_status"), ("联系电话", "phone")):
            assert f"{label}：{cand[key]}" in text, (case.name, label)
        assert "主要事迹（首行）：" + cand["deeds"].split("\n")[0][:10] in text
        assert "如核对无误，无需再发送" in text
        assert "推荐单位意见、纪检监察部门意见" in text and "已盖章" in text


def test_word_and_scan_in_one_email_the_word_file_is_the_record_and_the_scan_the_seals(mail, smtp_server):
    case = scans.SAMPLE[3]
    word = {f"{scans.expected(case)['name']}推荐表.docx": scans.docx_for(case)}
    mail.append(scan_email(SENDERS[0], {**word, **scans.build(case)}, "<pair-1@example.cn>",
                           "推荐表（含盖章扫描件）"))
    poll(mail)

    [reply] = smtp_server.wait_for(1)
    assert reply.message["X-Intake-Status"] == "accepted", reply.message["X-Intake-Problems"]
    assert "本表为扫描件" not in body_text(reply.message)
    [cand] = mail.export()["candidates"]
    assert cand["source"] == "document"
    assert cand["name"] == scans.expected(case)["name"]
    assert cand["employer_post"] == scans.expected(case)["employer_post"]   # the Word text, spaces and all
    assert {k for k, v in cand["seals"].items() if v} == set(case.seals)
    assert len(cand["versions"]) == 1


def test_a_later_word_version_replaces_the_scanned_values_and_keeps_the_seals(mail, smtp_server):
    case = scans.SAMPLE[0]
    mail.append(scan_email(SENDERS[0], scans.build(case), "<scan-first@example.cn>"))
    poll(mail)
    name = scans.expected(case)["name"]
    assert by_name(mail.export())[name]["source"] == "scan"

    word = {f"{name}推荐表.docx": scans.docx_for(case)}
    mail.append(scan_email(SENDERS[0], word, "<word-later@example.cn>", "推荐表 Word 版"))
    poll(mail)
    cand = by_name(mail.export())[name]
    assert cand["source"] == "document"
    assert cand["employer_post"] == scans.expected(case)["employer_post"]
    assert {k for k, v in cand["seals"].items() if v} == set(case.seals)
    assert len(cand["versions"]) == 2
    assert len(smtp_server.wait_for(2)) == 2


def test_a_scan_with_a_value_that_cannot_be_read_asks_for_that_value_by_name(mail, smtp_server):
    case = scans.SAMPLE[0]   # upright, unskewed: the scribble lands on the phone number
    mail.append(scan_email(SENDERS[0], scans.blotted(case, "phone"), "<smudged@example.cn>"))
    poll(mail)

    [reply] = smtp_server.wait_for(1)
    assert reply.message["X-Intake-Status"] == "needs-correction"
    assert reply.message["X-Intake-Problems"] == "scanned-only"
    text = body_text(reply.message)
    assert "“联系电话”无法准确识别" in text
    assert "姓名" in text and "（未能识别）" in text
    [cand] = mail.export()["candidates"]
    assert cand["phone"] == ""          # never a phone number read in part
    assert cand["name"] == scans.expected(case)["name"]
