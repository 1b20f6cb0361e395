"""`openline members`: import, export, show, erase on the embedded database."""

from __future__ import annotations

import json
from pathlib import Path

from openline.cli import app

from .test_cli import invoke, runner

US, IT = "+12025550143", "+393471234567"


def test_import_show_export_and_erase(tmp_path: Path) -> None:
    (tmp_path / "fans.csv").write_text(
        "Mobile,First Name,Seat,consent_source,consent_at\n"
        "(202) 555-0143,Ann,B12,web form,2024-05-01T18:30:00Z\n"
        "+39 347 123 4567,Giulia,,,\n"
        "12,Bob,,,\n",
        encoding="utf-8",
    )
    code, output = invoke("members", "import", "fans.csv", "--map", "Seat=custom.seat", "--dry-run")
    assert code == 0, output
    assert "fans.csv (dry run: nothing stored)" in output
    assert invoke("members", "show", IT)[0] == 1

    code, output = invoke(
        "members", "import", "fans.csv", "--map", "Seat=custom.seat", env={"OPENLINE_DEFAULT_COUNTRY": "US"}
    )
    assert code == 0, output
    assert "rejected and skipped rows, with the reason: " in output and "fans.csv.errors.csv" in output
    report = (tmp_path / "fans.csv.errors.csv").read_text(encoding="utf-8").splitlines()
    assert report[1].startswith("4,Mobile,'12' is not a valid number")

    code, output = invoke("members", "show", "+1 202-555-0143")
    assert code == 0, output
    record = json.loads(output)
    assert (record["phone"], record["state"], record["custom"]) == (US, "subscribed", {"seat": "B12"})
    assert record["consent"][0]["evidence"]["file"] == "fans.csv"

    code, output = invoke("members", "export", "--format", "jsonl", "--output", "out.jsonl")
    assert code == 0, output
    exported = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [m["phone"] for m in exported] == [US, IT]
    code, output = invoke("members", "export")
    assert code == 0 and output.splitlines()[0].startswith("phone,state,") and len(output.splitlines()) == 3

    declined = runner.invoke(app, ["members", "erase", US], input="n\n")
    assert declined.exit_code == 1 and "Aborted" in declined.output
    code, output = invoke("members", "erase", US, "--yes")
    assert (code, output) == (0, f"erased {US}\n")
    code, output = invoke("members", "show", US)
    assert code == 1 and f"no member with the number {US}" in output
    # Imported again, the erased number is skipped.
    code, output = invoke("members", "import", "fans.csv", "--default-country", "US")
    assert code == 0 and "skipped (erased)" in output
    assert "erased at the person's request" in (tmp_path / "fans.csv.errors.csv").read_text(encoding="utf-8")


def test_import_explains_what_it_cannot_use(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("name\nAnn\n", encoding="utf-8")
    code, output = invoke("members", "import", "a.csv")
    assert code == 1 and "no column holds the phone number" in output
    code, output = invoke("members", "import", "a.csv", "--map", "name")
    assert code == 1 and "expected COLUMN=FIELD" in output
    code, output = invoke("members", "import", "a.csv", "--default-country", "XX")
    assert code == 1 and "--default-country: 'XX' is not an ISO 3166 country code" in output
    code, output = invoke("members", "import", "missing.csv")
    assert code == 2
    code, output = invoke("members", "show", "12")
    assert code == 1 and "is not a phone number" in output
