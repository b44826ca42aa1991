"""The originals for the expert review: `intake export --format files`.

县市区/姓名/ holds each active candidate's current form as the county sent it (its own file
name), the stamped scans that came with it, and the report; beside the folders, a one-page
landscape roster for the 领导小组 (姓名、性别、出生年月、政治面貌、工作单位及职务、县市区、状态 — no
home address or phone). Bytes come from the store's files by sha256.
"""
from __future__ import annotations

import datetime as dt
import io
import zipfile
from pathlib import Path

from docx import Document
from docx.enum.section import WD_ORIENT
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml.ns import qn
from docx.shared import Cm, Pt

from outbox.compose import REVIEW_WORDS, STATUS_WORDS
from parsers.email_message import sanitize_filename
from pipeline.roster import in_county_order
from pipeline.rules import ACTIVE_STATUSES
from pipeline.settings import Settings

ROSTER_NAME = "信息技术能手推荐人选名单（领导小组）.docx"
ROSTER_COLUMNS = (("序号", 1.2), ("姓名", 2.2), ("性别", 1.3), ("出生年月", 2.2), ("政治面貌", 2.6),
                  ("工作单位及职务", 8.0), ("县市区", 2.2), ("状态", 4.3))


def original_files(store, settings: Settings) -> list[tuple[str, bytes]]:
    """(path inside the export, bytes) for every active candidate's form, scans and report."""
    out: list[tuple[str, bytes]] = []
    for cand in _active(store.candidates.all(), settings):
        folder = f"{_safe(cand['county'])}/{_safe(cand['name'])}"
        version = (cand.get("versions") or [{}])[-1]
        entries = [(version.get("file"), version.get("sha256"))]
        entries += [(s.get("file"), s.get("sha256")) for s in version.get("scans") or []]
        report = cand.get("report") or {}
        entries.append((report.get("file"), report.get("sha256")))
        used: set[str] = set()
        for name, sha in entries:
            data = _read(store, sha)
            if not name or data is None:
                continue
            out.append((f"{folder}/{_unique(_safe(name.rsplit('/', 1)[-1]), used)}", data))
    return out


def export_files(store, settings: Settings, target: Path, today: dt.date) -> int:
    """Write the originals and the roster under `target`: a directory, or a .zip file. Returns
    the number of files written."""
    files = original_files(store, settings)
    files.append((ROSTER_NAME, roster_docx(store.candidates.all(), settings, today)))
    if target.suffix.lower() == ".zip":
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in files:
                archive.writestr(name, data)
        return len(files)
    for name, data in files:
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.write_bytes(data)
        path.chmod(0o600)
    return len(files)


def _active(candidates: list[dict], settings: Settings) -> list[dict]:
    return [c for c in in_county_order(candidates, settings) if c["status"] in ACTIVE_STATUSES]


def _read(store, sha: str | None) -> bytes | None:
    if not sha:
        return None
    try:
        return store.files.read(sha)
    except OSError:
        return None


def _safe(name: str) -> str:
    return sanitize_filename(name.replace("/", "／"), fallback="未命名")


def _unique(name: str, used: set[str]) -> str:
    stem, dot, ext = name.rpartition(".")
    candidate, n = name, 2
    while candidate in used:
        candidate = f"{stem}({n}).{ext}" if dot else f"{name}({n})"
        n += 1
    used.add(candidate)
    return candidate


# ------------------------------------------------------------ the 领导小组's roster

def roster_docx(candidates: list[dict], settings: Settings, today: dt.date) -> bytes:
    """One landscape A4 page: the active candidates, county by county, without address or phone."""
    doc = Document()
    style = doc.styles["Normal"]
    style.font.name, style.font.size = "宋体", Pt(10.5)
    style.element.rPr.rFonts.set(qn("w:eastAsia"), "宋体")
    section = doc.sections[0]
    section.orientation = WD_ORIENT.LANDSCAPE
    section.page_width, section.page_height = Cm(29.7), Cm(21)
    section.left_margin = section.right_margin = Cm(2)
    section.top_margin = section.bottom_margin = Cm(1.8)
    title = doc.add_paragraph()
    title.alignment = WD_ALIGN_PARAGRAPH.CENTER
    run = title.add_run("株洲市“信息技术能手”推荐人选名单")
    run.bold, run.font.size = True, Pt(16)
    note = doc.add_paragraph(f"截至{today.year}年{today.month}月{today.day}日")
    note.alignment = WD_ALIGN_PARAGRAPH.CENTER
    rows = _active(candidates, settings)
    table = doc.add_table(rows=1 + len(rows), cols=len(ROSTER_COLUMNS))
    table.style = "Table Grid"
    table.alignment = WD_TABLE_ALIGNMENT.CENTER
    for i, (header, width) in enumerate(ROSTER_COLUMNS):
        cell = table.cell(0, i)
        cell.text = header
        cell.paragraphs[0].runs[0].bold = True
        cell.paragraphs[0].alignment = WD_ALIGN_PARAGRAPH.CENTER
        for row in table.rows:
            row.cells[i].width = Cm(width)
    for n, cand in enumerate(rows, start=1):
        values = (str(n), cand.get("name", ""), cand.get("sex", ""), cand.get("birth", ""),
                  cand.get("political_status", ""), cand.get("employer_post", ""), cand["county"],
                  _standing(cand))
        for i, value in enumerate(values):
            table.cell(n, i).text = value or ""
    if not rows:
        doc.add_paragraph("目前尚无推荐人选。")
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


def _standing(cand: dict) -> str:
    word = STATUS_WORDS.get(cand["status"], cand["status"])
    review = cand.get("review")
    return f"{word}；{REVIEW_WORDS.get(review['status'], review['status'])}" if review else word
