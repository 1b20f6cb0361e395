"""How SQLite plans the analytics and broadcast-stats queries, checked with EXPLAIN QUERY PLAN.

openline never runs ANALYZE, so SQLite plans without statistics, and a correlated look-up (a number's
reply, a member's opt-out, a number's autotext) can take a time-range index for the better one and read
a whole day of texts per row: fine on a test's ten rows, a minute at a million. The plans do not depend
on how many rows there are, so an empty database shows them: every correlated subquery must look its
rows up by the number or the member, and the day counts must read their own indexes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from openline.analytics import DayRange, report
from openline.broadcasts import broadcast_stats, create_broadcast
from openline.communities import bootstrap
from openline.db import Database, upgrade

NOW = datetime(2025, 3, 10, 15, 0, tzinfo=UTC)
# Indexes a correlated look-up may use: by number, by member, or by the row's own key.
BY_KEY = ("ix_messages_phone", "ix_consent_events_member", "INTEGER PRIMARY KEY", "uq_messages_broadcast_member")


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'plans.db'}")
    upgrade(database)
    yield database
    database.dispose()


def plans(db: Database, work: Callable[[sa.Connection], object]) -> list[tuple[str, list[tuple[int, int, str]]]]:
    """Each statement ``work`` ran, with SQLite's plan for it: (id, parent, detail) rows."""
    ran: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, many: bool) -> None:
        if not many and statement.lstrip().upper().startswith(("SELECT", "WITH")):
            ran.append((statement, parameters))

    with db.write_engine.connect() as conn:
        sa.event.listen(conn, "before_cursor_execute", record)
        work(conn)
        sa.event.remove(conn, "before_cursor_execute", record)
        return [
            (statement, [(r[0], r[1], r[3]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params)])
            for statement, params in ran
        ]


def correlated(plan: list[tuple[int, int, str]]) -> list[str]:
    """The steps run once per outer row: everything under a CORRELATED subquery."""
    inside: set[int] = set()
    steps = []
    for node, parent, detail in plan:
        if detail.startswith("CORRELATED") or parent in inside:
            inside.add(node)
            if not detail.startswith("CORRELATED"):
                steps.append(detail)
    return steps


def assert_looked_up_by_key(found: list[tuple[str, list[tuple[int, int, str]]]]) -> None:
    checked = 0
    for statement, plan in found:
        for step in correlated(plan):
            checked += 1
            assert step.startswith("SEARCH") and any(index in step for index in BY_KEY), (step, statement)
    assert checked, "no correlated subquery was run: the test no longer looks at what it should"


def test_analytics_looks_each_number_up_by_its_number(db: Database) -> None:
    with db.write_engine.begin() as conn:
        community = bootstrap(conn, "Plans")
        assert community is not None
    found = plans(db, lambda conn: report(conn, community.id, DayRange(date(2025, 1, 1), date(2025, 3, 10))))
    assert_looked_up_by_key(found)
    # The day counts read the indexes made for them, not the table.
    details = [detail for _, plan in found for _, _, detail in plan]
    assert any("ix_messages_inbound_day" in d for d in details), details
    assert any("ix_messages_outbound_day" in d for d in details), details
    assert any("ix_consent_events_day" in d for d in details), details
    assert not any(d.startswith("SCAN messages") or d.startswith("SCAN consent_events") for d in details), details


def test_broadcast_stats_look_each_recipient_up(db: Database) -> None:
    with db.write_engine.begin() as conn:
        community = bootstrap(conn, "Plans")
        assert community is not None
        draft = create_broadcast(conn, community.id, "spring", {"variants": [{"body": "Hi"}]}, segment={"and": []})
    started = replace(draft, started_at=NOW, finished_at=NOW)
    assert_looked_up_by_key(plans(db, lambda conn: broadcast_stats(conn, started, NOW)))
