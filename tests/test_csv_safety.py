"""CSV cells a spreadsheet will not run as formulas, and the import that reads them back unchanged."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openline.csv_safety import spreadsheet_safe, undo_spreadsheet_safe
from openline.members_rows import check_rows, resolve_columns

TRIGGERS = "=+-@\t\r"
PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")
# Text that often starts with what matters here, besides any text at all.
_tricky = st.text(alphabet=st.sampled_from([*TRIGGERS, "'", "1", ".", "a", " ", "\n"]), max_size=8)
_text = st.one_of(st.text(), _tricky)


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ('=HYPERLINK("http://evil","x")', '\'=HYPERLINK("http://evil","x")'),
        ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
        ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("\t=1+1", "'\t=1+1"),
        ("\r=1+1", "'\r=1+1"),
        ("-", "'-"),
        # Already quoted before a formula: one quote more, so the import gives it back as it was.
        ("'=1+1", "''=1+1"),
        # Plain numbers are not formulas and stay numbers: amounts, E.164 phone numbers.
        ("+14155550100", "+14155550100"),
        ("-5", "-5"),
        ("-0.25", "-0.25"),
        # Almost numbers are escaped: a line break or non-ASCII digits could hide a formula.
        ("-5\n=1+1", "'-5\n=1+1"),
        ("-٣", "'-٣"),
        ("", ""),
        ("Ann", "Ann"),
        ("'quoted", "'quoted"),
        ("a=b", "a=b"),
        (" =1+1", " =1+1"),
    ],
)
def test_cells_that_could_be_formulas_get_a_leading_quote(value: str, cell: str) -> None:
    assert spreadsheet_safe(value) == cell
    assert undo_spreadsheet_safe(cell) == value


@given(_text)
def test_the_import_rule_undoes_exactly_the_escaping(value: str) -> None:
    assert undo_spreadsheet_safe(spreadsheet_safe(value)) == value


@given(_text)
def test_an_escaped_cell_never_starts_like_a_formula_unless_a_plain_number(value: str) -> None:
    cell = spreadsheet_safe(value)
    assert cell in (value, "'" + value)
    if cell[:1] and cell[0] in TRIGGERS:
        assert PLAIN_NUMBER.fullmatch(cell) and cell == value


@given(_text)
def test_an_import_reads_an_escaped_cell_back_as_the_text(value: str) -> None:
    columns = resolve_columns(["phone", "custom.note"])
    now = datetime(2026, 3, 1, tzinfo=UTC)
    (candidate,), errors = check_rows([(2, ["+12025550143", spreadsheet_safe(value)])], columns, "US", now)
    assert errors == []
    # Stripped, as every cell the import reads.
    assert candidate.custom.get("note") == (value.strip() or None)
