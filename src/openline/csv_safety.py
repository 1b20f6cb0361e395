"""CSV cells a spreadsheet will not run as formulas (OWASP "CSV Injection").

Excel, LibreOffice and Google Sheets take a cell starting with ``=``, ``+``, ``-`` or ``@`` as a
formula (OWASP adds a leading tab or carriage return, which some skip before one): a first name typed
on the public sign-up form as ``=HYPERLINK("http://evil","x")`` would turn into a live link in the
owner's spreadsheet. The CSV files openline writes put a ``'`` before such a cell, which spreadsheets
read as "this is text"; the import drops it again, so an export imports back as it was.
"""

from __future__ import annotations

import re

__all__ = ["spreadsheet_safe", "undo_spreadsheet_safe"]

# A cell a spreadsheet would run as a formula, or one that already starts with quotes before such a
# character: it gets one more quote too, so that dropping one on import gives the text back unchanged.
_FORMULA = re.compile(r"'*[=+\-@\t\r]")
_ESCAPED = re.compile(r"'+[=+\-@\t\r]")
# A plain number (a negative amount, an E.164 phone number) is never a formula: it stays a number.
_NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")


def spreadsheet_safe(value: str) -> str:
    """``value`` as a CSV cell a spreadsheet shows as text: with a leading ``'`` if it could be a formula."""
    if _FORMULA.match(value) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def undo_spreadsheet_safe(cell: str) -> str:
    """A CSV cell as it was before ``spreadsheet_safe``: without the ``'`` it added, if it has one."""
    return cell[1:] if _ESCAPED.match(cell) else cell
