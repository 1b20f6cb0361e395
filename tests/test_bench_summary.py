"""The benchmark runner's summary of headline figures and its JSON, on the cheapest benchmark in smoke size."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from bench.common import Headline, Table
from bench.run import Outcome, main, summary_table


def test_the_summary_and_the_json_carry_the_headline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "results" / "bench.json"  # a directory that does not exist yet is made

    assert main(["encoding", "--smoke", "--pg-url", "", "--json", str(path)]) == 0

    output = capsys.readouterr().out
    summary = output.split("== summary: every headline figure\n", 1)[1]
    line = next(line for line in summary.splitlines() if line.startswith("encoding "))
    cells = [cell.strip() for cell in line.split("|")]
    assert cells[1] == "segment counting texts/s"
    assert cells[3].replace(",", "").isdigit()
    assert cells[4:] == ["texts/s", "-", "-", "≥ 200,000/s", cells[8]]
    assert cells[8] in ("yes", "NO")

    document = json.loads(path.read_text(encoding="utf-8"))
    run = document["run"]
    assert run["command"] == f"python -m bench encoding --smoke --pg-url '' --json {shlex.quote(str(path))}"
    assert run["smoke"] is True
    assert run["postgresql"] is None
    assert run["cpus"] >= 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", run["started"])
    assert list(document["benchmarks"]) == ["encoding"]
    encoding = document["benchmarks"]["encoding"]
    assert encoding["failure"] is None
    assert encoding["seconds"] > 0
    assert encoding["rows"][0]["texts"] == "100,000"
    [headline] = encoding["headlines"]
    assert headline["figure"] == "segment counting texts/s"
    assert headline["database"] == "-"
    assert headline["unit"] == "texts/s"
    assert headline["value"] > 0
    assert headline["ceiling"] is None and headline["ratio"] is None
    assert headline["met"] is (headline["value"] >= 200_000)
    assert headline["better"] == "higher"


def test_the_json_names_the_postgresql_server_without_its_password(
    tmp_path: Path, postgres_server_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bench.json"

    assert main(["encoding", "--smoke", "--pg-url", postgres_server_url, "--json", str(path)]) == 0

    capsys.readouterr()
    run = json.loads(path.read_text(encoding="utf-8"))["run"]
    assert re.fullmatch(r"\d+(\.\d+)*", run["postgresql"]["version"])
    assert run["postgresql"]["server"].startswith("postgresql://")
    password = re.match(r"postgresql[+\w]*://[^:@/]*:([^@]*)@", postgres_server_url)
    if password:
        assert password.group(1) not in run["command"] + run["postgresql"]["server"]


def test_a_failure_and_a_time_against_its_ceiling_in_the_summary() -> None:
    table = Table(
        headlines=[Headline("count", "sqlite", 0.3, "s", ceiling=0.1, target="≤ 1 s", met=True, better="lower")]
    )
    summary = summary_table([Outcome("segments", table, 1.0), Outcome("ingest", Table(), 0.5, "Traceback ...")])

    assert summary.rows == [
        {
            "benchmark": "segments",
            "figure": "count",
            "database": "sqlite",
            "value": "0.3",
            "unit": "s",
            "ceiling": "0.1",
            "ratio": "3.00",
            "target": "≤ 1 s",
            "met": "yes",
        },
        {"benchmark": "ingest", "figure": "FAILED (see above)"},
    ]
