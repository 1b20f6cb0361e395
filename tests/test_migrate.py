from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from openline.db import Database, DatabaseError, SchemaState, ensure_current, schema, schema_status, upgrade
from openline.db.migrate import _config as migrate_config

# SQLAlchemy cannot reflect SQLite's expression index ix_messages_queue (checked on its own below).
_EXPRESSION_INDEX = "ignore:Skipped unsupported reflection of expression-based index:sqlalchemy.exc.SAWarning"


@pytest.mark.filterwarnings(_EXPRESSION_INDEX)
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based index:UserWarning")
def test_migrations_build_exactly_the_declared_schema(db: Database) -> None:
    with db.read_engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), schema.metadata)
    assert differences == []


def test_upgrade_is_idempotent(db: Database) -> None:
    assert upgrade(db).state is SchemaState.current
    assert upgrade(db).state is SchemaState.current
    ensure_current(db)


def test_the_dispatcher_queue_index_exists(db: Database) -> None:
    query = (
        "SELECT sql FROM sqlite_master WHERE name = 'ix_messages_queue'"
        if db.is_sqlite
        else "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_messages_queue'"
    )
    with db.read_engine.connect() as conn:
        definition = conn.exec_driver_sql(query).scalar_one()
    assert "coalesce(next_attempt_at, created_at)" in definition.lower().replace('"', "")
    assert "queued" in definition


@pytest.mark.filterwarnings(_EXPRESSION_INDEX)
def test_constraints_are_named(db: Database) -> None:
    inspector = sa.inspect(db.read_engine)
    uniques = {u["name"] for u in inspector.get_unique_constraints("messages")}
    assert {"uq_messages_provider_message_id", "uq_messages_broadcast_member"} <= uniques
    checks = {c["name"] for c in inspector.get_check_constraints("messages")}
    assert {"ck_messages_state", "ck_messages_direction", "ck_messages_kind"} <= checks


def test_state_columns_refuse_unknown_words(db: Database) -> None:
    with pytest.raises(sa.exc.IntegrityError), db.write_engine.begin() as conn:
        conn.execute(
            sa.insert(schema.communities).values(id=1, slug="c", name="c", settings={}, created_at=schema.utcnow())
        )
        conn.exec_driver_sql(
            "INSERT INTO members (community_id, phone, state, custom, created_at, updated_at) "
            "VALUES (1, '+12025550143', 'S', '{}', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
        )


def test_empty_database_is_reported(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'new.db'}")
    assert schema_status(db).state is SchemaState.empty
    with pytest.raises(DatabaseError, match=r"schema revision \(none\), this openline needs .*openline db upgrade"):
        ensure_current(db)
    db.dispose()


def test_a_newer_schema_is_refused_clearly(db: Database) -> None:
    head = schema_status(db).head
    with db.write_engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    try:
        assert schema_status(db).state is SchemaState.ahead
        for attempt in (ensure_current, upgrade):
            with pytest.raises(DatabaseError, match="written by a newer openline; upgrade openline"):
                attempt(db)
    finally:
        with db.write_engine.begin() as conn:
            conn.exec_driver_sql(f"UPDATE alembic_version SET version_num = '{head}'")


def test_unreachable_postgresql_is_one_line() -> None:
    db = Database("postgresql://openline:secret-pw@127.0.0.1:1/nowhere")
    with pytest.raises(DatabaseError) as caught:
        db.check_reachable()
    message = str(caught.value)
    assert message.startswith("cannot reach the database at postgresql+psycopg://openline:***@127.0.0.1:1/nowhere")
    assert "secret-pw" not in message
    assert "\n" not in message
    assert not db.reachable()


def test_unopenable_sqlite_file_is_one_line(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}")
    with pytest.raises(DatabaseError, match=r"cannot reach the database at sqlite:///.*unable to open database file"):
        db.check_reachable()


def test_the_region_migration_fills_in_the_members_already_there(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'before.db'}")
    config = migrate_config()
    try:
        with db.write_engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0009")
            conn.exec_driver_sql(
                "INSERT INTO communities (id, slug, name, settings, created_at)"
                " VALUES (1, 'c', 'c', '{}', '2026-01-01')"
            )
            for phone, country, postcode in [
                ("+12125550123", "US", None),  # New York by its area code
                ("+12125550124", "US", "94103"),  # moved to San Francisco
                ("+14165550123", "CA", None),
                ("+393471234567", "IT", "20121"),
            ]:
                conn.execute(
                    sa.text(
                        "INSERT INTO members (community_id, phone, state, country, postcode, time_zones, custom,"
                        " created_at, updated_at) VALUES (1, :phone, 'subscribed', :country, :postcode, '[]', '{}',"
                        " '2026-01-01', '2026-01-01')"
                    ),
                    {"phone": phone, "country": country, "postcode": postcode},
                )
        assert upgrade(db).state is SchemaState.current
        with db.read_engine.connect() as conn:
            found = conn.execute(sa.select(schema.members.c.phone, schema.members.c.region)).all()
        assert dict(found) == {
            "+12125550123": "US-NY",
            "+12125550124": "US-CA",
            "+14165550123": "CA-ON",
            "+393471234567": None,
        }
        with db.write_engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "0009")
    finally:
        db.dispose()
