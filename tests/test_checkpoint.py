from __future__ import annotations

import time
from pathlib import Path

import sqlalchemy as sa

from openline.db import Database, schema, upgrade
from openline.db.checkpoint import Checkpointer


def test_commits_never_checkpoint_and_the_checkpointer_does(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    db = Database(f"sqlite:///{path}")
    upgrade(db)
    with db.write_engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one() == 0
    size = path.stat().st_size
    for i in range(600):  # ~1,500 pages: by default SQLite would checkpoint inside one of these commits
        with db.write_engine.begin() as conn:
            conn.execute(sa.insert(schema.installation).values(key=f"k{i}", value="x" * 2000))
    # Still only in the WAL: no commit copied pages into the database file.
    assert path.stat().st_size == size
    checkpointer = Checkpointer(db.read_engine, interval=0.05)
    try:
        time.sleep(0.3)
    finally:
        checkpointer.close()
    assert path.stat().st_size > size + 600 * 2000
    db.dispose()
