"""Builders for the test corpus. Each returns bytes; the slow ones (LibreOffice) convert many
files in one call and are cached per session in tests/corpus/files.py."""
from __future__ import annotations

import io
import struct
import subprocess
import tempfile
import zipfile
import zlib
from pathlib import Path

from PIL import Image


def soffice_convert(files: dict[str, bytes], target: str) -> dict[str, bytes]:
    """{name: bytes} converted by LibreOffice to `target` (e.g. "doc", "pdf"): one call."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, data in files.items():
            (work / name).write_bytes(data)
        subprocess.run(["soffice", "--headless", "--norestore",
                        f"-env:UserInstallation={(work / 'profile').as_uri()}",
                        "--convert-to", target, "--outdir", str(work / "out"), *files],
                       cwd=work, check=True, capture_output=True, timeout=180)
        ext = target.split(":")[0]
        return {name: (work / "out" / f"{Path(name).stem}.{ext}").read_bytes() for name in files}


def qpdf_encrypt(pdf: bytes, user_password: str) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp, "in.pdf"), Path(tmp, "out.pdf")
        src.write_bytes(pdf)
        subprocess.run(["qpdf", "--encrypt", user_password, "owner-secret", "256", "--",
                        str(src), str(dst)], check=True, capture_output=True)
        return dst.read_bytes()


def pdf_without_text_encoding(pdf: bytes) -> bytes:
    """The same PDF with its fonts' ToUnicode maps disabled: pdfminer can then only give
    "(cid:N)" for each glyph, as with PDFs from some old WPS and printer drivers."""
    with tempfile.TemporaryDirectory() as tmp:
        src, qdf = Path(tmp, "in.pdf"), Path(tmp, "q.pdf")
        src.write_bytes(pdf)
        subprocess.run(["qpdf", "--qdf", "--object-streams=disable", str(src), str(qdf)],
                       check=True, capture_output=True)
        data = qdf.read_bytes()
        assert b"/ToUnicode" in data
        return data.replace(b"/ToUnicode", b"/ToUnicodX")   # same length: offsets stay valid


def pdftoppm(pdf: bytes, fmt: str = "png", dpi: int = 60) -> bytes:
    """The first page rendered as a PNG or JPEG, as a scanner would deliver it."""
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "in.pdf").write_bytes(pdf)
        flag = "-jpeg" if fmt == "jpg" else "-png"
        subprocess.run(["pdftoppm", flag, "-r", str(dpi), "-singlefile", "-f", "1", "-l", "1",
                        str(Path(tmp, "in.pdf")), str(Path(tmp, "page"))],
                       check=True, capture_output=True)
        return Path(tmp, f"page.{fmt}").read_bytes()


def image_pdf(image: bytes) -> bytes:
    """A scanned PDF: one page that is only a picture, as scanners' "scan to PDF" writes."""
    out = io.BytesIO()
    Image.open(io.BytesIO(image)).convert("RGB").save(out, "PDF", resolution=60)
    return out.getvalue()


# ---- archives -------------------------------------------------------------------------------

def zip_utf8(files: dict[str, bytes]) -> bytes:
    """A zip as Python, macOS or 7-Zip write it: UTF-8 names with the UTF-8 flag set."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return out.getvalue()


def zip_gbk(files: dict[str, bytes]) -> bytes:
    """A zip as Windows' built-in archiver or old WinRAR write it on a Chinese system: names in
    GBK and no UTF-8 flag. zipfile cannot write that, so ASCII placeholders of the same length
    are written and then replaced by the GBK bytes (names are not covered by the CRC)."""
    out = io.BytesIO()
    placeholders = {}
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for i, (name, data) in enumerate(files.items()):
            raw = name.encode("gbk")
            placeholder = f"~{i:03d}".ljust(len(raw), "_")[: len(raw)].encode()
            assert len(raw) >= 4, "name too short to patch safely"
            placeholders[placeholder] = raw
            zf.writestr(placeholder.decode(), data)
    data = out.getvalue()
    for placeholder, raw in placeholders.items():
        assert data.count(placeholder) == 2   # local header and central directory
        data = data.replace(placeholder, raw)
    return data


def zip_bomb(expanded: int = 1 << 30) -> bytes:
    """One member of `expanded` zero bytes, honestly declared: ~1 MB on the wire per GB."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("推荐表.docx", "w", force_zip64=True) as member:
            block = bytes(1 << 20)
            for _ in range(expanded >> 20):
                member.write(block)
    return out.getvalue()


def seven_zip(files: dict[str, bytes], password: str | None = None) -> bytes:
    """A .7z made by 7-Zip (Debian's 7zip package), optionally with a password."""
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in files.items():
            Path(tmp, name).write_bytes(data)
        args = ["7zz", "a", "-bso0", "-bsp0", "out.7z", *files]
        if password:
            args[2:2] = [f"-p{password}", "-mhe=on"]
        subprocess.run(args, cwd=tmp, check=True, capture_output=True)
        return Path(tmp, "out.7z").read_bytes()


def seven_zip_bomb(expanded: int = 1 << 30) -> bytes:
    """A .7z whose one member is `expanded` zero bytes (LZMA makes that a few hundred KB)."""
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen(["7zz", "a", "-bso0", "-bsp0", "-si推荐表.docx", "out.7z"],
                                cwd=tmp, stdin=subprocess.PIPE)
        block = bytes(1 << 20)
        for _ in range(expanded >> 20):
            proc.stdin.write(block)
        proc.stdin.close()
        assert proc.wait() == 0
        return Path(tmp, "out.7z").read_bytes()


def rar4(files: dict[str, bytes], encrypted: bool = False) -> bytes:
    """A RAR 4 archive with stored (uncompressed) members and Unicode names, as WinRAR writes
    with "store" compression. No free tool writes RAR, so the blocks are laid out here."""
    marker = b"Rar!\x1a\x07\x00"
    main = _rar_block(0x73, 0x0000, b"\x00" * 6)
    body = b""
    for name, data in files.items():
        raw_name = name.encode("utf-8")   # with LHD_UNICODE and no NUL: the name is UTF-8
        flags = 0x8000 | 0x0200 | (0x0004 if encrypted else 0)
        fields = struct.pack("<IIBIIBBHI", len(data), len(data), 2, zlib.crc32(data),
                             0x5A210000, 20, 0x30, len(raw_name), 0x20) + raw_name
        body += _rar_block(0x74, flags, fields) + data
    end = _rar_block(0x7B, 0x4000, b"")
    return marker + main + body + end


def _rar_block(kind: int, flags: int, fields: bytes) -> bytes:
    head = struct.pack("<BHH", kind, flags, 7 + len(fields)) + fields
    return struct.pack("<H", zlib.crc32(head) & 0xFFFF) + head


def tnef(files: dict[str, bytes]) -> bytes:
    """Outlook's winmail.dat: each file as attAttachRendData, attAttachTitle (in the sender's
    code page, GBK here) and attAttachData."""
    out = struct.pack("<IH", 0x223E9F78, 0x1234)
    out += _tnef_attr(1, 0x00089006, struct.pack("<I", 0x00010000))   # attTnefVersion
    out += _tnef_attr(1, 0x00069007, struct.pack("<II", 936, 0))      # attOemCodepage: GBK
    for name, data in files.items():
        out += _tnef_attr(2, 0x00069002, bytes(14))                    # attAttachRendData
        out += _tnef_attr(2, 0x00018010, name.encode("gbk") + b"\x00")  # attAttachTitle
        out += _tnef_attr(2, 0x0006800F, data)                         # attAttachData
    return out


def _tnef_attr(level: int, attr_id: int, data: bytes) -> bytes:
    return struct.pack("<BII", level, attr_id, len(data)) + data + struct.pack("<H", sum(data) & 0xFFFF)


# ---- the form re-made in a spreadsheet -----------------------------------------------------

def form_xlsx(fields: dict, photo: bytes | None) -> bytes:
    """The notice's form re-made in Excel, as counties do: the title merged across the sheet,
    each label and value in merged cells, the 主要事迹 row at the end of the first block and
    again at the top of the second, and the photo a picture floating over its merged cell."""
    from openpyxl import Workbook
    from openpyxl.drawing.image import Image as SheetImage
    from openpyxl.styles import Alignment

    from pipeline.form_layout import NOTICE_TABLE_1, NOTICE_TABLE_2
    from pipeline.samples import FORM_CATEGORY, FORM_TITLE, STAMP_LINES

    book = Workbook()
    sheet = book.active
    sheet.title = "推荐表"
    sheet["A1"] = FORM_TITLE
    sheet.merge_cells("A1:G1")
    sheet["A2"] = FORM_CATEGORY
    sheet.merge_cells("A2:G2")

    def put(row: int, col: int, last: int, text: str) -> None:
        cell = sheet.cell(row=row, column=col + 1, value=text or None)
        cell.alignment = Alignment(wrap_text=True)
        if last > col:
            sheet.merge_cells(start_row=row, start_column=col + 1, end_row=row, end_column=last + 1)

    def value(key: str) -> str:
        if key in fields.get("opinions", {}):
            return "\n".join([fields["opinions"][key], *STAMP_LINES])
        return fields.get(key, "")

    top = 3
    for row, col, key, (first, last) in NOTICE_TABLE_1:
        put(top + row, col, col, _PLAIN_LABELS[key])
        put(top + row, first, last, value(key))
    sheet.merge_cells(start_row=top, start_column=7, end_row=top + 2, end_column=7)
    if photo is None:
        sheet.cell(row=top, column=7, value="一寸免冠照片")
    else:
        sheet.add_image(SheetImage(io.BytesIO(photo)), f"G{top}")
    second = top + NOTICE_TABLE_1[-1][0] + 2
    for row, col, key, _ in NOTICE_TABLE_2:
        put(second + row, 0, 0, _PLAIN_LABELS[key])
        put(second + row, 1, 6, "" if key == "deeds" else value(key))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


_PLAIN_LABELS = {
    "name": "姓名", "sex": "性别", "birth": "出生年月", "ethnicity": "民族", "native_place": "籍贯",
    "political_status": "政治面貌", "employer_post": "工作单位及职务", "home_address": "家庭地址",
    "phone": "联系电话", "honours": "所获荣誉情况", "deeds": "主要事迹（600字以内）",
    "recommender": "推荐单位\n意见", "discipline": "纪检监察\n部门\n意见", "member_unit": "成员\n单位\n意见",
    "approval": "审批\n意见",
}
