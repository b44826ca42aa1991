"""`intake export` in every format, on a store seeded by `intake poll --once` over a Maildir."""
import csv
import datetime as dt
import io
import json
from pathlib import Path

import docx
import openpyxl
import pytest

from pipeline import sample_mail, samples
from pipeline.demo import write_maildir
from pipeline.roster import export_roster
from pipeline.settings import load_settings
from store.repository import Store
from tests.cli import exported, intake
from tests.configs import MAILBOX, write_config

TZ = dt.timezone(dt.timedelta(hours=8))
JULY_20 = dt.datetime(2022, 7, 20, 10, 0, tzinfo=TZ)
HEADERS = ["县市区", "姓名", "性别", "出生年月", "民族", "籍贯", "政治面貌", "工作单位及职务", "家庭地址",
           "联系电话", "所获荣誉情况", "主要事迹", "推荐单位意见", "纪检监察部门意见", "成员单位意见",
           "审批意见", "照片", "盖章件", "状态", "问题", "评审", "版本数", "报告题目", "报告字数", "最近报送时间"]


def form_email(sender: str, *forms: dict) -> bytes:
    files = [(f"{f['name']}推荐表.docx", samples.build_form_docx(f)) for f in forms]
    return sample_mail.foxmail_email(sender, MAILBOX, "推荐表", files)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """炎陵县 (listed last) and 荷塘区 (first) each have an accepted candidate; 石峰区 has one
    accepted and one to correct."""
    config = write_config(tmp_path)
    bad_phone = {**samples.SAMPLE_CANDIDATES[1], "phone": "12345"}
    emails = [form_email("yanling@example.cn", samples.SAMPLE_CANDIDATES[3]),
              form_email("hetang@example.cn", samples.SAMPLE_CANDIDATE),
              form_email("shifeng@example.cn", samples.SAMPLE_CANDIDATES[2], bad_phone),
              sample_mail.auto_reply("tianyuan@example.cn", MAILBOX)]
    write_maildir(tmp_path / "inbox", [(raw, JULY_20 + dt.timedelta(minutes=i)) for i, raw in enumerate(emails)])
    result = intake(config, "poll", "--once")
    assert result.returncode == 0, result.stderr
    return config


def export(config: Path, fmt: str, *args: str):
    result = intake(config, "export", "--format", fmt, *args)
    assert result.returncode == 0, result.stderr
    return result


def test_the_json_export_is_the_stores_view(config):
    settings = load_settings(config)
    store = Store(settings.store.path, settings.store.files)
    try:
        view = export_roster(store)
    finally:
        store.close()
    assert exported(config) == view
    export(config, "json", "-o", "roster.json")
    assert json.loads((config.parent / "roster.json").read_text(encoding="utf-8")) == view
    assert len(view["candidates"]) == 4 and len(view["submissions"]) == 4


def test_the_csv_opens_in_excel_with_chinese_headers(config):
    data = intake_bytes(config, "csv")
    assert data.startswith(b"\xef\xbb\xbf")          # the BOM Excel on Windows needs
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0] == HEADERS
    table = [dict(zip(rows[0], r)) for r in rows[1:]]
    assert [(r["县市区"], r["姓名"], r["状态"]) for r in table] == [
        ("荷塘区", "张三", "已受理"), ("石峰区", "李四", "需补正"), ("石峰区", "王五", "已受理"),
        ("炎陵县", "赵六", "已受理")]
    assert table[1]["问题"].startswith("附件《李四推荐表.docx》中“联系电话”填写为“12345”")
    assert table[0]["民族"] == "汉族" and table[0]["照片"] == "有" and table[0]["版本数"] == "1"
    assert table[0]["盖章件"] == "✘"   # a Word file only: no stamped scan seen


def intake_bytes(config: Path, fmt: str) -> bytes:
    export(config, fmt, "-o", f"roster.{fmt}")
    return (config.parent / f"roster.{fmt}").read_bytes()


def test_the_xlsx_has_a_frozen_header_and_a_sheet_of_every_email(config):
    wb = openpyxl.load_workbook(io.BytesIO(intake_bytes(config, "xlsx")))
    sheet = wb["推荐人选"]
    assert [c.value for c in sheet[1]] == HEADERS
    assert sheet.freeze_panes == "A2"
    assert sheet.column_dimensions["L"].width == 40                 # 主要事迹, wrapped
    assert sheet["L2"].alignment.wrap_text
    assert [sheet.cell(row, 2).value for row in range(2, sheet.max_row + 1)] == ["张三", "李四", "王五", "赵六"]
    letters = [sheet.cell(row=1, column=i).value for i in range(1, sheet.max_column + 1)]
    when = sheet.cell(2, letters.index("最近报送时间") + 1)
    assert when.value == dt.datetime(2022, 7, 20, 10, 1) and when.number_format == "yyyy-mm-dd hh:mm"
    assert sheet["A1"].font.bold and sheet["A1"].fill.fgColor.rgb.endswith("1F4E79")   # the header
    assert sheet["B1"].alignment.horizontal == "center" and sheet["B2"].alignment.vertical == "top"
    assert sheet.row_dimensions[2].height > sheet.row_dimensions[1].height   # the deeds' lines
    mail = wb["来信记录"]
    assert [c.value for c in mail[1]][:5] == ["收到时间", "发件人", "县市区", "主题", "处理结果"]
    assert sorted(mail.cell(r, 5).value for r in range(2, mail.max_row + 1)) == \
        ["已受理", "已受理", "未回复", "需补正"]
    assert "自动回复" in [mail.cell(r, 6).value for r in range(2, mail.max_row + 1)]


def test_binary_formats_need_an_output_file(config):
    result = intake(config, "export", "--format", "xlsx")
    assert result.returncode == 2
    assert "-o FILE" in result.stderr


def test_the_review_pack_has_one_section_per_accepted_candidate_in_county_order(config):
    pack = docx.Document(io.BytesIO(intake_bytes(config, "docx")))
    assert len(pack.sections) == 3
    headers = [s.header.paragraphs[0].text for s in pack.sections]
    assert headers == ["信息技术能手评审材料 · 荷塘区 · 张三", "信息技术能手评审材料 · 石峰区 · 王五",
                       "信息技术能手评审材料 · 炎陵县 · 赵六"]
    assert len(pack.tables) == 3
    first = {cell.text for row in pack.tables[0].rows for cell in row.cells}
    assert {"姓名", "张三", "联系电话", "13807310000", "纪检监察部门意见"} <= first
    assert len(pack.inline_shapes) == 3                             # each form's photo
    assert "李四" not in "".join(p.text for p in pack.paragraphs)
