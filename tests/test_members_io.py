"""Members' CSV import and export, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import gc
import io
import json
import re
import string
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openline import members_io
from openline.analytics import Day, remember
from openline.communities import bootstrap, get_community
from openline.db import Database, schema, upgrade
from openline.erasure import erase_member
from openline.members import find_member_id, member_record
from openline.members_export import CSV_COLUMNS, export_lines
from openline.members_io import ColumnMapError, ImportSummary, import_members
from openline.states import MemberState

KEY = b"suppression-key-for-tests"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
US, US2, US3, IT = "+12025550143", "+12025550144", "+12025550145", "+393471234567"


@pytest.fixture
def community(db: Database) -> int:
    with db.write_engine.begin() as conn:
        bootstrap(conn, "Fans")
        return get_community(conn).id


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as file:
        csv.writer(file, lineterminator="\n").writerows(rows)
    return path


def run_import(db: Database, community_id: int, path: Path, **options: Any) -> ImportSummary:
    def transact(work: Callable[[sa.Connection], Any]) -> Any:
        with db.write_engine.begin() as conn:
            return work(conn)

    options.setdefault("default_country", "US")
    options.setdefault("workers", 0)
    options.setdefault("now", NOW)
    return import_members(
        path,
        community_id=community_id,
        key=KEY,
        transact=transact,
        dialect=db.write_engine.dialect.name,
        **options,
    )


def member(db: Database, community_id: int, phone: str) -> dict[str, Any]:
    with db.read_engine.connect() as conn:
        member_id = find_member_id(conn, community_id, phone)
        assert member_id is not None, phone
        return member_record(conn, member_id)


def report(path: Path) -> list[list[str]]:
    with (path.parent / (path.name + ".errors.csv")).open(newline="", encoding="utf-8") as file:
        return list(csv.reader(file))


def accounted(summary: ImportSummary) -> bool:
    return summary.rows == summary.created + summary.merged + summary.skipped + summary.errors


def test_bad_rows_are_reported_with_their_line_column_and_reason(db: Database, community: int, tmp_path: Path) -> None:
    header = ["Mobile", "First Name", "email", "birthday", "consent_source", "consent_at", "notes"]
    path = write_csv(
        tmp_path / "fans.csv",
        [
            header,
            ["(202) 555-0143", "Ann", "ann@example.org", "1990-05-17", "", "", "keep"],
            ["", "Nobody", "", "", "", "", ""],
            ["12", "Bob", "bob@", "31/12/1990", "", "", ""],
            ["+393471234567", "Giulia", "", "", "stadium form", "yesterday", ""],
            ["+39 347 123 4568", "Gio", "", "", "", "2024-01-01T00:00:00Z", ""],
            ["+12025550144", "Too", "", "", "", "", "", "extra"],
            ["+12025550145", "Future", "", "2990-01-01", "web", "2999-01-01T00:00:00Z", ""],
        ],
    )
    summary = run_import(db, community, path)
    bob = ["12", "Bob", "bob@", "31/12/1990", "", "", ""]
    gio = ["'+39 347 123 4568", "Gio", "", "", "", "2024-01-01T00:00:00Z", ""]  # echoed as spreadsheet text
    future = ["+12025550145", "Future", "", "2990-01-01", "web", "2999-01-01T00:00:00Z", ""]
    assert (summary.rows, summary.created, summary.errors) == (7, 1, 6)
    assert summary.ignored_columns == ["notes"]
    assert accounted(summary)
    assert summary.error_report == str(tmp_path / "fans.csv.errors.csv")
    assert report(path) == [
        ["line", "column", "reason", *header],
        ["3", "Mobile", "no phone number", "", "Nobody", "", "", "", "", ""],
        ["4", "Mobile", "'12' is not a valid number in the numbering plan of +1", *bob],
        ["4", "email", "'bob@' is not an e-mail address", *bob],
        ["4", "birthday", "'31/12/1990' is not a date (expected YYYY-MM-DD)", *bob],
        [
            "5",
            "consent_at",
            "'yesterday' is not an ISO 8601 timestamp (e.g. 2024-05-01T18:30:00Z)",
            "+393471234567",
            "Giulia",
            "",
            "",
            "stadium form",
            "yesterday",
            "",
        ],
        ["6", "consent_source", "consent needs both a source and a timestamp", *gio],
        ["7", "", "the row has 8 fields, the header has 7", "+12025550144", "Too", "", "", "", "", "", "extra"],
        ["8", "birthday", "'2990-01-01' is not a plausible birthday", *future],
        ["8", "consent_at", "'2999-01-01T00:00:00Z' is in the future", *future],
    ]
    ann = member(db, community, US)
    assert (ann["first_name"], ann["email"], ann["birthday"], ann["state"]) == (
        "Ann",
        "ann@example.org",
        "1990-05-17",
        "pending",
    )
    # Fixed and imported again: the report of the earlier run is gone.
    write_csv(path, [header, ["(202) 555-0143", "Ann", "", "", "", "", ""]])
    assert run_import(db, community, path).error_report is None
    assert not (tmp_path / "fans.csv.errors.csv").exists()


def test_unreadable_lines_are_reported_and_the_rest_imported(db: Database, community: int, tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    path.write_bytes(
        b"\xef\xbb\xbfphone,first_name\n"  # a BOM, as spreadsheets write it
        b"+12025550143,Ann\n"
        b"+12025550144,Caf\xe9\n"  # Latin-1, not UTF-8
        b"+12025550145,A\x00B\n"
        b"\n"
        b'+393471234567,"Giulia\nMaria"\n'
    )
    summary = run_import(db, community, path)
    assert (summary.rows, summary.created, summary.errors) == (4, 2, 2)
    assert [row[:3] for row in report(path)[1:]] == [
        ["3", "", "the line is not UTF-8 text (save the file as UTF-8)"],
        ["4", "", "the line contains a NUL character"],
    ]
    assert member(db, community, IT)["first_name"] == "Giulia\nMaria"


def test_lines_may_end_in_a_lone_carriage_return(db: Database, community: int, tmp_path: Path) -> None:
    path = tmp_path / "mac.csv"
    path.write_bytes(b"phone,first_name\r+12025550143,Ann\r12,Bob\r\n+393471234567,Giulia\n")
    summary = run_import(db, community, path)
    assert (summary.rows, summary.created, summary.errors) == (3, 2, 1)
    assert report(path)[1][:2] == ["3", "phone"]


def test_numbers_without_a_country_code_need_a_default_country(db: Database, community: int, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "a.csv", [["phone"], ["202 555 0143"], ["+39 347 123 4567"], ["0039 347 123 4568"]])
    summary = run_import(db, community, path, default_country=None)
    assert (summary.created, summary.errors) == (1, 2)
    assert report(path)[1][2] == (
        "'202 555 0143' has no valid country code (start it with + and the country code, or set a default country)"
    )
    as_us = run_import(db, community, path, default_country="US")
    assert (as_us.created, as_us.merged, as_us.errors) == (1, 1, 1)
    assert report(path)[1][:3] == [
        "4",
        "phone",
        "'0039 347 123 4568' is not a valid number in the numbering plan of +1",
    ]
    as_italian = run_import(db, community, path, default_country="IT")  # 00 is how Italy dials abroad
    assert (as_italian.created, as_italian.merged, as_italian.errors) == (1, 1, 1)
    assert member(db, community, "+393471234568")["country"] == "IT"


def test_numbers_no_text_can_reach_are_refused_with_their_kind(db: Database, community: int, tmp_path: Path) -> None:
    rows = [["phone"], ["+39 02 1234 5678"], ["+39 899 123 456"], ["+39 347 123 4567"], ["+1 800 555 0100"]]
    summary = run_import(db, community, write_csv(tmp_path / "a.csv", rows))
    assert (summary.created, summary.errors) == (2, 2)  # the mobile, and the toll-free that may be text-enabled
    assert [line[:3] for line in report(tmp_path / "a.csv")[1:]] == [
        ["2", "phone", "'+39 02 1234 5678' is a landline number, which cannot receive texts"],
        ["3", "phone", "'+39 899 123 456' is a premium-rate number, which cannot receive texts"],
    ]


def test_regions_come_from_postcodes_or_numbers_and_follow_a_move(db: Database, community: int, tmp_path: Path) -> None:
    first = [["phone", "postcode", "country"], [US, "", ""], ["+1 416 555 0123", "V6B 1A1", "CA"], [IT, "20121", ""]]
    run_import(db, community, write_csv(tmp_path / "first.csv", first))
    assert [member(db, community, p)["region"] for p in (US, "+14165550123", IT)] == ["US-DC", "CA-BC", None]
    moved = [["phone", "postcode"], [US, "94103"]]  # the same member, now in San Francisco
    run_import(db, community, write_csv(tmp_path / "moved.csv", moved))
    assert member(db, community, US)["region"] == "US-CA"


def test_duplicates_merge_within_the_file_and_with_existing_members(
    db: Database, community: int, tmp_path: Path
) -> None:
    first = write_csv(
        tmp_path / "first.csv",
        [["phone", "first_name", "city", "tags", "custom.seat"], [US, "Ann", "Boston", "vip", "A1"]],
    )
    assert run_import(db, community, first).created == 1
    second = write_csv(
        tmp_path / "second.csv",
        [
            ["phone", "first_name", "last_name", "city", "tags", "custom.shirt"],
            ["+1 202 555 0143", "Anne", "", "", "milan; roma", "M"],
            ["(202) 555-0143", "", "Lee", "", "Roma|fan", ""],
            [IT, "Giulia", "", "", "", ""],
            [IT, "", "Rossi", "Milano", "milan", ""],
        ],
    )
    summary = run_import(db, community, second, chunk_rows=3)  # the last row merges across a chunk boundary
    assert (summary.rows, summary.created, summary.merged, summary.errors) == (4, 1, 3, 0)
    ann = member(db, community, US)
    # Later non-empty values win; empty cells erase nothing; tags and custom fields add up.
    assert (ann["first_name"], ann["last_name"], ann["city"]) == ("Anne", "Lee", "Boston")
    assert ann["tags"] == ["Roma", "fan", "milan", "roma", "vip"]
    assert ann["custom"] == {"seat": "A1", "shirt": "M"}
    giulia = member(db, community, IT)
    assert (giulia["first_name"], giulia["last_name"], giulia["city"], giulia["tags"]) == (
        "Giulia",
        "Rossi",
        "Milano",
        ["milan"],
    )
    assert (giulia["country"], giulia["time_zone"]) == ("IT", "Europe/Rome")
    # Imported twice, nothing changes and nothing is created.
    again = run_import(db, community, second)
    assert (again.created, again.merged) == (0, 4)
    assert member(db, community, US) == ann


def lookups(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The numbers the import looks members up by, one (sorted) list per look-up."""
    looked_up: list[list[str]] = []
    real = members_io._existing

    def spy(conn: sa.Connection, community_id: int, phones: list[str], lock: bool = True) -> dict[str, Any]:
        looked_up.append(sorted(phones))
        return real(conn, community_id, phones, lock=lock)

    monkeypatch.setattr(members_io, "_existing", spy)
    return looked_up


def test_chunks_of_new_numbers_are_inserted_without_looking_members_up(
    db: Database, community: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_import(db, community, write_csv(tmp_path / "a.csv", [["phone", "first_name"], [US, "Ann"]]))
    looked_up = lookups(monkeypatch)
    numbers = [f"+1202555{n:04d}" for n in range(200, 206)]
    rows = [["phone", "last_name", "tags"], [numbers[0], "A", "x"], [numbers[1], "B", ""]]  # chunk 1: all new
    rows += [[numbers[2], "C", ""], [US, "Lee", "vip"]]  # chunk 2: Ann is a member already
    rows += [[numbers[3], "D", ""], [numbers[4], "E", "y"]]  # chunk 3: looked up (after chunk 2), all new
    rows += [[numbers[5], "F", ""]]  # chunk 4: inserted straight away again
    summary = run_import(db, community, write_csv(tmp_path / "b.csv", rows), chunk_rows=2)
    assert (summary.created, summary.merged, summary.errors) == (6, 1, 0)
    # Chunk 2's insert met Ann and was taken back whole; chunk 3 was looked up as chunk 2 had found one.
    assert looked_up == [sorted([numbers[2], US]), sorted(numbers[3:5])]
    ann = member(db, community, US)
    assert (ann["first_name"], ann["last_name"], ann["tags"]) == ("Ann", "Lee", ["vip"])
    assert [member(db, community, n)["last_name"] for n in numbers] == ["A", "B", "C", "D", "E", "F"]
    assert (member(db, community, numbers[0])["tags"], member(db, community, numbers[4])["tags"]) == (["x"], ["y"])
    with db.read_engine.connect() as conn:
        ids = conn.execute(sa.select(schema.members.c.id).order_by(schema.members.c.id)).scalars().all()
        ledger = conn.execute(sa.select(sa.func.count()).select_from(schema.consent_events)).scalar_one()
    assert len(ids) == 7 and ledger == 7  # one ledger entry per member: the taken-back insert left none


def test_numbers_repeated_from_earlier_chunks_are_the_only_ones_looked_up(
    db: Database, community: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    looked_up = lookups(monkeypatch)
    numbers = [f"+1202555{n:04d}" for n in range(300, 306)]
    rows = [["phone", "first_name", "tags"], [numbers[0], "Ann", "a"], [numbers[1], "Bo", ""]]
    rows += [[numbers[2], "Cy", ""], [numbers[0], "", "b"]]  # Ann again, a chunk later
    rows += [[numbers[3], "Di", ""], [numbers[4], "Ed", ""]]
    rows += [[numbers[1], "Bob", ""], [numbers[5], "Fa", ""]]  # Bo again
    summary = run_import(db, community, write_csv(tmp_path / "a.csv", rows), chunk_rows=2)
    assert (summary.created, summary.merged) == (6, 2)
    assert looked_up == [[numbers[0]], [numbers[1]]]
    ann, bob = member(db, community, numbers[0]), member(db, community, numbers[1])
    assert (ann["first_name"], ann["tags"], bob["first_name"]) == ("Ann", ["a", "b"], "Bob")


def test_the_import_freezes_the_process_objects_only_while_it_runs(
    db: Database, community: int, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "a.csv", [["phone"], [US], [US2]])
    during: list[int] = []
    # The web app freezes its objects when it starts; an app started by an earlier test may have.
    was_frozen = gc.get_freeze_count() > 0
    gc.unfreeze()
    try:
        run_import(db, community, path, progress=lambda _: during.append(gc.get_freeze_count()))
        assert during and all(during) and gc.get_freeze_count() == 0
        # A process that froze its objects itself (as the web app does) keeps them frozen.
        gc.freeze()
        run_import(db, community, path)
        assert gc.get_freeze_count() > 0  # (objects freed meanwhile leave the count)
    finally:
        gc.unfreeze()
        if was_frozen:
            gc.freeze()


def test_consent_columns_subscribe_with_evidence_others_stay_pending(
    db: Database, community: int, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path / "signups.csv",
        [
            ["phone", "consent_source", "consent_at"],
            [US, "paper form at the stadium", "2024-05-01T18:30:00+02:00"],
            [US2, "", ""],
            [US3, "website", "2024-06-01 10:00:00"],
        ],
    )
    summary = run_import(db, community, path)
    assert (summary.created, summary.subscribed) == (3, 2)
    subscribed = member(db, community, US)
    assert subscribed["state"] == "subscribed"
    assert subscribed["joined_at"] == "2024-05-01T16:30:00+00:00"
    assert subscribed["consent"] == [
        {
            "previous_state": None,
            "new_state": "subscribed",
            "source": "import_file",
            "evidence": {
                "file": "signups.csv",
                "line": 2,
                "consent_source": "paper form at the stadium",
                "consent_at": "2024-05-01T16:30:00+00:00",
            },
            "occurred_at": NOW.isoformat(),
        }
    ]
    pending = member(db, community, US2)
    assert (pending["state"], pending["joined_at"]) == ("pending", None)
    assert pending["consent"][0]["evidence"] == {"file": "signups.csv", "line": 3, "consent": None}
    # A timestamp without an offset is UTC.
    assert member(db, community, US3)["consent"][0]["evidence"]["consent_at"] == "2024-06-01T10:00:00+00:00"

    # A later file with consent subscribes the pending member.
    later = write_csv(tmp_path / "later.csv", [["phone", "consent_source", "consent_at"], [US2, "web", "2025-01-01"]])
    assert run_import(db, community, later).subscribed == 1
    now_subscribed = member(db, community, US2)
    assert now_subscribed["state"] == "subscribed"
    assert [(e["previous_state"], e["new_state"]) for e in now_subscribed["consent"]] == [
        (None, "pending"),
        ("pending", "subscribed"),
    ]


def _set_state(db: Database, community_id: int, phone: str, state: MemberState) -> None:
    with db.write_engine.begin() as conn:
        m = schema.members.c
        conn.execute(sa.update(schema.members).where(m.phone == phone).values(state=state))


def test_import_never_resubscribes_nor_changes_opted_out_members(db: Database, community: int, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "a.csv", [["phone", "first_name"], [US, "Ann"], [US2, "Bea"]])
    run_import(db, community, path)
    _set_state(db, community, US, MemberState.unsubscribed)
    _set_state(db, community, US2, MemberState.blocked)
    again = write_csv(
        tmp_path / "b.csv",
        [
            ["phone", "first_name", "state", "consent_source", "consent_at"],
            [US, "Annie", "subscribed", "web", "2025-01-01T00:00:00Z"],
            [US2, "", "unsubscribed", "web", "2025-01-01T00:00:00Z"],
        ],
    )
    summary = run_import(db, community, again)
    assert (summary.subscribed, summary.errors) == (0, 0)
    ann, bea = member(db, community, US), member(db, community, US2)
    assert (ann["state"], ann["first_name"]) == ("unsubscribed", "Annie")  # the profile may change, not the state
    assert bea["state"] == "blocked"
    assert len(ann["consent"]) == len(bea["consent"]) == 1  # the import's first event only


def test_a_state_column_can_opt_out_but_never_opt_in(db: Database, community: int, tmp_path: Path) -> None:
    run_import(
        db,
        community,
        write_csv(tmp_path / "a.csv", [["phone", "consent_source", "consent_at"], [US, "w", "2025-01-01"]]),
    )
    path = write_csv(
        tmp_path / "optouts.csv",
        [["phone", "status"], [US, "unsubscribed"], [US2, "blocked"], [US3, "subscribed"], [IT, "maybe"]],
    )
    summary = run_import(db, community, path)
    assert (summary.created, summary.merged, summary.errors) == (2, 1, 1)
    assert report(path)[1][:3] == [
        "5",
        "status",
        "'maybe' is not a member state (unsubscribed or blocked; others are ignored)",
    ]
    ann = member(db, community, US)
    assert ann["state"] == "unsubscribed"
    assert ann["consent"][-1]["evidence"] == {"file": "optouts.csv", "line": 2, "state_column": "unsubscribed"}
    assert member(db, community, US2)["state"] == "blocked"
    assert member(db, community, US3)["state"] == "pending"  # "subscribed" without consent evidence


def test_erased_numbers_are_skipped_with_a_reason(db: Database, community: int, tmp_path: Path) -> None:
    run_import(db, community, write_csv(tmp_path / "a.csv", [["phone"], [US]]))
    with db.write_engine.begin() as conn:
        member_id = find_member_id(conn, community, US)
        assert member_id is not None
        erase_member(conn, community, member_id, key=KEY, now=NOW, reason="asked")
    path = write_csv(tmp_path / "b.csv", [["phone", "first_name"], ["(202) 555-0143", "Ann"], [US2, "Bea"], [US, ""]])
    summary = run_import(db, community, path)
    assert (summary.created, summary.skipped, summary.errors) == (1, 2, 0)
    reason = "the number was erased at the person's request; it comes back only if they text in again"
    assert report(path)[1:] == [["2", "", reason, "(202) 555-0143", "Ann"], ["4", "", reason, US, ""]]
    with db.read_engine.connect() as conn:
        assert find_member_id(conn, community, US) is None


def test_column_map_overrides_and_its_errors(db: Database, community: int, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "a.csv", [["Cell phone", "Given", "Seat", "phone"], [US, "Ann", "B12", "ignored"]])
    with pytest.raises(ColumnMapError, match="columns 'Cell phone' and 'phone' both fill phone"):
        run_import(db, community, path)
    summary = run_import(
        db, community, path, column_map={"phone": "ignore", "Given": "first_name", "Seat": "custom.seat"}
    )
    assert summary.created == 1 and summary.ignored_columns == ["phone"]
    assert member(db, community, US)["custom"] == {"seat": "B12"}
    with pytest.raises(ColumnMapError, match="the file has no column 'Mobile'"):
        run_import(db, community, path, column_map={"Mobile": "phone"})
    with pytest.raises(ColumnMapError, match="unknown field 'nickname'"):
        run_import(db, community, path, column_map={"Given": "nickname"})
    with pytest.raises(ColumnMapError, match="no column holds the phone number"):
        run_import(db, community, write_csv(tmp_path / "b.csv", [["name"], ["Ann"]]))
    with pytest.raises(ColumnMapError, match="no column holds consent_at"):
        run_import(db, community, write_csv(tmp_path / "c.csv", [["phone", "consent_source"], [US, "web"]]))
    with pytest.raises(ColumnMapError, match="the file is empty"):
        run_import(db, community, write_csv(tmp_path / "d.csv", []))


def test_dry_run_checks_everything_and_stores_nothing(db: Database, community: int, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "a.csv", [["phone", "consent_source", "consent_at"], [US, "web", "2024-01-01"], ["12", "", ""]]
    )
    summary = run_import(db, community, path, dry_run=True)
    assert (summary.dry_run, summary.created, summary.subscribed, summary.errors) == (True, 1, 1, 1)
    assert len(report(path)) == 2
    with db.read_engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.members)).scalar_one() == 0


def test_progress_reaches_the_file_size(db: Database, community: int, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "a.csv", [["phone"], *([f"+1202555{n:04d}"] for n in range(100, 160))])
    seen: list[int] = []
    summary = run_import(db, community, path, chunk_rows=25, progress=seen.append)
    assert summary.created == 60
    assert seen == sorted(seen) and seen[-1] == path.stat().st_size and len(seen) >= 3


def _export(db: Database, community_id: int, fmt: str) -> str:
    return "".join(export_lines(db.read_engine, community_id, fmt))  # type: ignore[arg-type]


def test_export_round_trip(db: Database, community: int, tmp_path: Path) -> None:
    consent = ["stadium", "2024-05-01T18:30:00Z"]
    source = write_csv(
        tmp_path / "source.csv",
        [
            ["phone", "first_name", "email", "birthday", "language", "tags", "custom", "consent_source", "consent_at"],
            [
                US,
                'Ann, "the" fan',
                "ann@example.org",
                "1990-05-17",
                "en",
                "vip,milan",
                '{"seat": "B12", "n": 3}',
                *consent,
            ],
            [IT, "Giulia", "", "", "it", "", "", "", ""],
            [US2, "Bea", "", "", "", "", "", "", ""],
        ],
    )
    run_import(db, community, source)
    _set_state(db, community, US2, MemberState.unsubscribed)
    exported = _export(db, community, "csv")
    lines = list(csv.DictReader(io.StringIO(exported)))
    assert list(lines[0]) == list(CSV_COLUMNS)
    ann = lines[0]
    assert (ann["phone"], ann["state"], ann["tags"], ann["consent_source"], ann["consent_at"]) == (
        US,
        "subscribed",
        "milan,vip",
        "stadium",
        "2024-05-01T18:30:00+00:00",
    )
    assert json.loads(ann["custom"]) == {"seat": "B12", "n": 3}
    assert [line["consent_source"] for line in lines[1:]] == ["", ""]

    # Into another community: the same members, states and data come back.
    with db.write_engine.begin() as conn:
        other = conn.execute(
            sa.insert(schema.communities)
            .values(slug="other", name="Other", settings={})
            .returning(schema.communities.c.id)
        ).scalar_one()
    path = tmp_path / "export.csv"
    path.write_text(exported, encoding="utf-8")
    summary = run_import(db, other, path)
    assert (summary.created, summary.subscribed, summary.errors) == (3, 1, 0)
    assert summary.ignored_columns == ["time_zone", "joined_at", "created_at"]

    def comparable(text: str) -> list[dict[str, str]]:
        return [{k: v for k, v in row.items() if k != "created_at"} for row in csv.DictReader(io.StringIO(text))]

    assert comparable(_export(db, other, "csv")) == comparable(exported)


def test_jsonl_export_has_the_full_ledger(db: Database, community: int, tmp_path: Path) -> None:
    run_import(db, community, write_csv(tmp_path / "a.csv", [["phone", "city"], [US, "Boston"], [IT, "Roma"]]))
    later = write_csv(tmp_path / "b.csv", [["phone", "consent_source", "consent_at"], [US, "web", "2025-01-01"]])
    run_import(db, community, later)
    records = [json.loads(line) for line in _export(db, community, "jsonl").splitlines()]
    assert [r["phone"] for r in records] == [US, IT]
    assert [(e["new_state"], e["evidence"]["file"]) for e in records[0]["consent"]] == [
        ("pending", "a.csv"),
        ("subscribed", "b.csv"),
    ]
    assert records[0]["time_zone"] == "America/New_York" and records[1]["time_zone"] == "Europe/Rome"
    assert set(records[0]) >= {"first_name", "custom", "tags", "time_zones", "joined_at"}


def test_export_pages_through_many_members(
    db: Database, community: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("openline.members_export.EXPORT_PAGE", 7)
    path = write_csv(
        tmp_path / "a.csv", [["phone", "tags"], *([f"+1202555{n:04d}", f"t{n % 3}"] for n in range(100, 130))]
    )
    run_import(db, community, path)
    records = [json.loads(line) for line in _export(db, community, "jsonl").splitlines()]
    assert [r["phone"] for r in records] == [f"+1202555{n:04d}" for n in range(100, 130)]
    assert all(r["tags"] == [f"t{int(r['phone'][-4:]) % 3}"] for r in records)
    assert len(_export(db, community, "csv").splitlines()) == 31


def test_a_process_pool_imports_the_same(db: Database, community: int, tmp_path: Path) -> None:
    rows = [["phone", "first_name", "tags"]]
    rows += [[f"+1202555{n:04d}", f"fan {n}", "a,b"] for n in range(100, 150)] + [["nope", "x", ""]]
    rows += [[f"+1202555{n:04d}", "", "c"] for n in range(100, 110)]  # duplicates in later chunks
    summary = run_import(db, community, write_csv(tmp_path / "a.csv", rows), workers=1, chunk_rows=9)
    assert (summary.rows, summary.created, summary.merged, summary.errors) == (61, 50, 10, 1)
    assert member(db, community, "+12025550105")["tags"] == ["a", "b", "c"]
    assert member(db, community, "+12025550149")["first_name"] == "fan 149"


VALID = [f"+1202555{n:04d}" for n in range(100, 140)]
_cell = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)
_valid_row = st.tuples(
    st.sampled_from(VALID), st.text(string.ascii_letters + " ", max_size=12), st.sampled_from(["", "x", "y"])
)
# Garbage the csv module must survive: random fields (any text, quoted as needed), raw lines without
# quotes, bytes that are not UTF-8. (An unbalanced quote swallows the lines after it in any CSV reader,
# so raw garbage has none.)
_garbage = st.one_of(
    st.lists(_cell, max_size=6).map(lambda cells: ("fields", cells)),
    st.text(st.characters(blacklist_characters='"\n\x00', blacklist_categories=("Cs",)), max_size=30).map(
        lambda text: ("raw", text)
    ),
    st.binary(max_size=20)
    .filter(lambda b: b"\n" not in b and b"\r" not in b and b'"' not in b)
    .map(lambda data: ("bytes", data)),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(_valid_row.map(lambda row: ("valid", row)), _garbage), max_size=25))
def test_garbled_rows_never_crash_the_import_nor_lose_a_valid_row(
    db: Database, community: int, tmp_path: Path, rows: list[tuple[str, Any]]
) -> None:
    with db.write_engine.begin() as conn:
        for table in (schema.member_tags, schema.consent_events, schema.members):
            conn.execute(sa.delete(table))
    buffer = io.BytesIO()
    buffer.write(b"phone,first_name,tags\n")
    valid_lines: dict[int, tuple[str, str, str]] = {}
    line = 2
    for kind, value in rows:
        if kind == "valid":
            valid_lines[line] = value
            text = io.StringIO()
            csv.writer(text, lineterminator="\n").writerow(value)
            data = text.getvalue().encode()
        elif kind == "fields":
            text = io.StringIO()
            csv.writer(text, lineterminator="\n").writerow(value)
            data = text.getvalue().encode()
        else:
            data = (value.encode() if isinstance(value, str) else value) + b"\n"
        buffer.write(data)
        line += len(re.findall(rb"\r\n|\r|\n", data))  # lines end as in any text editor
    path = tmp_path / "garbled.csv"
    path.write_bytes(buffer.getvalue())
    summary = run_import(db, community, path, chunk_rows=4)
    assert accounted(summary)
    expected: dict[str, tuple[str, set[str]]] = {}
    for phone, name, tag in valid_lines.values():
        earlier_name, tags = expected.get(phone, ("", set()))
        expected[phone] = (name.strip() or earlier_name, tags | ({tag} if tag else set()))
    for phone, (name, tags) in expected.items():
        found = member(db, community, phone)
        assert (found["first_name"] or "", set(found["tags"])) == (name, tags)
    problems = report(path)[1:] if summary.error_report else []
    assert not {int(p[0]) for p in problems} & set(valid_lines)


def test_a_member_created_meanwhile_is_merged_not_duplicated(
    db: Database, community: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_import(db, community, write_csv(tmp_path / "a.csv", [["phone", "first_name"], [US, "Ann"]]))
    # As if a text created US between the import's look-up and its insert.
    real = members_io._existing
    calls = []

    def missed_once(conn: sa.Connection, community_id: int, phones: list[str], lock: bool = True) -> dict[str, Any]:
        calls.append(phones)
        return {} if len(calls) == 1 else real(conn, community_id, phones, lock=lock)

    monkeypatch.setattr(members_io, "_existing", missed_once)
    path = write_csv(tmp_path / "b.csv", [["phone", "last_name", "tags"], [US, "Lee", "vip"], [US2, "Bo", "vip"]])
    summary = run_import(db, community, path, now=NOW + timedelta(seconds=1))
    assert (summary.created, summary.merged) == (1, 1)
    assert calls[1] == [US]  # looked up again, then merged
    ann = member(db, community, US)
    assert (ann["first_name"], ann["last_name"], ann["tags"]) == ("Ann", "Lee", ["vip"])
    assert member(db, community, US2)["tags"] == ["vip"]


def test_members_dated_into_kept_analytics_days_have_those_days_counted_again(
    db: Database, community: int, tmp_path: Path
) -> None:
    kept = [NOW.date() - timedelta(days=n) for n in range(2, 40)]  # every settled day of the last weeks
    with db.write_engine.begin() as conn:
        remember(conn, community, [Day(day) for day in kept])
    consented = NOW - timedelta(days=10)
    rows = [["phone", "consent_source", "consent_at"], [US, "web", consented.isoformat()], [US2, "", ""]]
    run_import(db, community, write_csv(tmp_path / "a.csv", rows))
    with db.read_engine.connect() as conn:
        left = set(conn.execute(sa.select(schema.analytics_days.c.day)).scalars())
    assert left == {day for day in kept if day < consented.date()}
    # Consent given today dates nothing back: what is kept stays.
    run_import(db, community, write_csv(tmp_path / "b.csv", [rows[0], [US3, "web", NOW.isoformat()]]))
    with db.read_engine.connect() as conn:
        assert set(conn.execute(sa.select(schema.analytics_days.c.day)).scalars()) == left


EVIL = '=HYPERLINK("http://evil.example","x")'


def test_csv_export_escapes_formulas_and_imports_them_back(db: Database, community: int, tmp_path: Path) -> None:
    header = ["phone", "first_name", "last_name", "city", "tags", "custom.note", "consent_source", "consent_at"]
    typed = [EVIL, "-42", "@SUM(1+1)", "-2+3,vip", "+cmd", "=stadium", "2024-05-01T18:30:00Z"]
    run_import(db, community, write_csv(tmp_path / "source.csv", [header, [US, *typed]]))
    exported = _export(db, community, "csv")
    (line,) = csv.DictReader(io.StringIO(exported))
    assert [line[c] for c in ("phone", "first_name", "last_name", "city", "tags", "consent_source")] == [
        US,  # an E.164 number is a plain number: unchanged
        "'" + EVIL,
        "-42",  # so is a negative number
        "'@SUM(1+1)",
        "'-2+3,vip",
        "'=stadium",
    ]
    assert json.loads(line["custom"]) == {"note": "+cmd"}
    (record,) = (json.loads(text) for text in _export(db, community, "jsonl").splitlines())
    assert (record["first_name"], record["city"], record["tags"]) == (EVIL, "@SUM(1+1)", ["-2+3", "vip"])

    # Into a fresh database: the same text comes back, and exports the same.
    fresh = Database(f"sqlite:///{tmp_path / 'fresh.db'}")
    try:
        upgrade(fresh)
        with fresh.write_engine.begin() as conn:
            bootstrap(conn, "Fans")
            other = get_community(conn).id
        path = tmp_path / "export.csv"
        path.write_text(exported, encoding="utf-8")
        summary = run_import(fresh, other, path)
        assert (summary.created, summary.subscribed, summary.errors) == (1, 1, 0)
        back = member(fresh, other, US)
        assert (back["first_name"], back["last_name"], back["city"], back["tags"], back["custom"]) == (
            EVIL,
            "-42",
            "@SUM(1+1)",
            ["-2+3", "vip"],
            {"note": "+cmd"},
        )
        assert back["consent"][-1]["evidence"]["consent_source"] == "=stadium"
        again = _export(fresh, other, "csv")
    finally:
        fresh.dispose()

    def comparable(text: str) -> list[dict[str, str]]:
        return [{k: v for k, v in row.items() if k != "created_at"} for row in csv.DictReader(io.StringIO(text))]

    assert comparable(again) == comparable(exported)


def test_the_error_report_echoes_formulas_escaped(db: Database, community: int, tmp_path: Path) -> None:
    header = ["phone", "first_name", "email", "=notes"]
    path = write_csv(
        tmp_path / "fans.csv",
        [header, [US, EVIL, "=1+1", "@x"], [US2, "'=quoted", "-bad", ""], ["+1 202", "Al", "", ""]],
    )
    summary = run_import(db, community, path)
    assert summary.errors == 3
    assert summary.ignored_columns == ["=notes"]
    assert report(path) == [
        ["line", "column", "reason", "phone", "first_name", "email", "'=notes"],
        ["2", "email", "'=1+1' is not an e-mail address", US, "'" + EVIL, "'=1+1", "'@x"],
        # A cell the file had escaped already is echoed as it was.
        ["3", "email", "'-bad' is not an e-mail address", US2, "'=quoted", "'-bad", ""],
        ["4", "phone", "'+1 202' is not a valid number in the numbering plan of +1", "'+1 202", "Al", "", ""],
    ]

    # Fixed in a spreadsheet and imported again: the names are what the file said.
    top, *problems = report(path)
    write_csv(path, [top, *([*row[:5], "", *row[6:]] for row in problems[:2])])
    summary = run_import(db, community, path)
    assert (summary.created, summary.errors) == (2, 0)
    assert summary.ignored_columns[:3] == ["line", "column", "reason"]
    assert member(db, community, US)["first_name"] == EVIL
    assert member(db, community, US2)["first_name"] == "=quoted"
