"""Seals on scans of the stamped form: found by colour and shape, placed in the opinion box
they were pressed in, and never invented from other red ink."""
import io

import numpy as np
from PIL import Image, ImageDraw

from parsers import scan_form
from parsers.scan_form import UNREAD, ScanPage, form_from_pages
from parsers.seals import find_seals
from tests.corpus import scans


def page(case, index: int) -> np.ndarray:
    data = list(scans.build(case).values())[index]
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_a_seal_is_found_where_it_was_pressed_and_nowhere_else():
    case = scans.SAMPLE[0]   # stamped in 推荐单位意见 and 纪检监察部门意见
    found = find_seals(page(case, 1), case.dpi)
    assert len(found) == 2
    radius_mm = [s.radius * 2 / case.dpi * 25.4 for s in found]
    assert all(38 <= d <= 46 for d in radius_mm)          # the 42 mm seal drawn
    assert sorted(s.y for s in found)[0] < sorted(s.y for s in found)[1]
    assert find_seals(page(case, 0), case.dpi) == []       # page 1: the photo is blue, no seal


def test_red_ink_that_is_not_a_seal_is_not_taken_for_one():
    sheet = Image.new("RGB", (1240, 1754), "white")
    d = ImageDraw.Draw(sheet)
    d.rectangle([100, 80, 1140, 140], fill=(210, 30, 40))             # a red banner heading
    d.line([(200, 600), (700, 640), (900, 610)], fill=(200, 20, 30), width=4)   # a red pen signature
    d.ellipse([500, 900, 540, 940], outline=(210, 30, 40), width=3)  # a small red circle mark
    assert find_seals(np.asarray(sheet), 150) == []


def test_a_faint_half_transparent_seal_over_text_is_still_found():
    sheet = Image.new("RGB", (1240, 1754), "white")
    d = ImageDraw.Draw(sheet)
    for y in range(700, 1000, 40):
        d.rectangle([300, y, 1000, y + 20], fill=(20, 20, 20))         # lines of black text
    stamped = scans.draw_seal(sheet, 650, 850, 150)
    [seal] = find_seals(np.asarray(stamped), 150)
    assert abs(seal.x - 650) < 10 and abs(seal.y - 850) < 10


def test_each_seal_is_placed_in_its_opinion_box_and_a_seal_signs_a_blank_box():
    case = next(c for c in scans.CASES if c.name == "200dpi-jpg85-seal-signs-blank-box")
    read = scan_form.read_page(page(case, 1))
    assert read.seals == set(case.seals)
    labels = [row[0] for row in read.rows]
    assert any("纪检监察" in label for label in labels)


def test_a_value_read_without_confidence_is_never_kept_in_part():
    rows = [["姓名", "张三", "性别", "男", "出生年月", "1985.06"],
            ["民族", "汉", "籍贯", "湖南株洲", "政治面貌", "中共党员"],
            ["联系电话", f"138{UNREAD * 4}0000"]]
    form = form_from_pages([ScanPage(rows, {"recommender"}), ScanPage([["推荐单位意见", "（盖章）"]])])
    assert form.unread == ["phone"]
    assert form.record.phone == ""
    assert form.record.name == "张三" and form.record.source == "scan"
    assert form.seals == {"recommender": True, "discipline": False, "member_unit": False, "approval": False}


def test_deeds_continued_on_page_2_are_whole_though_the_printed_note_was_half_read():
    # Page 2 opens with the label again; its printed "（600字以内）" read with "内）" unsure is the
    # form's own print: it must neither join the deeds nor make them count as half read.
    rows = [["姓名", "张三", "性别", "男", "出生年月", "1985.06"],
            ["主要事迹（600字以内）", "主持建设政务云平台。"]]
    page_2 = [["主要事迹（600字以" + UNREAD * 2, "带领团队上线健康码核验系统。"],
              ["推荐单位意见", "同意推荐。（盖章）"]]
    form = form_from_pages([ScanPage(rows), ScanPage(page_2)])
    assert "deeds" not in form.unread
    assert form.record.deeds == "主持建设政务云平台。\n带领团队上线健康码核验系统。"


def test_without_the_ocr_extra_a_scan_is_evidence_only_as_before(monkeypatch):
    from parsers import attachments, ocr as ocr_module
    from parsers.records import Attachment

    monkeypatch.setattr(ocr_module, "available", lambda: False)
    data = list(scans.build(scans.SAMPLE[0]).values())[0]
    [doc] = attachments.read_attachments([Attachment("扫描件.jpg", "image/jpeg", data)])
    assert (doc.kind, doc.scan, doc.pages) == ("image", True, None)
