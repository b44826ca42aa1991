"""The document readers the sandbox process runs (parsers/attachments.py `_parse_document`).

The worker never calls them, so it does not import them: python-docx, pdfplumber, openpyxl
and the form's label patterns take ~0.4 s to import. The sandbox process imports this module
as it starts (parsers/sandbox.py `WARM_MODULES`), while the worker logs in and fetches.
"""
from parsers.docx_form import parse_forms
from parsers.docx_text import docx_report
from parsers.pdf_form import read_pdf
from parsers.xlsx_form import parse_sheet_forms

__all__ = ["docx_report", "parse_forms", "parse_sheet_forms", "read_pdf"]
