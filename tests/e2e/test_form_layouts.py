"""The bureau's form however the counties fill or re-make it, through the real path: each
county's email APPENDed to Dovecot, one `intake poll --once`, the replies at the SMTP server and
every candidate's fields, deeds whole, in the json export."""
from pipeline import sample_mail, samples
from tests.configs import MAILBOX
from tests.corpus import files

# county address → the layouts it sends, one email each (at most three candidates a county)
SENT = {
    "hetang@example.cn": ("deeds-in-table-1", "deeds-in-table-2", "pdf"),
    "lusong@example.cn": ("deeds-split", "deeds-split-650", "vmerge-label"),
    "shifeng@example.cn": ("paragraphs", "label-variants", "one-table"),
    "tianyuan@example.cn": ("three-forms",),
    "lukou@example.cn": ("lossy-doc", "xlsx", "xls"),
}
COUNTIES = {"hetang@example.cn": "荷塘区", "lusong@example.cn": "芦淞区", "shifeng@example.cn": "石峰区",
            "tianyuan@example.cn": "天元区", "lukou@example.cn": "渌口区", "liling@example.cn": "醴陵市"}
INCOMPLETE = "醴陵市推荐表.docx"


def _emails() -> dict[str, tuple[str, bytes]]:
    """message id → (sender, raw email)."""
    out = {}
    for sender, layouts in SENT.items():
        for layout in layouts:
            name, data, _, _ = files.layouts()[layout]
            message_id = f"<{layout}@{sender.split('@')[0]}.example.cn>"
            out[message_id] = (sender, sample_mail.foxmail_email(
                sender, MAILBOX, f"{COUNTIES[sender]}信息技术能手推荐表", [(name, data)],
                message_id=message_id))
    incomplete = samples.build_paragraph_form_docx(samples.SAMPLE_CANDIDATES[1],
                                                   omit=("home_address", "phone"))
    out["<incomplete@liling.example.cn>"] = ("liling@example.cn", sample_mail.foxmail_email(
        "liling@example.cn", MAILBOX, "醴陵市信息技术能手推荐表", [(INCOMPLETE, incomplete)],
        message_id="<incomplete@liling.example.cn>"))
    return out


def test_every_layout_is_read_whole_and_answered_rightly(mail, smtp_server):
    emails = _emails()
    for _, raw in emails.values():
        mail.append(raw)
    for _ in range(2):   # the outbox sends ten replies a run: the second run sends the rest
        result = mail.poll()
        assert result.returncode == 0, result.stderr

    replies = {r.message["In-Reply-To"]: r.message for r in smtp_server.wait_for(len(emails), timeout=30)}
    assert set(replies) == set(emails)
    for message_id, reply in replies.items():
        layout = message_id[1:].split("@")[0]
        expected = {"deeds-split-650": ("needs-correction", "deeds-too-long"),
                    "incomplete": ("needs-correction", "missing-field:home_address, missing-field:phone")
                    }.get(layout, ("accepted", None))
        assert (reply["X-Intake-Status"], reply["X-Intake-Problems"]) == expected, layout

    text = replies["<deeds-split-650@lusong.example.cn>"].get_body(("plain",)).get_content()
    assert "附件《周八推荐表.docx》中主要事迹现为650字，超过600字上限" in text
    text = replies["<incomplete@liling.example.cn>"].get_body(("plain",)).get_content()
    assert f"附件《{INCOMPLETE}》中“家庭地址”一栏为空" in text
    assert f"附件《{INCOMPLETE}》中“联系电话”一栏为空" in text
    text = replies["<three-forms@tianyuan.example.cn>"].get_body(("plain",)).get_content()
    assert all(f"附件《茶陵县推荐表（3人）.docx》：{n}" in text for n in ("张三", "李四", "王五"))
    text = replies["<deeds-split@lusong.example.cn>"].get_body(("plain",)).get_content()
    assert "主要事迹：" + "\n    ".join(files.SPLIT_OK) in text   # both parts echoed, not the first

    export = mail.export()
    got = {(c["county"], c["name"]): c for c in export["candidates"]}
    want = {}
    for sender, layouts in SENT.items():
        for layout in layouts:
            name, _, typed, _ = files.layouts()[layout]
            for t in typed:
                want[(COUNTIES[sender], t["name"])] = (name, files.expected_fields(t))
    assert set(got) == set(want) | {("醴陵市", "李四")}
    assert not any(s["problems"] == ["report-unmatched"] for s in export["submissions"])
    for key, (file, fields) in want.items():
        candidate = got[key]
        assert {k: candidate[k] for k in fields} == fields, key
        assert candidate["versions"][-1]["file"] == file
    assert got[("芦淞区", "周八")]["status"] == "needs-correction"
    assert len("".join(got[("芦淞区", "周八")]["deeds"].split())) == 650
    assert got[("天元区", "王五")]["versions"][-1]["file"] == "茶陵县推荐表（3人）.docx"
